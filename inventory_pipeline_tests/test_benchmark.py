"""The benchmark machinery on a tiny network: structure of results.json, never timing thresholds.

The benchmark's phases run in their own process with their own environment (a bench working
folder under tmp_path), so the test session's settings and Dagster instance are not involved.
"""

import json

import pytest

from benchmarks import benchmark
from inventory_pipeline.core.stages import PLAN_ASSETS

STAGES = ["ingest_daily", "dbt build", *PLAN_ASSETS]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bench")
    rc = benchmark.main(["--scale", "tiny", "--out", str(tmp / "out"), "--workdir", str(tmp / "work"), "--one-process"])
    assert rc == 0
    return tmp, json.loads((tmp / "out" / "results.json").read_text())


def _positive(stage: dict) -> None:
    assert stage["wall_s"] > 0 and stage["cpu_s"] > 0, stage
    assert stage["peak_rss_mb"] > 0, stage


def test_daily_partition_measures_every_stage(results):
    _, r = results
    d = r["daily"]
    assert [s["stage"] for s in d["stages"]] == STAGES
    for s in d["stages"]:
        _positive(s)
        assert s["success"] and s["checks_failed"] == 0
        assert s["dagster_step_s"] > 0 and s["cpu_s"] >= s["cpu_self_s"] >= 0
    dbt = d["stages"][1]
    assert dbt["cpu_children_s"] > 0 and dbt["children_peak_rss_mb"] > 0  # dbt is a subprocess
    assert d["series"] > 0 and d["series_per_second"] > 0
    assert d["sku_locations"] == benchmark.SCALES["tiny"].sku_locations
    assert d["cpu_s_per_sku_location"] > 0
    assert d["rows"]["demand_forecast"] > 0 and d["rows"]["marts.fct_daily_demand"] > 0
    assert d["total"]["wall_s"] == pytest.approx(sum(s["wall_s"] for s in d["stages"]), abs=0.01)
    steps = [s["stage"] for s in d["forecast_breakdown"]["steps"]]
    assert any(s.startswith("run_forecast") for s in steps) and "plot" in steps


def test_backfill_records_what_was_measured(results):
    _, r = results
    b, tiny = r["backfill"], benchmark.SCALES["tiny"]
    assert [s["stage"] for s in b["stages"]] == ["ingest_daily", "dbt build", "decision stages"]
    for s in b["stages"]:
        _positive(s)
    assert b["partitions_ingested"] == tiny.backfill_days == b["stages"][0]["partitions"]
    assert b["plan_dates_measured"] == len(b["per_plan_date"]) == tiny.backfill_plan_dates
    assert b["series_per_second"] > 0
    for p in b["per_plan_date"]:  # each plan date measured on its own, and whether its forecast refit
        assert p["wall_s"] > 0 and p["cpu_s"] > 0 and p["peak_rss_mb"] > 0
        assert p["forecast_model_choice"] in ("refit", "reuse")
    assert sum(k["plan_dates"] for k in b["by_model_choice"].values()) == b["plan_dates_measured"]
    assert b["stages"][2]["peak_rss_mb"] >= max(p["peak_rss_mb"] for p in b["per_plan_date"])
    # fewer plan dates than days: the 90-day figure is labelled an extrapolation
    assert b["extrapolated"]["label"].startswith("EXTRAPOLATION")


def test_the_days_after_the_backfill_are_whole_partitions(results):
    """#24's partition targets are measured, not summed from parts: each day after the backfill is
    one daily_cycle run (ingest, dbt, every stage, outbox), after the backfill's last plan date."""
    tmp, r = results
    n, b = r["next_days"], r["backfill"]
    days = [p["plan_date"] for p in n["partitions"]]
    assert days == [benchmark._shift(r["plan_date"], -1)]  # the tiny scale's one (M5: D-2 and D-1)
    assert b["window"][1] < days[0]  # the backfill stops before them: each is a new day for the plan
    for p in n["partitions"]:
        _positive(p)
        assert p["success"] and p["checks_failed"] == 0
        assert p["forecast_model_choice"] in ("refit", "reuse")
        assert {"raw_pos_sales", "warehouse_models", "demand_forecast", "erp_outbox"} <= set(p["step_seconds"])
        assert (tmp / "work" / "outbox" / p["plan_date"] / "manifest.json").is_file()
    md = (tmp / "out" / "results.md").read_text()
    assert "one `daily_cycle` run each" in md and f"| {days[0]} (" in md
    # the last day once more as a deployment runs it: a new process, imports included
    launched = n["launched"]
    assert launched["plan_date"] == days[-1] and launched["returncode"] == 0
    assert launched["wall_s"] > launched["cpu_self_s"] >= 0 and launched["cpu_children_s"] > 0
    assert f"**{days[-1]} again as a launched run: " in md


def test_setup_machine_and_report(results):
    tmp, r = results
    assert r["scale"] == "tiny" and r["plan_date"] == r["history"]["last_date"]
    assert [s["stage"] for s in r["setup"]["stages"]] == [
        "import code location",
        "ingest_master",
        "ingest history",
        "mlflow store",
    ]
    _positive(r["generate"])
    m = r["machine"]
    assert m["usable_cpus"] >= 1 and m["python"].startswith("3.11") and m["packages"]["dagster"]
    assert m["speed_probe_s"]["start"] > 0 and m["speed_probe_s"]["end"] > 0  # how fast the machine ran
    assert 0 <= r["contention"]["share_of_capacity"]
    assert r["settings"]["forecast_engine"] in ("local", "dask")
    md = (tmp / "out" / "results.md").read_text()
    assert "| demand_forecast |" in md and "series/s" in md and "EXTRAPOLATION" in md and "Speed probe" in md
    # the bench has its own landing zone, warehouse and outbox inside the working folder
    assert (tmp / "work" / "outbox" / r["plan_date"] / "manifest.json").is_file()


def test_one_benchmark_per_working_folder(tmp_path):
    first = benchmark._lock(tmp_path)
    try:
        with pytest.raises(SystemExit, match="another benchmark is running"):
            benchmark._lock(tmp_path)
    finally:
        first.close()
    benchmark._lock(tmp_path).close()  # free again once the first run is done
