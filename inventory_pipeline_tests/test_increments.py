"""Incremental dbt (issue #24): which dates a build rebuilds, by hand; and over a tiny network, an
incremental build after new and corrected landing days gives the marts a full refresh gives,
without touching the dates before the first change."""

import shutil

import dagster as dg
import duckdb
import pandas as pd

from inventory_pipeline.core.increments import NOTHING_TO_REBUILD, plan_increment


def _snap(models="m1", products="p1", dated=None) -> dict:
    dated = dated if dated is not None else {"2025-01-01": "a", "2025-01-02": "b"}
    return {
        "models": models,
        "whole": {"raw_locations": "l1", "raw_products": products, "raw_calendar": "c1", "raw_suppliers": "s1"},
        "dated": {t: dict(dated) for t in ("raw_pos_sales", "raw_inventory", "raw_open_orders", "raw_receipts")},
    }


def test_what_a_build_rebuilds():
    before = _snap()
    assert plan_increment(None, before, True).full_refresh  # first build
    assert plan_increment(before, before, False).full_refresh  # the DuckDB file is gone
    same = plan_increment(before, _snap(), True)
    assert (same.full_refresh, same.rebuild_from) == (False, NOTHING_TO_REBUILD)  # a re-ingest of unchanged files
    new_day = plan_increment(before, _snap(dated={"2025-01-01": "a", "2025-01-02": "b", "2025-01-03": "c"}), True)
    assert (new_day.full_refresh, new_day.rebuild_from) == (False, "2025-01-03")
    corrected = _snap(dated={"2025-01-01": "a2", "2025-01-02": "b", "2025-01-03": "c"})
    assert plan_increment(before, corrected, True).rebuild_from == "2025-01-01"  # a late correction: from its day
    removed = plan_increment(before, _snap(dated={"2025-01-01": "a"}), True)
    assert removed.rebuild_from == "2025-01-02"
    assert plan_increment(before, _snap(products="p2"), True).full_refresh  # master data joins every date
    receipts = _snap()
    receipts["dated"]["raw_receipts"]["2025-01-02"] = "b2"  # a corrected receipts file: the lead times' orders
    assert plan_increment(before, receipts, True).rebuild_from == "2025-01-02"
    suppliers = _snap()
    suppliers["whole"]["raw_suppliers"] = "s2"  # an order's type joins the supplier master
    assert plan_increment(before, suppliers, True).full_refresh
    assert plan_increment(before, _snap(models="m2"), True).full_refresh  # a changed model
    assert plan_increment(before, _snap(), True, full_refresh=True).full_refresh
    assert plan_increment(before, _snap(), True).dbt_env() == {"INVENTORY_PIPELINE_DBT_REBUILD_FROM": "9999-12-31"}


def test_the_dbt_resource_knows_the_version_dbt_reports():
    """The version dagster-dbt would ask `dbt --version` for (a 3.8 s subprocess per build) is the
    installed dbt-core's, for this environment's dbt."""
    import re
    import subprocess

    from inventory_pipeline.defs.dbt import dbt_resource

    resource = dbt_resource()
    reported = subprocess.run([resource.dbt_executable, "--version"], capture_output=True, text=True).stdout
    assert str(resource._cli_version) == re.search(r"(\d+\.\d+\.\d+)", reported).group(1)


def test_stage_libraries_are_imported_while_dbt_builds(tmp_path, monkeypatch):
    """The libraries the stages import on first use load in a background thread during the dbt
    step; one that fails to import is left to the step that needs it, and nothing already
    imported starts a thread."""
    import importlib.util
    import sys

    from inventory_pipeline.defs.dbt import STAGE_LIBRARIES, import_in_background

    (tmp_path / "stage_lib_probe.py").write_text("LOADED = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "stage_lib_probe", raising=False)
    thread = import_in_background(("stage_lib_probe", "no_such_library_here"))
    thread.join(timeout=30)
    assert sys.modules["stage_lib_probe"].LOADED and "no_such_library_here" not in sys.modules
    assert import_in_background(("stage_lib_probe",)) is None
    assert {"mlflow", "statsforecast", "statsforecast.models", "cvxpy"} <= set(STAGE_LIBRARIES)
    # every name is a module that exists (a typo would be skipped silently), and none is pyplot,
    # whose import picks a backend before core.plots asks for Agg
    assert all(importlib.util.find_spec(m) for m in STAGE_LIBRARIES) and "matplotlib.pyplot" not in STAGE_LIBRARIES


FACTS = {
    "fct_daily_demand": "date, location_id, sku_id",
    "fct_inventory_positions": "date, location_id, sku_id",
    "fct_order_lead_times": "order_id",
}


def _marts(root) -> dict[str, pd.DataFrame]:
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        return {t: con.execute(f"select * from marts.{t} order by {k}").df() for t, k in FACTS.items()}


def test_an_incremental_build_equals_a_full_refresh(tmp_path, tiny_config):
    from inventory_pipeline.definitions import build_definitions
    from inventory_pipeline.defs.dbt import dbt_resource, warehouse_models
    from inventory_pipeline.defs.partitions import PARTITION_RANGE_END_TAG, PARTITION_RANGE_START_TAG
    from inventory_pipeline.defs.resources import LandingZoneResource, WarehouseResource
    from inventory_pipeline.simulation import generate_landing_zone

    generated = tmp_path / "generated"
    generate_landing_zone(tiny_config, generated, write_truth=False)
    days = sorted(p.name for p in (generated / "daily").iterdir())
    landing = tmp_path / "landing"
    shutil.copytree(generated, landing, ignore=lambda d, names: days[60:] if d.endswith("daily") else [])
    root = tmp_path / "warehouse"
    defs = build_definitions(
        {"landing": LandingZoneResource(uri=str(landing)), "warehouse": WarehouseResource(root=str(root))}
    )
    dbt_resources = {"dbt": dbt_resource(), "warehouse": WarehouseResource(root=str(root))}

    def ingest(first: str, last: str) -> None:
        tags = {PARTITION_RANGE_START_TAG: first, PARTITION_RANGE_END_TAG: last}
        assert defs.resolve_job_def("ingest_daily").execute_in_process(instance=instance, tags=tags).success

    def build(full_refresh: bool = False) -> None:
        config = {"ops": {"warehouse_models": {"config": {"full_refresh": full_refresh}}}}
        assert dg.materialize([warehouse_models], resources=dbt_resources, instance=instance, run_config=config).success

    with dg.instance_for_test() as instance:
        assert defs.resolve_job_def("ingest_master").execute_in_process(instance=instance).success
        ingest(days[0], days[59])
        build()  # the first build: every date
        # ten new days, and a corrected sales file for day 30
        for d in days[60:70]:
            shutil.copytree(generated / "daily" / d, landing / "daily" / d)
        sales = landing / "daily" / days[30] / "pos_sales.csv"
        rows = sales.read_text().splitlines()
        first = rows[1].split(",")
        first[3] = str(int(first[3]) + 5)  # five more units sold on that line
        sales.write_text("\n".join([rows[0], ",".join(first), *rows[2:]]) + "\n")
        # and a corrected receipts file for day 40: the ERP takes one receipt back, fixes another
        receipts = landing / "daily" / days[40] / "receipts.csv"
        header, taken_back, fixed, *rest = receipts.read_text().splitlines()
        fixed = fixed.split(",")
        fixed[4] = str(int(fixed[4]) + 3)
        receipts.write_text("\n".join([header, ",".join(fixed), *rest]) + "\n")
        gone = taken_back.split(",")[1]
        lead_times_before = _marts(root)["fct_order_lead_times"]
        ingest(days[30], days[69])
        # marks on day 10 and on a line last seen before day 30: an incremental build from day 30
        # must leave them; a full refresh removes them
        with duckdb.connect(str(root / "warehouse.duckdb")) as con:
            con.execute(f"update marts.fct_daily_demand set units_sold = -1 where date = '{days[10]}'")
            old_line = con.execute(
                f"select min(order_id) from marts.fct_order_lead_times where last_seen_date < '{days[30]}'"
            ).fetchone()[0]
            con.execute(f"update marts.fct_order_lead_times set units_received = -1 where order_id = '{old_line}'")
        build()
        incremental = _marts(root)
        demand = incremental["fct_daily_demand"]
        assert (demand.loc[demand["date"] == pd.Timestamp(days[10]), "units_sold"] == -1).all()
        assert demand["date"].max() == pd.Timestamp(days[69])
        build(full_refresh=True)
        full = _marts(root)
    restored = full["fct_daily_demand"]
    assert (restored.loc[restored["date"] == pd.Timestamp(days[10]), "units_sold"] >= 0).all()
    marked = demand["date"] == pd.Timestamp(days[10])
    pd.testing.assert_frame_equal(demand[~marked].reset_index(drop=True), restored[~marked].reset_index(drop=True))
    pd.testing.assert_frame_equal(incremental["fct_inventory_positions"], full["fct_inventory_positions"])
    # lead times: the line the corrected file took back is gone, the fixed one follows the file,
    # and the line last seen before day 30 kept its (marked) row through the incremental build
    lead, lead_full = incremental["fct_order_lead_times"], full["fct_order_lead_times"]
    assert gone in set(lead_times_before["order_id"]) and gone not in set(lead["order_id"])
    fixed_row = lead_full.set_index("order_id").loc[fixed[1]]
    was = lead_times_before.set_index("order_id").loc[fixed[1], "units_received"]
    assert fixed_row["units_received"] == was + 3
    kept = lead["order_id"] == old_line
    assert lead.loc[kept, "units_received"].tolist() == [-1]
    pd.testing.assert_frame_equal(lead[~kept].reset_index(drop=True), lead_full[~kept].reset_index(drop=True))
    # the corrected line is in both
    loc, sku, units = first[1], first[2], int(first[3])
    line = restored[(restored["date"] == pd.Timestamp(days[30])) & (restored["location_id"] == loc)
                    & (restored["sku_id"] == sku)]  # fmt: skip
    assert line["units_sold"].tolist() == [units]
