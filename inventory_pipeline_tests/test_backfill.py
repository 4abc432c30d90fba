"""A backfill of ten plan dates: in date order, resumed after it died, equal to day-by-day runs.

Runs twenty full plans (about four minutes on two cores), so it has its own target:
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
