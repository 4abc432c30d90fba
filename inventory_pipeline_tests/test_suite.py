"""The evaluation suite: takeover states, the target and summary maths on hand-made
rows, the CLI's choices, and one tiny end-to-end suite (1 world x 1 seed x 2 stores x 8 SKUs, a
14-day window: about 10 s, so it stays in `make test-fast`)."""

import json

import numpy as np
import pandas as pd
import pytest

from inventory_pipeline.config import DEFAULT_POLICY_PATH
from inventory_pipeline.simulation.evaluation import TAKEOVERS, RunSpec, run_spec
from inventory_pipeline.simulation.regimes import world_config
from inventory_pipeline.simulation.suite import (
    SuiteConfig,
    end_inventory,
    parse_world,
    relative,
    rescore,
    run_suite,
    score_rows,
    summarise,
)

EVAL_DAYS = 14


@pytest.fixture(scope="module")
def tiny_world():
    return world_config("base", stores=2, skus=8, days=90, seed=101)


def _baseline_run(net, takeover: str) -> dict:
    spec = RunSpec(
        f"baseline/{takeover}",
        "baseline",
        net,
        str(DEFAULT_POLICY_PATH),
        switch_day=net.burn_in_days + net.days - EVAL_DAYS,
        takeover=takeover,
    )
    return run_spec(spec)


def test_takeover_states_start_the_window_over_or_under_stocked(tiny_world):
    states = {t: _baseline_run(tiny_world, t)["takeover_state"] for t in TAKEOVERS}
    value = {t: s["store_value"] + s["dc_value"] for t, s in states.items()}
    assert value["overstock"] > 1.5 * value["rule"] > 0
    assert value["understock"] < value["rule"]
    assert states["rule"]["day"] == tiny_world.burn_in_days + tiny_world.days - EVAL_DAYS  # noted at the switch
    assert len({s["digest"] for s in states.values()}) == 3  # three different states
    # the warm-up is deterministic: the same takeover twice is the identical state
    assert _baseline_run(tiny_world, "overstock")["takeover_state"] == states["overstock"]


def test_the_rule_takeover_is_todays_warm_up():
    """`rule` keeps evaluate()'s protocol exactly; overstock is a cautious rule at the stores only."""
    from inventory_pipeline.simulation.evaluation import EchelonRule, takeover_warmup
    from inventory_pipeline.simulation.policies import BaselinePolicy

    assert takeover_warmup("rule", 1) == BaselinePolicy(review_period_days=1)
    over = takeover_warmup("overstock", 1)
    assert isinstance(over, EchelonRule) and over.dc == BaselinePolicy() and over.store.safety_days == 28


def test_after_the_switch_the_rule_is_the_normal_rule(tiny_world):
    """Overstock is inherited, not kept: the rule after the switch orders at its own 7 safety days,
    so from an overstocked start it holds less at the end of the window than at the switch."""
    r = _baseline_run(tiny_world, "overstock")
    start = r["takeover_state"]["store_value"] + r["takeover_state"]["dc_value"]
    end = r["daily"]["store_inventory_value"].iloc[-1] + r["daily"]["dc_inventory_value"].iloc[-1]
    assert end < start


def test_unknown_world_or_takeover_is_refused():
    assert parse_world("shocks+understock") == ("shocks", "understock")
    assert parse_world("base") == ("base", "rule")
    with pytest.raises(ValueError, match="takeover"):
        parse_world("base+flooded")
    with pytest.raises(ValueError, match="world"):
        parse_world("mars")
    with pytest.raises(ValueError, match="70 days"):
        SuiteConfig(history_days=100, eval_days=56)


def _hand_rows() -> pd.DataFrame:
    """Five cells with known outcomes (rule -> pipeline; static = the pipeline with prices held)."""
    cols = [
        "cell",
        "world",
        "rule_lost_sales_units",
        "pipeline_lost_sales_units",
        "rule_stockout_days",
        "pipeline_stockout_days",
        "rule_avg_inventory_value",
        "pipeline_avg_inventory_value",
        "rule_carrying_cost",
        "pipeline_carrying_cost",
        "rule_gross_margin",
        "pipeline_gross_margin",
        "static_gross_margin",
        "rule_violations",
    ]
    data = [
        # A: -40% lost and stockout days at the same inventory; margin exactly +2% over static
        ("A", "w1", 100, 60, 50, 30, 1000, 1000, 100, 100, 500, 510, 500, 0),
        # B: same losses, -20% carrying cost; margin only +1% over static
        ("B", "w1", 100, 100, 50, 50, 1000, 800, 100, 80, 500, 510, 505, 0),
        # C: carrying cost -30% but 10% more lost units; margin below the rule's; two violations
        ("C", "w1", 100, 110, 50, 40, 1000, 700, 100, 70, 500, 490, 480, 2),
        # D: nothing lost by either; 5% more inventory
        ("D", "w2", 0, 0, 0, 0, 1000, 1050, 100, 105, 500, 500, np.nan, 0),
        # E: -50% lost and -50% stockout days at -30% inventory
        ("E", "w2", 100, 50, 50, 25, 1000, 700, 100, 70, 500, 520, 500, 0),
    ]
    f = pd.DataFrame(data, columns=cols)
    for k in ("fill_rate", "price_changes", "price_decreases"):
        f[f"rule_{k}"] = f[f"pipeline_{k}"] = 0.0
    return f


def test_targets_on_hand_made_rows():
    r = score_rows(_hand_rows()).set_index("cell")
    assert r.loc["A", "lost_units_change"] == pytest.approx(-0.4)
    assert list(r["pass_service"]) == [True, True, False, False, True]
    assert list(r["pass_lost_not_up"]) == [True, True, False, True, True]
    assert r.loc["A", "pass_margin_vs_static"] and not r.loc["B", "pass_margin_vs_static"]
    assert r.loc["D", "pass_margin_vs_static"] is pd.NA  # no static-price run: not applicable
    assert list(r["pass_margin_vs_rule"]) == [True, True, False, True, True]
    assert list(r["pass_no_violations"]) == [True, True, False, True, True]
    # a change from zero: 0 when still zero, +inf when it rises
    np.testing.assert_array_equal(relative([0, 0, 10], [0, 5, 5]), [0.0, np.inf, -0.5])


def test_summary_median_and_worst_over_seeds_and_worlds():
    rows = score_rows(_hand_rows())
    s = summarise(rows)
    # w1: lost changes -0.4, 0, +0.1; w2: 0, -0.5
    assert s["median"].loc["w1", "lost_units_change"] == pytest.approx(0.0)
    assert s["worst"].loc["w1", "lost_units_change"] == pytest.approx(0.1)
    assert s["median"].loc["w2", "lost_units_change"] == pytest.approx(-0.25)
    assert s["worst"].loc["w1", "margin_vs_rule"] == pytest.approx(-0.02)  # higher is better: the minimum
    assert s["median_over_worlds"]["lost_units_change"] == pytest.approx(-0.125)  # each world weighs the same
    assert s["worst_world"] == "w1"
    assert s["worst_cell_at"]["lost_units_change"] == "C"
    assert s["passed"].loc["w1", "pass_service"] == 2 and s["counted"].loc["w2", "pass_margin_vs_static"] == 1
    assert s["targets"]["pass_service"] == {"passed": 3, "cells": 5, "failed_cells": ["C", "D"]}
    assert s["rule_violations_total"] == 2
    assert not s["median_target_met"]
    # the median world target: -40% lost units at -20% inventory
    good = rows.assign(lost_units_change=-0.5, avg_inventory_change=-0.25)
    assert summarise(good)["median_target_met"]


def test_cli_quick_picks_two_worlds_one_seed_small(monkeypatch, tmp_path):
    from inventory_pipeline import cli
    from inventory_pipeline.simulation import suite

    seen = {}

    def fake_run_suite(scfg, out, progress=None):
        seen.update(scfg=scfg, out=out)
        return {"paths": {}, "meta": {"seconds": 0.0}}

    monkeypatch.setattr(suite, "run_suite", fake_run_suite)
    monkeypatch.setattr(suite, "summary_markdown", lambda res: "")
    assert cli.main(["evaluate-suite", "--quick", "-q"]) == 0
    assert (len(seen["scfg"].worlds), seen["scfg"].seeds, seen["scfg"].sizes) == (2, (101,), ("small",))
    assert seen["out"] == "data/suite_quick"
    cli.main(
        [
            "evaluate-suite",
            "--worlds",
            "seasonal,base+overstock",
            "--seeds",
            "5,6",
            "--sizes",
            "tiny",
            "--days",
            "14",
            "--history-days",
            "90",
            "--out",
            str(tmp_path),
            "-q",
        ]
    )
    c = seen["scfg"]
    assert (c.worlds, c.seeds, c.sizes, c.eval_days, c.history_days) == (
        ("seasonal", "base+overstock"),
        (5, 6),
        ("tiny",),
        14,
        90,
    )
    assert SuiteConfig().eval_days >= 56 and len(SuiteConfig().worlds) >= 6 and len(SuiteConfig().seeds) >= 3


def test_end_inventory_is_the_last_week_of_stores_and_dcs():
    daily = pd.DataFrame({"store_inventory_value": np.arange(10.0), "dc_inventory_value": 100.0 - np.arange(10.0)})
    got = end_inventory(daily)
    assert got["end_inventory_value"] == pytest.approx(100.0)  # stores + DCs is 100 every day
    assert got["end_dc_inventory_value"] == pytest.approx(np.mean(100.0 - np.arange(3, 10)))  # days 3..9


def test_tiny_suite_end_to_end(tmp_path):
    scfg = SuiteConfig(
        worlds=("base+understock",), seeds=(101,), sizes=("tiny",), eval_days=EVAL_DAYS, history_days=90, jobs=1
    )
    res = run_suite(scfg, tmp_path)
    rows = res["rows"]
    assert len(rows) == 1 and rows.loc[0, "cell"] == "base+understock/tiny/101"
    assert bool(rows.loc[0, "same_takeover_state"])  # baseline, pipeline and static prices took over one state
    states = res["details"][0]["takeover_state"]
    assert set(states) == {"baseline", "pipeline", "pipeline/static_prices"}
    assert rows.loc[0, "pipeline_stockout_days"] >= 0 and 0 < rows.loc[0, "fill_rate"] <= 1
    doc = json.loads((tmp_path / "suite.json").read_text())
    assert doc["meta"]["commit"] and doc["meta"]["cells"] == 1 and doc["meta"]["config"]["eval_days"] == EVAL_DAYS
    assert {"pipeline_gross_margin", "static_gross_margin", "rule_avg_inventory_value"} <= set(doc["cells"][0])
    csv = pd.read_csv(tmp_path / "suite.csv")
    assert {"lost_units_change", "end_inventory_change", "pass_service", "pass_margin_vs_static"} <= set(csv.columns)
    md = (tmp_path / "suite.md").read_text()
    assert md.index("median over worlds") < md.index("## Per world") < md.index("## Every cell")
    assert "smoke run" in md  # a window shorter than 56 days says so
    # the rule's run carries the window's floor: no policy holds less, and the rule holds more
    assert 0 <= rows.loc[0, "rule_inventory_floor_value"] <= rows.loc[0, "rule_avg_inventory_value"]
    assert {"inventory_floor_change", "above_floor_change"} <= set(csv.columns) and "inventory floor" in md
    # the tables again from suite.json alone: the same tables, no runs
    again = rescore(tmp_path / "suite.json", tmp_path / "again")
    assert (tmp_path / "again" / "suite.csv").read_text() == (tmp_path / "suite.csv").read_text()
    md_again = (tmp_path / "again" / "suite.md").read_text()
    assert "scored again from suite.json" in md_again and "scored again" not in md
    assert md_again.split("\n")[3:] == md.split("\n")[3:]  # below the header line, the same tables
    assert again["summary"]["targets"] == res["summary"]["targets"]
