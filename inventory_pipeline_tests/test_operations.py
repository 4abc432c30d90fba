"""Operations: landing-day completeness and the landing sensor's cursor, the daily schedule,
transient retries with backoff, the run-failure and run-summary sensors, freshness checks, and
backfill equivalence (one run over a range == day-by-day runs)."""

import errno
import http.server
import json
import random
import threading
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from inventory_pipeline.core.landing_days import landing_days, landing_requests
from inventory_pipeline.core.retries import backoff_seconds, is_transient
from inventory_pipeline.core.run_records import failure_record, merge_by_run, run_summary

REQ = ("pos_sales", "inventory", "receipts", "open_orders")


def _entries(days: dict[str, tuple[str, ...]], size=10, mtime=0.0) -> dict:
    return {f"{d}/{n}.csv": (size, f"v{size}", mtime) for d, names in days.items() for n in names}


# ---------------------------------------------------------------------------------------------
# core: completeness, signatures, which days to launch


def test_a_day_is_complete_only_with_every_required_file():
    days = landing_days(_entries({"2025-01-01": REQ, "2025-01-02": REQ[:2]}) | {"2025-01-01/notes.txt": (1, "x", 0.0)})
    assert days["2025-01-01"].complete and days["2025-01-01"].missing == ()
    assert not days["2025-01-02"].complete and days["2025-01-02"].missing == ("receipts", "open_orders")


def test_a_file_still_being_written_makes_the_day_wait():
    e = _entries({"2025-01-01": REQ}, mtime=100.0)
    assert not landing_days(e, now=110.0, settle_seconds=30)["2025-01-01"].complete
    assert landing_days(e, now=200.0, settle_seconds=30)["2025-01-01"].complete


def test_signature_changes_with_a_corrected_or_late_file_and_not_otherwise():
    a = landing_days(_entries({"2025-01-01": REQ}))["2025-01-01"].signature
    assert landing_days(_entries({"2025-01-01": REQ}))["2025-01-01"].signature == a  # deterministic
    assert landing_days(_entries({"2025-01-01": REQ}, size=11))["2025-01-01"].signature != a  # corrected
    late = _entries({"2025-01-01": REQ}) | {"2025-01-01/pos_sales.parquet": (5, "p", 0.0)}
    assert landing_days(late)["2025-01-01"].signature != a


def test_requests_plan_the_newest_day_and_reingest_late_older_days():
    parts = {f"2025-01-0{i}" for i in range(1, 10)}
    days = landing_days(_entries({f"2025-01-0{i}": REQ for i in (1, 2, 3)} | {"2025-01-04": REQ[:1]}))
    first = landing_requests(days, {}, parts)
    assert first.plan == ["2025-01-03"] and first.ingest_only == ["2025-01-01", "2025-01-02"]
    assert first.waiting == {"2025-01-04": "missing inventory, receipts, open_orders"}
    again = landing_requests(days, first.cursor, parts)
    assert again.plan == [] and again.ingest_only == []  # nothing twice
    # a corrected file of an old day: re-ingested only; the newer plan is not redone
    fixed = landing_days(_entries({f"2025-01-0{i}": REQ for i in (1, 3)}) | _entries({"2025-01-02": REQ}, size=99))
    late = landing_requests(fixed, first.cursor, parts)
    assert late.plan == [] and late.ingest_only == ["2025-01-02"]
    # days outside the partitions (future, before the start) are left for later
    assert landing_requests(days, {}, {"2025-01-01"}).plan == ["2025-01-01"]


# ---------------------------------------------------------------------------------------------
# core: transient failures and backoff


def test_transient_failures_are_told_from_permanent_ones():
    from botocore.exceptions import ClientError, EndpointConnectionError

    assert is_transient(ConnectionResetError())
    assert is_transient(EndpointConnectionError(endpoint_url="http://127.0.0.1:1"))
    assert is_transient(ClientError({"Error": {"Code": "SlowDown"}}, "GetObject"))
    assert not is_transient(ClientError({"Error": {"Code": "NoSuchBucket"}}, "GetObject"))
    assert is_transient(OSError(errno.EAGAIN, "try again"))
    assert not is_transient(FileNotFoundError(errno.ENOENT, "gone"))
    assert is_transient(RuntimeError('IO Error: Could not set lock on file "warehouse.duckdb"'))
    assert not is_transient(ValueError("negative quantity"))
    try:  # a wrapped cause counts
        try:
            raise TimeoutError("read timed out")
        except TimeoutError as e:
            raise RuntimeError("reading landing file failed") from e
    except RuntimeError as wrapped:
        assert is_transient(wrapped)


def test_backoff_doubles_then_caps():
    assert [backoff_seconds(a, base=2, cap=30, jitter=0) for a in range(6)] == [2, 4, 8, 16, 30, 30]


@given(st.integers(0, 20), st.floats(0.1, 10), st.floats(0, 0.5), st.integers(0, 10_000))
def test_backoff_stays_within_jitter_and_cap(attempt, base, jitter, seed):
    cap = 60.0
    w = backoff_seconds(attempt, base=base, cap=cap, jitter=jitter, rng=random.Random(seed))
    nominal = min(cap, base * 2**attempt)
    assert nominal * (1 - jitter) - 1e-3 <= w <= min(cap, nominal * (1 + jitter)) + 1e-3


# ---------------------------------------------------------------------------------------------
# core: run records


def test_run_summary_one_row_per_step_with_duration_and_rows():
    ev = [
        {"step": "a", "kind": "STEP_START", "timestamp": 10.0},
        {"step": "a", "kind": "ASSET_MATERIALIZATION", "timestamp": 12.0, "asset": "x[2025-01-01]", "rows": 5},
        {"step": "a", "kind": "ASSET_MATERIALIZATION", "timestamp": 12.5, "asset": "y[2025-01-01]", "rows": 7},
        {"step": "a", "kind": "STEP_SUCCESS", "timestamp": 13.5},
        {"step": "b", "kind": "STEP_START", "timestamp": 14.0},
        {"step": "b", "kind": "STEP_FAILURE", "timestamp": 15.0},
    ]
    t = run_summary("r1", "daily_plan", "2025-01-01", ev)
    assert t["step"].tolist() == ["a", "b"] and t["status"].tolist() == ["success", "failure"]
    assert t["seconds"].tolist() == [3.5, 1.0] and t["rows"].tolist() == [12, pd.NA] or t["rows"].iloc[1] is pd.NA
    assert t["assets"].iloc[0] == "x[2025-01-01], y[2025-01-01]" and set(t["partition"]) == {"2025-01-01"}


def test_failure_records_merge_once_per_run_and_step():
    a = failure_record("r1", "daily_plan", "2025-01-01", 0.0, [("demand_forecast", "Boom\ntraceback...")], "run failed")
    assert a[["step", "error"]].values.tolist() == [["demand_forecast", "Boom"]]
    assert a["dagster_url"].iloc[0].endswith("/runs/r1")
    b = failure_record("r2", "ingest_daily", "", 1.0, [], "could not start")
    m = merge_by_run(merge_by_run(None, a), b)
    assert len(m) == 2 and len(merge_by_run(m, a)) == 2


# ---------------------------------------------------------------------------------------------
# shell: the landing sensor and the schedule on a real landing folder


def _day(root: Path, d: str, names=REQ):
    (root / "daily" / d).mkdir(parents=True, exist_ok=True)
    for n in names:
        (root / "daily" / d / f"{n}.csv").write_text("x\n")


def test_landing_sensor_cursor_launches_each_day_once_and_picks_up_late_files(tmp_path, monkeypatch):
    from inventory_pipeline.defs.resources import LandingZoneResource
    from inventory_pipeline.defs.sensors import landing_days_complete

    monkeypatch.setenv("INVENTORY_PIPELINE_LANDING_SETTLE_SECONDS", "0")
    for d in ("2025-01-01", "2025-01-02", "2025-01-03", "2025-01-05"):
        _day(tmp_path, d)
    _day(tmp_path, "2025-01-06", REQ[:2])  # incomplete
    landing = LandingZoneResource(uri=str(tmp_path))

    def tick(cursor):
        with dg.build_sensor_context(cursor=cursor, resources={"landing": landing}) as ctx:
            out = landing_days_complete(ctx)
            return out, ctx.cursor

    reqs, cursor = tick(None)
    by_job = [
        (
            r.job_name,
            r.partition_key,
            r.tags.get("dagster/asset_partition_range_start"),
            r.tags.get("dagster/asset_partition_range_end"),
        )
        for r in reqs
    ]
    # consecutive older days in one range run, the gap day alone, then the newest day's cycle last
    assert by_job == [("ingest_daily", None, "2025-01-01", "2025-01-03"), ("daily_cycle", "2025-01-05", None, None)]
    again, cursor = tick(cursor)
    assert isinstance(again, dg.SkipReason) and "2025-01-06: missing receipts, open_orders" in again.skip_message
    _day(tmp_path, "2025-01-06")  # the late files arrive: that day is now complete and newest
    (tmp_path / "daily" / "2025-01-02" / "receipts.csv").write_text("x\ncorrected\n")
    reqs, cursor = tick(cursor)
    assert [(r.job_name, r.partition_key) for r in reqs] == [
        ("ingest_daily", "2025-01-02"),
        ("daily_cycle", "2025-01-06"),
    ]
    assert len({r.run_key for r in reqs}) == 2
    assert isinstance(tick(cursor)[0], dg.SkipReason)


def test_schedule_runs_yesterday_unless_done_or_incomplete(tmp_path):
    from dagster import DagsterRun

    from inventory_pipeline.defs.resources import LandingZoneResource
    from inventory_pipeline.defs.schedules import daily_cycle_schedule

    landing = LandingZoneResource(uri=str(tmp_path))
    when = pd.Timestamp("2025-03-02 06:00", tz="UTC").to_pydatetime()
    with dg.instance_for_test() as instance:

        def tick():
            with dg.build_schedule_context(
                instance=instance, scheduled_execution_time=when, resources={"landing": landing}
            ) as ctx:
                return daily_cycle_schedule(ctx)

        r = tick()
        assert isinstance(r, dg.SkipReason) and "2025-03-01 is incomplete" in r.skip_message
        _day(tmp_path, "2025-03-01")
        r = tick()
        assert isinstance(r, dg.RunRequest) and r.partition_key == "2025-03-01"
        instance.add_run(
            DagsterRun(
                job_name="daily_cycle",
                run_id="done-1",
                status=dg.DagsterRunStatus.SUCCESS,
                tags={"dagster/partition": "2025-03-01"},
            )
        )
        r = tick()
        assert isinstance(r, dg.SkipReason) and "already ran" in r.skip_message


# ---------------------------------------------------------------------------------------------
# shell: retries, run failures, run summaries, freshness


def test_transient_failure_is_retried_with_backoff_and_permanent_one_is_not(monkeypatch):
    from inventory_pipeline.defs._common import operational

    monkeypatch.setenv("INVENTORY_PIPELINE_RETRY_BASE_SECONDS", "0.01")
    calls = {"flaky": 0, "broken": 0}

    @dg.asset
    @operational
    def flaky(context: dg.AssetExecutionContext):
        calls["flaky"] += 1
        if calls["flaky"] < 3:
            raise ConnectionResetError("connection reset by peer")
        return dg.MaterializeResult(metadata={"dagster/row_count": 1})

    @dg.asset
    @operational
    def broken(context: dg.AssetExecutionContext):
        calls["broken"] += 1
        raise ValueError("a contract violation is not worth retrying")

    res = dg.materialize([flaky])
    assert res.success and calls["flaky"] == 3
    assert sum(e.event_type_value == "STEP_RESTARTED" for e in res.all_events) == 2
    assert res.asset_materializations_for_node("flaky")[0].metadata["elapsed_s"].value >= 0
    assert not dg.materialize([broken], raise_on_error=False).success and calls["broken"] == 1


class _Hook(http.server.BaseHTTPRequestHandler):
    bodies: list = []

    def do_POST(self):  # noqa: N802
        _Hook.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *a):
        pass


def test_run_failure_is_recorded_tagged_and_alerted(tmp_path):
    from inventory_pipeline.core.warehouse import Warehouse
    from inventory_pipeline.defs.resources import AlertsResource, WarehouseResource
    from inventory_pipeline.defs.sensors import record_run_failures, record_run_summaries

    server = http.server.HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    alerts = AlertsResource(teams_webhook=f"http://127.0.0.1:{server.server_port}/hook")

    @dg.asset
    def fine():
        return dg.MaterializeResult(metadata={"dagster/row_count": 4})

    @dg.asset(deps=[fine])
    def fails():
        raise RuntimeError("disk full while writing the outbox")

    wh = WarehouseResource(root=str(tmp_path / "wh"))
    with dg.instance_for_test() as instance:
        res = dg.materialize([fine, fails], instance=instance, raise_on_error=False)
        assert not res.success
        failure = instance.all_logs(res.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)[0].dagster_event
        for _ in range(2):  # the sensor seeing the same run twice records it once
            ctx = dg.build_run_status_sensor_context(
                sensor_name="record_run_failures",
                dagster_event=failure,
                dagster_instance=instance,
                dagster_run=res.dagster_run,
                resources={"warehouse": wh, "alerts": alerts},
            ).for_run_failure()
            record_run_failures(ctx)
        tags = instance.get_run_by_id(res.run_id).tags
    server.shutdown()
    rec = Warehouse(Path(wh.root)).read("run_failures")
    assert rec[["run_id", "step", "error"]].values.tolist() == [[res.run_id, "fails", rec["error"].iloc[0]]]
    assert "disk full while writing the outbox" in rec["error"].iloc[0]
    assert tags["inventory_pipeline/failed_step"] == "fails"
    assert len(_Hook.bodies) == 1 and "disk full" in json.dumps(_Hook.bodies[0])
    summary = Warehouse(Path(wh.root)).read("run_summaries")
    assert summary.set_index("step")["status"].to_dict() == {"fine": "success", "fails": "failure"}
    assert summary.set_index("step")["rows"].to_dict()["fine"] == 4
    assert record_run_summaries is not None


def test_freshness_checks_cover_raw_and_decision_assets_and_have_a_sensor():
    from inventory_pipeline.core.stages import PLAN_ASSETS
    from inventory_pipeline.definitions import defs

    repo = defs.get_repository_def()
    checked = {k.asset_key.to_user_string() for k in repo.asset_graph.asset_check_keys if "freshness" in k.name}
    assert {"raw_pos_sales", "raw_inventory", "raw_receipts", "raw_open_orders", *PLAN_ASSETS} <= checked
    assert {
        "freshness_checks_sensor",
        "landing_days_complete",
        "record_run_failures",
        "record_run_summaries",
        "planner_files",
        "planner_answers_applied",
    } <= {s.name for s in repo.sensor_defs}
    assert [s.name for s in repo.schedule_defs] == ["daily_cycle_schedule"]


# ---------------------------------------------------------------------------------------------
# backfill equivalence: one run over a range writes what day-by-day runs write


def test_single_run_backfill_equals_day_by_day(tmp_path, tiny_config):
    from inventory_pipeline.core.warehouse import Warehouse
    from inventory_pipeline.definitions import build_definitions
    from inventory_pipeline.defs.partitions import PARTITION_RANGE_END_TAG, PARTITION_RANGE_START_TAG
    from inventory_pipeline.defs.resources import LandingZoneResource, WarehouseResource
    from inventory_pipeline.simulation import generate_landing_zone

    landing = tmp_path / "landing"
    generate_landing_zone(tiny_config, landing, write_truth=False)
    bad = landing / "daily" / "2025-01-05" / "pos_sales.csv"
    bad.write_text(bad.read_text() + "2025-01-05,S001,NOPE,1,1.0,0\n")  # a quarantined row on the way
    days = [f"2025-01-{i:02d}" for i in range(1, 8)]  # a week: the quarantined row's day inside it
    out = {}
    for mode in ("range", "daily"):
        defs = build_definitions(
            {
                "landing": LandingZoneResource(uri=str(landing)),
                "warehouse": WarehouseResource(root=str(tmp_path / mode)),
            }
        )
        with dg.instance_for_test() as instance:
            assert defs.resolve_job_def("ingest_master").execute_in_process(instance=instance).success
            job = defs.resolve_job_def("ingest_daily")
            if mode == "range":
                runs = [
                    job.execute_in_process(
                        instance=instance,
                        tags={PARTITION_RANGE_START_TAG: days[0], PARTITION_RANGE_END_TAG: days[-1]},
                    )
                ]
            else:
                runs = [job.execute_in_process(instance=instance, partition_key=d) for d in days]
            assert all(r.success for r in runs)
        wh = Warehouse(tmp_path / mode)
        out[mode] = {
            (t, d): wh.sha256(t, d)
            for t in ("raw_pos_sales", "raw_inventory", "raw_receipts", "raw_open_orders", "quarantine_pos_sales")
            for d in days
        }
        assert len(runs) == (1 if mode == "range" else len(days))
    assert out["range"] == out["daily"]
    assert len(Warehouse(tmp_path / "range").read("quarantine_pos_sales", "2025-01-05")) == 1


# ---------------------------------------------------------------------------------------------
# progress of long steps and the per-run summary table


def test_progress_reports_done_total_rate_and_eta():
    from inventory_pipeline.core.progress import Progress

    t, lines = [100.0], []
    p = Progress(400, label="fit", report=lines.append, clock=lambda: t[0])
    assert p.eta_seconds is None and p.rate == 0
    t[0] = 102.0
    assert p.advance(100, note="class smooth") == "fit: 100/400 series (25%) · 50 series/s · ETA 6 s · class smooth"
    t[0] = 104.0
    p.advance(300)
    assert p.done == 400 and p.eta_seconds == 0 and lines[-1].startswith("fit: 400/400 series (100%) · 100 series/s")
    p.advance(10)  # never past the total
    assert p.done == 400
    with pytest.raises(ValueError):
        p.advance(-1)


def test_forecast_stage_logs_progress_per_class():
    from inventory_pipeline.core.forecasting import ForecastSettings, run_forecast

    rng = np.random.default_rng(0)
    days = pd.date_range("2025-01-01", periods=70, freq="D")
    hist = pd.DataFrame(
        [
            (f"S{s}", f"K{k}", d, int(rng.poisson(5 if k < 3 else 0.3)))
            for s in range(2)
            for k in range(5)
            for d in days
        ],
        columns=["location_id", "sku_id", "date", "units_sold"],
    )
    lines = []
    res = run_forecast(
        hist,
        str(days[-1].date()),
        ForecastSettings(cv_windows=2, cv_horizon=7, horizon_days=14, cv_sample_series=0, yearly_profile=False),
        progress=lines.append,
    )
    assert len(res.forecast) == 10 * 14
    fit = [l for l in lines if l.startswith("fit:")]
    assert fit and fit[-1].startswith("fit: 10/10 series (100%)") and "ETA" in fit[-1]
    cv = [l for l in lines if l.startswith("cross-validation:")]
    assert cv and cv[-1].startswith("cross-validation: 10/10 series (100%)")  # sample 0: every series


def test_run_summary_prints_one_line_per_step_and_totals():
    from inventory_pipeline.core.run_records import format_run_summary, run_summary

    ev = [
        {"step": "a", "kind": "STEP_START", "timestamp": 10.0},
        {"step": "a", "kind": "STEP_SUCCESS", "timestamp": 12.5},
        {"step": "a", "kind": "ASSET_MATERIALIZATION", "timestamp": 12.4, "asset": "x", "rows": 1200},
        {"step": "b", "kind": "STEP_START", "timestamp": 13.0},
        {"step": "b", "kind": "STEP_FAILURE", "timestamp": 14.0},
    ]
    text = format_run_summary(run_summary("r1", "daily_plan", "2025-01-05", ev))
    head, *rows = text.splitlines()
    assert head == "daily_plan [2025-01-05]: 2 steps, 1 succeeded, 3.5 s in steps, 1,200 rows"
    assert rows[1].split() == ["a", "success", "2.50", "1,200"] and rows[2].split() == ["b", "failure", "1.00"]


def test_run_summary_counts_a_range_runs_rows_once_per_asset():
    from inventory_pipeline.core.run_records import run_summary

    # a single-run backfill of 3 partitions: 3 materialisation events of one asset, each with the
    # run's 900 rows; another asset of the same step with 40
    ev = [
        {"step": "s", "kind": "STEP_START", "timestamp": 1.0},
        {"step": "s", "kind": "STEP_SUCCESS", "timestamp": 2.0},
        *[{"step": "s", "kind": "ASSET_MATERIALIZATION", "timestamp": 1.5, "asset": "raw_pos_sales", "rows": 900}] * 3,
        {"step": "s", "kind": "ASSET_MATERIALIZATION", "timestamp": 1.6, "asset": "quarantine", "rows": 40},
    ]
    assert run_summary("r", "ingest_daily", "a..c", ev)["rows"].tolist() == [940]
    # as the shell labels them (run_events): the partition in brackets, one event per partition
    ev = (
        ev[:2]
        + [
            {
                "step": "s",
                "kind": "ASSET_MATERIALIZATION",
                "timestamp": 1.5,
                "asset": f"raw_pos_sales[2025-01-0{d}]",
                "rows": 900,
            }
            for d in (1, 2, 3)
        ]
        + ev[-1:]
    )
    t = run_summary("r", "ingest_daily", "2025-01-01..2025-01-03", ev)
    assert t["rows"].tolist() == [940]
    assert t["assets"].iloc[0] == "quarantine, raw_pos_sales[2025-01-01..2025-01-03]"


def test_our_partition_range_tags_are_dagsters():
    """The single-run backfill tags are written once in defs/partitions.py (Dagster keeps its own
    constants in a private module); this pins them to Dagster's, so an upgrade that renames them fails here."""
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    from inventory_pipeline.defs.partitions import PARTITION_RANGE_END_TAG, PARTITION_RANGE_START_TAG

    assert (PARTITION_RANGE_START_TAG, PARTITION_RANGE_END_TAG) == (
        ASSET_PARTITION_RANGE_START_TAG,
        ASSET_PARTITION_RANGE_END_TAG,
    )
