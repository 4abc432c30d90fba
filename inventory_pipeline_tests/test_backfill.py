"""A backfill of ten plan dates: in date order, resumed after it died, equal to day-by-day runs.
A corrected landing file: the stale_plans sensor plans that day and every later one again, in
date order, and they equal plans that had the corrected file on time.

Runs thirty full plans (about nine minutes on two cores), so it has its own target:
`make test-backfill` (CI runs it after `make test`)."""

from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

pytestmark = pytest.mark.backfill


def _defs(root: Path, landing: Path):
    from inventory_pipeline.definitions import build_definitions
    from inventory_pipeline.defs.resources import LandingZoneResource, MlflowResource, OutboxResource, WarehouseResource

    return build_definitions(
        {
            "landing": LandingZoneResource(uri=str(landing)),
            "warehouse": WarehouseResource(root=str(root / "warehouse")),
            "outbox": OutboxResource(uri=str(root / "outbox")),
            "mlflow": MlflowResource(
                tracking_uri=f"sqlite:///{root / 'mlflow.db'}", artifact_root=str(root / "mlartifacts"), ui_url=""
            ),
        }
    )


def _plan_record(root: Path, dates: list[str]) -> dict:
    """Per plan date: its decision ids, each decision's events by type, and its outbox files' bytes."""
    from inventory_pipeline.core.warehouse import Warehouse

    wh = Warehouse(root / "warehouse")
    out = {}
    for d in dates:
        log = wh.read("decision_log", d)
        ev = wh.read("decision_events", d)
        folder = root / "outbox" / d
        out[d] = {
            "decision_ids": sorted(log["decision_id"]),
            "events": ev.groupby(["decision_id", "event"]).size().sort_index().to_dict(),
            "outbox": {p.name: p.read_bytes() for p in sorted(folder.iterdir())},
        }
        assert log["decision_id"].is_unique, d
    return out


def test_a_killed_backfill_resumes_in_date_order_and_equals_day_by_day_runs(tmp_path, monkeypatch):
    from inventory_pipeline.core.landing_dates import landing_dates
    from inventory_pipeline.defs import outbox as outbox_asset
    from inventory_pipeline.runner import run_pipeline
    from inventory_pipeline.simulation import NetworkConfig, generate_landing_zone

    landing = tmp_path / "landing"
    cfg = NetworkConfig(regions=1, dcs=1, stores=3, skus=10, suppliers=2, days=80, seed=5, burn_in_days=28)
    generate_landing_zone(cfg, landing, write_truth=False)
    every = landing_dates([p.name for p in (landing / "daily").iterdir()])
    dates = every[-10:]
    quiet = {"log": lambda m: None, "warn": lambda m: None}

    # day by day: each morning that day's files are ingested, then the day is planned
    daily = _defs(tmp_path / "daily", landing)
    with dg.instance_for_test() as instance:
        for i, d in enumerate(dates):
            first = every[0] if i == 0 else d
            out = run_pipeline(plan_date=d, first_date=first, instance=instance, defs=daily, **quiet)
            assert out["results"]["daily_plan"].success, d

    # the backfill dies in the sixth plan's outbox step, after its decisions were logged
    back = _defs(tmp_path / "backfill", landing)
    real_write = outbox_asset.write_local

    def dies_on_the_sixth(files, root, plan_date):
        if plan_date == dates[5]:
            raise RuntimeError("killed while writing the outbox")
        return real_write(files, root, plan_date)

    monkeypatch.setattr(outbox_asset, "write_local", dies_on_the_sixth)
    with dg.instance_for_test() as instance:
        out = run_pipeline(plan_date=dates[-1], plan_from=dates[0], instance=instance, defs=back, **quiet)
        assert out["planned"] == dates and out["skipped"] == []
        assert not out["results"]["daily_plan"].success and out["outcome"].plan_date == dates[5]
        assert out["outcome"].not_run == [f"daily_plan {d}" for d in dates[6:]]
        assert not (tmp_path / "backfill" / "outbox" / dates[5]).exists()
        monkeypatch.setattr(outbox_asset, "write_local", real_write)
        again = run_pipeline(plan_date=dates[-1], plan_from=dates[0], instance=instance, defs=back, **quiet)
        assert again["skipped"] == dates[:5] and again["planned"] == dates[5:]  # resumed at the killed date
        assert again["results"]["daily_plan"].success
        runs = instance.get_runs(dg.RunsFilter(job_name="daily_plan"))
        order = [r.tags["dagster/partition"] for r in reversed(runs)]  # get_runs lists the newest first
        assert order == [*dates[:6], *dates[5:]]  # in date order, the killed date once more, nothing else twice

    by_day, backfilled = _plan_record(tmp_path / "daily", dates), _plan_record(tmp_path / "backfill", dates)
    for d in dates:
        assert backfilled[d]["decision_ids"] == by_day[d]["decision_ids"], d
        assert backfilled[d]["outbox"] == by_day[d]["outbox"], d
        assert backfilled[d]["events"] == by_day[d]["events"], d  # each decision exported once, as day by day
    assert sum(len(r["decision_ids"]) for r in by_day.values()) > 0
    # the plans carried their forecast state from one date to the next, as the daily runs did
    runs = pd.concat([pd.read_parquet(tmp_path / m / "warehouse" / "forecast_run" / d / "data.parquet")
                      .assign(mode=m) for m in ("daily", "backfill") for d in dates])  # fmt: skip
    cols = ["plan_date", "selected_on", "cv_on", "series_forwarded", "cv_wape"]
    pd.testing.assert_frame_equal(
        runs[runs["mode"] == "daily"][cols].reset_index(drop=True),
        runs[runs["mode"] == "backfill"][cols].reset_index(drop=True),
    )


def _tick(instance, warehouse_root: Path, cursor: str | None):
    """One evaluation of the stale_plans sensor: (run request or skip reason, new cursor)."""
    from inventory_pipeline.defs.resources import WarehouseResource
    from inventory_pipeline.defs.sensors import stale_plans

    ctx = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"warehouse": WarehouseResource(root=str(warehouse_root))}
    )
    return stale_plans(ctx), ctx.cursor


def test_a_corrected_file_replans_that_day_and_every_later_one_in_order(tmp_path):
    from inventory_pipeline.core.landing_dates import landing_dates
    from inventory_pipeline.runner import run_pipeline
    from inventory_pipeline.simulation import NetworkConfig, generate_landing_zone

    landing = tmp_path / "landing"
    cfg = NetworkConfig(regions=1, dcs=1, stores=3, skus=10, suppliers=2, days=70, seed=8, burn_in_days=28)
    generate_landing_zone(cfg, landing, write_truth=False)
    every = landing_dates([p.name for p in (landing / "daily").iterdir()])
    dates = every[-3:]
    quiet = {"log": lambda m: None, "warn": lambda m: None}

    def day_by_day(root: Path, instance) -> dg.Definitions:
        defs = _defs(root, landing)
        for i, d in enumerate(dates):
            out = run_pipeline(plan_date=d, first_date=every[0] if i == 0 else d, instance=instance, defs=defs, **quiet)
            assert out["results"]["daily_plan"].success, d
        return defs

    with dg.instance_for_test() as instance:
        defs = day_by_day(tmp_path / "live", instance)
        ingest = defs.resolve_job_def("ingest_daily")
        assert ingest.execute_in_process(partition_key=dates[0], instance=instance).success  # the same file again
        skip, cursor = _tick(instance, tmp_path / "live" / "warehouse", None)
        assert isinstance(skip, dg.SkipReason) and skip.skip_message == "every plan read what the warehouse holds"

        # the POS file of the first planned day is corrected after the three plans. First wrongly: its best
        # seller sold three times as much, which the stock ledger contradicts, so the re-plan stops at the gate
        pos_file = landing / "daily" / dates[0] / "pos_sales.csv"
        pos = pd.read_csv(pos_file, dtype=str)
        top = pos["units_sold"].astype(float).idxmax()
        wrong = pos.copy()
        wrong.loc[top, "units_sold"] = str(int(float(pos.loc[top, "units_sold"])) * 3)
        wrong.to_csv(pos_file, index=False)
        assert ingest.execute_in_process(partition_key=dates[0], instance=instance).success  # the landing sensor's run
        req, cursor = _tick(instance, tmp_path / "live" / "warehouse", cursor)
        assert req.partition_key == dates[0]
        res = defs.resolve_job_def("daily_plan").execute_in_process(
            partition_key=dates[0], tags=req.tags, instance=instance, raise_on_error=False
        )
        assert not res.success
        stopped, cursor = _tick(instance, tmp_path / "live" / "warehouse", cursor)
        assert f"the re-plan of {dates[0]} ended FAILURE; later plans wait for it" in stopped.skip_message
        # then rightly: the ERP's price and promotion flag of that line were wrong (the stock ledger holds)
        right = pos.copy()
        right.loc[top, "unit_price"] = f"{float(pos.loc[top, 'unit_price']) * 0.8:.2f}"
        right.loc[top, "on_promo"] = "1"
        right.to_csv(pos_file, index=False)
        assert ingest.execute_in_process(partition_key=dates[0], instance=instance).success
        # planner answers republish the first plan before the sensor gets to it: still stale
        publish = defs.resolve_job_def("publish_decisions")
        assert publish.execute_in_process(partition_key=dates[0], instance=instance).success

        replanned = []
        for _ in range(len(dates) + 1):
            req, cursor = _tick(instance, tmp_path / "live" / "warehouse", cursor)
            if isinstance(req, dg.SkipReason):
                break
            assert f"raw_pos_sales/{dates[0]} changed" in req.tags["inventory_pipeline/replan_reason"]
            replanned.append(req.partition_key)
            res = defs.resolve_job_def("daily_plan").execute_in_process(
                partition_key=req.partition_key, tags=req.tags, instance=instance
            )
            assert res.success, req.partition_key
        assert replanned == dates, replanned  # the corrected day, then every later plan, in date order
        assert req.skip_message.startswith(f"re-planned every plan through {dates[-1]}")
        again, _ = _tick(instance, tmp_path / "live" / "warehouse", cursor)
        assert again.skip_message == "every plan read what the warehouse holds"

    with dg.instance_for_test() as instance:  # what the plans are when the corrected file was there on time
        day_by_day(tmp_path / "on_time", instance)
    live, on_time = _plan_record(tmp_path / "live", dates), _plan_record(tmp_path / "on_time", dates)
    for d in dates:
        assert live[d]["decision_ids"] == on_time[d]["decision_ids"], d
        assert live[d]["outbox"] == on_time[d]["outbox"], d
    first = [pd.read_parquet(tmp_path / m / "warehouse" / "demand_forecast" / dates[0] / "data.parquet")
             for m in ("live", "on_time")]  # fmt: skip
    pd.testing.assert_frame_equal(first[0], first[1])  # no stale number: the forecast learnt the corrected sales
    revised = {d: _revised(tmp_path / "live", d) for d in dates}
    assert sum(revised.values()) > 0, revised  # the correction changed decisions: new revisions, exported again


def _revised(root: Path, d: str) -> int:
    """Decisions of plan d proposed with more than one revision."""
    ev = pd.read_parquet(root / "warehouse" / "decision_events" / d / "data.parquet")
    return int((ev[ev["event"] == "proposed"].groupby("decision_id")["revision"].nunique() > 1).sum())
