"""The twin measures pricing: overstock KPI, price decreases, the pipeline's pricing switch, its
guardrail-violation count and the evaluation's static- vs dynamic-price comparison."""

import dataclasses
import json
import pickle

import numpy as np
import pandas as pd
import pytest

from inventory_pipeline.config import DEFAULT_POLICY_PATH
from inventory_pipeline.core import stages
from inventory_pipeline.core.kpis import overstock, twin_kpis
from inventory_pipeline.core.policy import PricingPolicy, load_policy
from inventory_pipeline.simulation import NetworkConfig, build_network
from inventory_pipeline.simulation import pipeline_policy as pp
from inventory_pipeline.simulation.demand import DemandModel
from inventory_pipeline.simulation.engine import MA_WINDOW, OVERSTOCK_WEEKS, STORE_ACC, simulate
from inventory_pipeline.simulation.evaluation import (
    STATIC_PRICES,
    EvaluationConfig,
    RunSpec,
    evaluate,
    headline_text,
    write_report,
)
from inventory_pipeline.simulation.policies import BaselinePolicy, SwitchingPolicy

SMALL = NetworkConfig(regions=1, dcs=1, stores=2, skus=8, suppliers=2, days=100, seed=7, burn_in_days=14)


# ---- the overstock KPI ----------------------------------------------------------------------------


def test_overstock_hand_computed():
    on_hand = np.array([[100, 10], [0, 57]])
    mu = np.array([[1.0, 0.5], [2.0, 1.0]])  # 8 weeks = 56 days of supply: 56, 28, 112, 56 units
    units, value = overstock(on_hand, mu, unit_cost=np.array([2.0, 3.0]), weeks=8)
    assert units.tolist() == [[44, 0], [0, 1]]
    assert value.tolist() == [[88, 0], [0, 3]]
    # twin_kpis: averages per measured day of the accumulated sums; absent accumulators give nan
    measured = ("overstock_units_days", "overstock_value_days", "price_decreases")
    store = {k: np.zeros((2, 2)) for k in STORE_ACC if k not in measured}
    k = twin_kpis(
        {
            **store,
            "overstock_units_days": units * 4,
            "overstock_value_days": value * 4,
            "price_decreases": np.array([[1, 0], [2, 0]]),
        },
        None,
        days=4,
        annual_holding_rate=0.25,
    )
    assert k["overstock_units"] == pytest.approx(45) and k["overstock_value"] == pytest.approx(91)
    assert k["price_decreases"] == 3
    k = twin_kpis(store, None, days=4, annual_holding_rate=0.25)
    assert np.isnan(k["overstock_units"]) and np.isnan(k["overstock_value"])


def test_engine_overstock_accumulator_matches_an_independent_recount():
    """The engine's overstock sums equal a recount from the day records and the demand model: true
    mean daily demand at the prices in force, trailing 28 days (since launch), 8 weeks of supply."""
    cfg = NetworkConfig(
        regions=1, dcs=1, stores=2, skus=6, suppliers=2, days=60, seed=3, burn_in_days=14, new_item_share=0.34
    )
    net = build_network(cfg)
    B, T = cfg.burn_in_days, cfg.burn_in_days + cfg.days
    old = np.flatnonzero(net.sku_launch_day <= 0)
    cut, dear = (0, int(old[0])), (1, int(old[1]))

    class Hoarder(BaselinePolicy):  # 80 safety days: well above 8 weeks of supply; two price changes
        def decide(self, obs):
            o = super().decide(obs)
            pf = obs.price_factor.copy()
            if obs.t == B + 5:
                pf[cut], pf[dear] = 0.8, 1.2
            return dataclasses.replace(o, price_factor=pf)

    recs = []
    res = simulate(net, Hoarder(safety_days=80), sink=recs.append)
    dm = DemandModel(net)
    pf = np.ones((T, len(net.store_ids), len(net.sku_ids)))
    for r in recs:
        pf[r.t] = r.price / net.price_path[r.t][None, :]
    means = np.stack([dm.mean(t, pf[t]) for t in range(T)])
    cum = np.concatenate([np.zeros((1, *means.shape[1:])), np.cumsum(means, axis=0)])
    launch = net.sku_launch_day + B
    L, S = means.shape[1:]
    units = np.zeros((L, S))
    net_units = np.zeros((1, S))  # one DC: its stock plus both stores', against both stores' demand
    for r in recs:
        lo = np.minimum(np.maximum(max(r.t - MA_WINDOW + 1, 0), launch), r.t + 1)  # per SKU: trailing, since launch
        n = r.t + 1 - lo
        window = cum[r.t + 1] - cum[lo[None, :], np.arange(L)[:, None], np.arange(S)[None, :]]
        mu = np.where(n > 0, window / np.maximum(n, 1), 0.0)
        units += np.maximum(r.store_on_hand - 7 * OVERSTOCK_WEEKS * mu, 0)
        if r.t >= B:
            net_units += np.maximum(r.dc_on_hand + r.store_on_hand.sum(0) - 7 * OVERSTOCK_WEEKS * mu.sum(0), 0)
    assert units.sum() > 0 and res.measured_days == cfg.days
    np.testing.assert_allclose(res.store["overstock_units_days"], units, rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(res.store["overstock_value_days"], units * net.unit_cost[None, :], rtol=1e-9, atol=1e-6)
    # one price decrease, two changes; the daily frame carries both KPIs
    assert res.store["price_decreases"].sum() == 1 and res.store["price_decreases"][cut] == 1
    assert res.store["price_changes"].sum() == 2
    assert res.daily["price_decreases"].sum() == 1
    assert res.daily["overstock_units"].sum() == pytest.approx(units.sum())
    k = twin_kpis(res.store, res.dc, res.measured_days, 0.25)
    assert k["overstock_units"] == pytest.approx(units.sum() / cfg.days)
    np.testing.assert_allclose(res.dc["overstock_units_days"], net_units, rtol=1e-9, atol=1e-6)
    assert k["network_overstock_units"] == pytest.approx(net_units.sum() / cfg.days)


# ---- the pipeline policy: pricing switch, positions, guardrail count -----------------------------


def _fake_pricing(calls: list):
    """recommend_prices stand-in: the real stage with pricing off (prices held), then -- when the
    config says pricing is on -- the first store x SKU raised 25%, beyond `max_change` (10%)."""
    real = stages.recommend_prices

    def fake(forecast, history, products, plan_date, cfg=None, positions=None, **kw):
        cfg = PricingPolicy() if cfg is None else cfg
        calls.append(
            {
                "enabled": cfg.enabled,
                "positions": None if positions is None else len(positions),
                "locations": kw.get("locations") is not None,
            }
        )
        recs = real(
            forecast,
            history,
            products,
            plan_date,
            cfg.model_copy(update=dict(enabled=False)),
            positions=positions,
            **kw,
        )
        if cfg.enabled:
            recs.loc[0, "recommended_price"] = round(float(recs.loc[0, "current_price"]) * 1.25, 2)
        return recs

    return fake


# only max_change can be broken by the fake: no ladder, no category cap, no markdown, no freeze
LOOSE_POLICY = """version: loose
pricing:
  enabled: false
  price_endings: []
  category_avg_change_cap_pct: 50
  overstock_weeks: 1.0e9
  min_days_between_changes: 0
  min_days_between_markdowns: 0
"""


@pytest.fixture
def loose_policy(tmp_path):
    path = tmp_path / "loose_policy.yaml"
    path.write_text(LOOSE_POLICY)
    return path


@pytest.fixture
def fake_pricing(monkeypatch):
    calls = []
    monkeypatch.setattr(stages, "recommend_prices", _fake_pricing(calls))
    return calls


@pytest.mark.parametrize("enabled", [True, False])
def test_pipeline_policy_prices_with_positions_and_counts_guardrail_violations(fake_pricing, loose_policy, enabled):
    net = build_network(SMALL)
    T = SMALL.burn_in_days + SMALL.days
    days = 8
    loose = load_policy(loose_policy)
    pol = pp.PipelinePolicy(net, loose, pricing_enabled=enabled)
    # the override on the file's section, nothing else changed
    assert pol.policy.pricing == loose.pricing.model_copy(update=dict(enabled=enabled)) and pol.policy.tag == loose.tag
    res = simulate(net, SwitchingPolicy(BaselinePolicy(), pol, T - days), measure_from=T - days)
    assert len(fake_pricing) == days
    assert all(c["enabled"] is enabled and c["locations"] for c in fake_pricing)
    # today's positions: every DC and store x SKU
    assert {c["positions"] for c in fake_pricing} == {(len(net.dc_ids) + len(net.store_ids)) * len(net.sku_ids)}
    if enabled:  # one recommendation beyond max_change every decision day, executed as recommended
        assert pol.guardrail_violations == days and dict(pol.guardrail_violations_by) == {"max_change": days}
        assert pol.price_changes_recommended == days
        assert res.store["price_changes"].sum() == days and res.store["price_decreases"].sum() == 0
    else:
        assert pol.guardrail_violations == 0 and pol.price_changes_recommended == 0
        assert res.store["price_changes"].sum() == 0


def test_plan_decisions_defaults_to_the_policy_files_pricing(monkeypatch):
    from inventory_pipeline.core import stages
    from inventory_pipeline.core.sources import PriceBook

    seen = []

    class Stop(Exception):
        pass

    def spy(*a, **kw):
        seen.append((a, kw))
        raise Stop

    pos = pd.DataFrame({"location_id": ["S1"], "sku_id": ["K1"], "on_hand": [1], "on_order": [0]})
    empty = pd.DataFrame()

    class Stub:  # a Source with nothing in it but one position
        def __getattr__(self, name):
            return lambda *a, **kw: empty

        def positions(self, plan_date):
            return pos

        def products(self):
            return pd.DataFrame({"sku_id": ["K1"], "category": ["c"]})

        def product_lifecycle(self):
            return None

        def price_book(self, plan_date, history):
            return PriceBook(pd.DataFrame(columns=["location_id", "sku_id", "price", "effective_date"]))

        def forecast_date(self, plan_date):
            return None

    monkeypatch.setattr(stages, "recommend_prices", spy)
    pol = load_policy(DEFAULT_POLICY_PATH)
    for policy in (pol, pol.with_changes("pricing", enabled=False, min_margin=0.5)):
        with pytest.raises(Stop):
            stages.plan_decisions(Stub(), "2025-01-01", policy)
        a, kw = seen.pop()
        assert a[4] == policy.pricing and kw["costs"] == policy.costs and kw["positions"] is pos


# ---- the evaluation: static-price run, pricing section, total guardrail count ----------------------


def test_evaluation_compares_dynamic_with_static_prices(fake_pricing, loose_policy, tmp_path):
    net = build_network(SMALL)
    ecfg = EvaluationConfig(
        days=10,
        frontier_safety_days=(7.0,),
        frontier_service_levels=(0.8,),
        scenarios=False,
        jobs=1,
        pricing_enabled=True,
    )
    report = evaluate(net, loose_policy, ecfg)
    runs = report["meta"]["run_seconds"]
    assert set(runs) == {"baseline", "pipeline", STATIC_PRICES, "frontier/pipeline/0.8"}
    pr = report["pricing"]
    assert pr["enabled"] and report["meta"]["pricing_enabled"]
    # every pipeline run priced (one violation a day) except the static one; the total sums them all
    assert pr["guardrail_violations_by_run"] == {"pipeline": 10, STATIC_PRICES: 0, "frontier/pipeline/0.8": 10}
    assert pr["guardrail_violations_total"] == 20 and pr["guardrail_violations_by_guardrail"] == {"max_change": 20}
    s, d = pr["static"], pr["dynamic"]
    assert s["price_changes"] == 0 and d["price_changes"] == 10 and d["guardrail_violations"] == 10
    assert s["guardrail_violations"] == 0
    for k in ("gross_margin", "revenue", "stockout_rate", "carrying_cost", "overstock_units", "overstock_value"):
        assert k in s and k in d and k in pr["change"] and np.isfinite(s[k])
    assert pr["difference"]["gross_margin"] == pytest.approx(d["gross_margin"] - s["gross_margin"])
    # the static run is the same pipeline on the same demand, only the prices differ
    assert report["pipeline"]["demand_units"] != 0 and report["pipeline"]["price_changes"] == 10
    paths = write_report(report, tmp_path)
    k = json.loads(paths["kpis"].read_text())
    assert k["pricing"]["guardrail_violations_total"] == 20 and "overstock_units" in k["pricing"]["static"]
    assert "overstock_units" in k["baseline"] and "price_decreases" in k["pipeline"]
    html = paths["report"].read_text()
    assert "dynamic vs static prices" in html and "static_prices" in html
    text = headline_text(report)
    assert (
        "pricing vs static prices: gross margin" in text and "guardrail violations over all pipeline runs: 20" in text
    )


def test_evaluation_without_pricing_makes_no_static_run(fake_pricing, loose_policy, tmp_path):
    net = build_network(SMALL)
    ecfg = EvaluationConfig(days=10, frontier=False, scenarios=False, jobs=1, pricing_enabled=False)
    report = evaluate(net, loose_policy, ecfg)
    assert set(report["meta"]["run_seconds"]) == {"baseline", "pipeline"}
    pr = report["pricing"]
    assert not pr["enabled"] and "static" not in pr and "disabled" in pr["note"]
    assert pr["guardrail_violations_total"] == 0 and report["pipeline"]["price_changes"] == 0
    assert all(not c["enabled"] for c in fake_pricing)
    paths = write_report(report, tmp_path)
    assert json.loads(paths["kpis"].read_text())["pricing"]["enabled"] is False
    assert "pricing: disabled" in headline_text(report)


def test_run_spec_with_a_pricing_override_is_picklable():
    spec = RunSpec(STATIC_PRICES, "pipeline", SMALL, str(DEFAULT_POLICY_PATH), switch_day=100, pricing_enabled=False)
    assert pickle.loads(pickle.dumps(spec)) == spec


def test_demo_command_hands_the_evaluation_every_option(monkeypatch):
    """`inventory-pipeline demo` builds its evaluation arguments with the evaluate command's own
    parser, so an option added to `evaluate` (e.g. --pricing) cannot be missing from the demo."""
    import inventory_pipeline.simulation as sim
    from inventory_pipeline import cli

    seen = {}
    monkeypatch.setattr(
        sim,
        "generate_landing_zone",
        lambda cfg, uri: {"first_date": "a", "last_date": "b", "fill_rate": 1.0, "stockout_rate": 0.0, "seconds": 0},
    )
    monkeypatch.setattr(cli, "_run", lambda a: 0)
    monkeypatch.setattr(cli, "_evaluate", lambda a: seen.update(vars(a)) or 0)
    assert cli.main(["demo"]) == 0
    assert seen["pricing"] is None and seen["no_frontier"] and seen["no_scenarios"] and seen["quiet"]
