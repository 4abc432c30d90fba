"""Sensors: the landing zone, the planner loop, and run records.

`landing_days_complete` watches daily/YYYY-MM-DD/ (local or S3) and launches `daily_cycle`
(ingest + plan) for the newest day whose required files are all there, and `ingest_daily` (one
run per range of consecutive days) for late or corrected files of older days. Its cursor maps
each day to the signature (names, sizes, versions) it launched, so nothing is processed twice and
a late file changes the signature and is picked up. `stale_plans` then finds the plans whose
recorded reads (decision_inputs) that ingest changed and plans the earliest of them and every
later plan date again, one run at a time in date order (core.replan). A folder under daily/ that is not a calendar
date YYYY-MM-DD (`2025-04-31`, `zzz`, `notes`) is ignored with a warning naming it
(core.landing_dates: the rule `run` and the schedule use too). `record_run_failures` stores every failed
run in the warehouse table `run_failures`, tags the run and alerts (naming the governance gates that
stopped it); `record_run_summaries` stores one row per step of every finished run in
`run_summaries` and alerts when an ERROR-severity check failed in it; `review_queue_alert` alerts
when a plan leaves more decisions waiting for a planner than the threshold. Alerts go through the
`alerts` resource (dagster-msteams / dagster-slack; off when neither is configured).

`planner_files` watches the landing zone's planner/YYYY-MM-DD/decisions.csv (or .parquet), local
or on S3, and launches `review_planner` (ingest that file) when a file is new or its content
changed; its cursor maps each planner date to the content hash it last launched, so nothing is
processed twice and a corrected file is picked up. `planner_answers_applied` reads every new
materialisation of raw_planner_decisions (from the sensor, the UI or a backfill) and launches
`publish_decisions` (decision log -> review queue -> ERP outbox) for every plan date the answers
name, so approved and overridden decisions reach the outbox.
"""

import hashlib
import json
import time
from datetime import UTC, datetime

import dagster as dg
import pandas as pd

from ..config import settings
from ..core import alerts as alert_messages
from ..core.decisions import plan_date_of
from ..core.landing_dates import landing_date_files
from ..core.landing_days import landing_days, landing_requests
from ..core.replan import Wave, next_step, recorded_inputs, stale_from
from ..core.run_records import failure_record, merge_by_run, run_summary
from .jobs import WAREHOUSE_TAG, daily_cycle_job, ingest_daily_job, plan_job, publish_job, review_planner_job
from .partitions import daily_partitions
from .resources import AlertsResource, LandingZoneResource, WarehouseResource


def planner_signatures(store) -> dict[str, str]:
    """planner date -> sha256 (16 hex) of its decisions file, for every planner folder with one."""
    out = {}
    for x in store.list_dirs("planner"):
        for ext in ("csv", "parquet"):
            b = store.read_bytes(f"planner/{x}/decisions.{ext}")
            if b is not None:
                out[x] = hashlib.sha256(b).hexdigest()[:16]
                break
    return out


@dg.sensor(
    job=review_planner_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="new or changed planner/YYYY-MM-DD/decisions.csv -> ingest it (review_planner)",
)
def planner_files(context: dg.SensorEvaluationContext, landing: LandingZoneResource):
    seen = json.loads(context.cursor) if context.cursor else {}
    sigs = planner_signatures(landing.store())
    keys = set(daily_partitions.get_partition_keys())
    requests = [
        dg.RunRequest(run_key=f"planner-{x}-{sig}", partition_key=x, tags={"planner_file_sha256": sig})
        for x, sig in sorted(sigs.items())
        if seen.get(x) != sig and x in keys
    ]
    outside = sorted(x for x in sigs if x not in keys)
    context.update_cursor(json.dumps({**seen, **{x: s for x, s in sigs.items() if x in keys}}, sort_keys=True))
    if not requests:
        return dg.SkipReason(
            "no new or changed planner file" + (f"; outside the partitions: {outside}" if outside else "")
        )
    return requests


def plan_dates_answered(wh, planner_date: str) -> list[str]:
    """The plan dates whose decisions a planner file names (only plans that exist)."""
    if not wh.exists("raw_planner_decisions", planner_date):
        return []
    p = wh.read("raw_planner_decisions", planner_date)
    dates = sorted({x.date().isoformat() for x in plan_date_of(p["decision_id"]).dropna()}) if len(p) else []
    return [x for x in dates if wh.exists("decision_log", x)]


@dg.sensor(
    job=publish_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="planner answers ingested -> republish the plans they answer (publish_decisions)",
)
def planner_answers_applied(context: dg.SensorEvaluationContext, warehouse: WarehouseResource):
    """Every materialisation of raw_planner_decisions after the cursor (an event-log storage id),
    oldest first — all of them, so a backfill of many planner days republishes every plan named."""
    after = int(context.cursor) if context.cursor else None
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("raw_planner_decisions"), after_storage_id=after),
        limit=200,
        ascending=True,
    ).records
    if not records:
        return dg.SkipReason("no new planner answers ingested")
    wh, latest = warehouse.get(), {}
    for rec in records:  # a planner date materialised twice is read once (the file as it is now)
        if rec.partition_key:
            latest[rec.partition_key] = rec.storage_id
    plans: dict[str, tuple[str, int]] = {}
    for x, sid in sorted(latest.items()):
        for d in plan_dates_answered(wh, x):
            plans[d] = (x, sid)
    requests = [
        dg.RunRequest(run_key=f"publish-{d}-after-planner-{x}-{sid}", partition_key=d, tags={"planner_file_date": x})
        for d, (x, sid) in sorted(plans.items())
    ]
    context.update_cursor(str(records[-1].storage_id))
    return requests or dg.SkipReason(f"{len(records)} planner file(s) ingested; none answers an existing plan")


def _ranges(days: list[str]) -> list[tuple[str, str]]:
    """Consecutive partition keys grouped into (first, last) ranges."""
    keys = daily_partitions.get_partition_keys()
    pos = {k: i for i, k in enumerate(keys)}
    out: list[list[str]] = []
    for d in sorted(days, key=pos.get):
        if out and pos[d] == pos[out[-1][1]] + 1:
            out[-1][1] = d
        else:
            out.append([d, d])
    return [tuple(r) for r in out]


@dg.sensor(
    jobs=[daily_cycle_job, ingest_daily_job],
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="a landing day's required files are all there -> daily_cycle (newest day) or ingest_daily (late files)",
)
def landing_days_complete(context: dg.SensorEvaluationContext, landing: LandingZoneResource):
    seen = json.loads(context.cursor) if context.cursor else {}
    ignored: list[str] = []

    def warn(message: str) -> None:
        ignored.append(message)
        context.log.warning(message)

    days = landing_days(
        landing_date_files(landing.store().list_files("daily"), warn=warn),
        settle_seconds=settings().landing_settle_seconds,
    )
    req = landing_requests(days, seen, set(daily_partitions.get_partition_keys()))
    requests = []
    for first, last in _ranges(req.ingest_only):  # older days first: the queue runs them before the plan
        sig = hashlib.sha256(
            "".join(req.cursor[d] for d in req.ingest_only if first <= d <= last).encode()
        ).hexdigest()[:16]
        tags = {"landing_signature": sig}
        if first == last:
            requests.append(
                dg.RunRequest(
                    run_key=f"ingest-{first}-{sig}", job_name=ingest_daily_job.name, partition_key=first, tags=tags
                )
            )
        else:
            requests.append(
                dg.RunRequest(
                    run_key=f"ingest-{first}-{last}-{sig}",
                    job_name=ingest_daily_job.name,
                    tags={
                        **tags,
                        "dagster/asset_partition_range_start": first,
                        "dagster/asset_partition_range_end": last,
                    },
                )
            )
    for d in req.plan:
        requests.append(
            dg.RunRequest(
                run_key=f"cycle-{d}-{req.cursor[d]}",
                job_name=daily_cycle_job.name,
                partition_key=d,
                tags={"landing_signature": req.cursor[d]},
            )
        )
    context.update_cursor(json.dumps(req.cursor, sort_keys=True))
    if not requests:
        waiting = "; ".join(f"{d}: {why}" for d, why in sorted(req.waiting.items())[-5:])
        return dg.SkipReason(
            "no new complete landing day"
            + (f" (waiting: {waiting})" if waiting else "")
            + (f"; {'; '.join(ignored)}" if ignored else "")
        )
    return requests


_IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]
_PLAN_JOBS = (plan_job.name, daily_cycle_job.name)  # jobs that plan a date whole


def last_plan_run(instance: dg.DagsterInstance, plan_date: str, since: float) -> tuple[str, float | None] | None:
    """(status, end epoch seconds or None) of the newest run of the whole plan of `plan_date` created
    after `since` (by this sensor, the schedule, the landing sensor, the UI or the CLI)."""
    records = [
        r
        for job in _PLAN_JOBS
        for r in instance.get_run_records(
            dg.RunsFilter(job_name=job, tags={"dagster/partition": plan_date}, created_after=_utc(since)), limit=5
        )
        if not r.dagster_run.asset_selection  # a run of part of the plan is not a plan
    ]
    if not records:
        return None
    newest = max(records, key=lambda r: r.create_timestamp)
    return newest.dagster_run.status.value, newest.end_time


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


@dg.sensor(
    job=plan_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="a late or corrected landing file changed what past plans read -> plan that date and every "
    "later one again, in date order, one run at a time (daily_plan)",
)
def stale_plans(context: dg.SensorEvaluationContext, warehouse: WarehouseResource):
    """Compares every plan's recorded reads (decision_inputs) with the warehouse's partitions now
    (core.replan). It waits while any run that writes the warehouse is queued or running (the late
    file's ingest among them), then launches the earliest stale plan date, and on later ticks each
    planned date after it in turn once the one before succeeded. Stop the sensor to keep past
    plans as they were; `inventory-pipeline run --plan-from D` re-plans a range on request."""
    busy = context.instance.get_runs(dg.RunsFilter(statuses=_IN_FLIGHT, tags=WAREHOUSE_TAG), limit=1)
    if busy:
        return dg.SkipReason(f"waiting for run {busy[0].run_id[:8]} ({busy[0].job_name}) to finish")
    wh = warehouse.get()
    stale = stale_from(recorded_inputs(wh), wh.sha256)
    wave = Wave.from_cursor(json.loads(context.cursor) if context.cursor else None)
    step = next_step(
        wave,
        stale,
        wh.partitions("decision_inputs"),
        lambda d, since: last_plan_run(context.instance, d, since),
        time.time(),
    )
    context.update_cursor(json.dumps(step.wave.to_cursor()) if step.wave else "")
    if step.plan_date is None:
        return dg.SkipReason(step.message)
    context.log.info(step.message)
    return dg.RunRequest(
        run_key=f"replan-{step.wave.wave}-{step.plan_date}-{int(step.wave.since)}",
        partition_key=step.plan_date,
        tags={"inventory_pipeline/replan": step.wave.wave, "inventory_pipeline/replan_reason": step.message[:200]},
    )


def _step_errors(context) -> list[tuple[str, str]]:
    out = []
    for ev in context.get_step_failure_events():
        err = ev.event_specific_data.error if ev.event_specific_data else None
        while err is not None and err.cause is not None:  # the user's exception, not Dagster's wrapper
            err = err.cause
        out.append((ev.step_key or "", (err.message if err else ev.message) or ""))
    return out


def failed_checks(instance: dg.DagsterInstance, run_id: str) -> pd.DataFrame:
    """The run's checks that failed with ERROR severity (core.alerts.failed_checks)."""
    rows = []
    for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        ev = e.dagster_event.event_specific_data
        rows.append(
            {
                "asset": ev.asset_key.to_user_string(),
                "check": ev.check_name,
                "blocking": bool(getattr(ev, "blocking", False)),
                "description": ev.description or "",
                "passed": ev.passed,
                "severity": ev.severity.value,
            }
        )
    return alert_messages.failed_checks(rows)


@dg.run_failure_sensor(
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="a run failed -> run_failures table, a tag on the run, an alert naming the failed gates",
)
def record_run_failures(context: dg.RunFailureSensorContext, warehouse: WarehouseResource, alerts: AlertsResource):
    run = context.dagster_run
    partition = _partition(run)
    record = context.instance.get_run_record_by_id(run.run_id)
    rows = failure_record(
        run.run_id,
        run.job_name,
        partition,
        (record and record.end_time) or time.time(),
        _step_errors(context),
        context.failure_event.message or "run failed",
        run.tags.get("dagster/parent_run_id"),
        settings().dagster_url,
    )
    wh = warehouse.get()
    added = wh.append("run_failures", rows, None, merge_by_run).rows_added
    _report(context.instance, "run_failures", added)
    if added:
        context.instance.add_run_tags(run.run_id, {"inventory_pipeline/failed_step": rows["step"].iloc[0] or "(run)"})
        alert = alert_messages.run_failed(rows, failed_checks(context.instance, run.run_id))
        alerts.send(alert, context.log)
        context.log.info(f"recorded failure of {run.job_name} {partition}: {rows['error'].iloc[0]}")
    _store_summary(context.instance, run, wh)


def run_events(instance: dg.DagsterInstance, run_id: str) -> list[dict]:
    """The step and materialisation events of a run, as plain dicts for core.run_records.run_summary."""
    kinds = {
        dg.DagsterEventType.STEP_START,
        dg.DagsterEventType.STEP_SUCCESS,
        dg.DagsterEventType.STEP_FAILURE,
        dg.DagsterEventType.ASSET_MATERIALIZATION,
    }
    out = []
    for e in instance.all_logs(run_id, of_type=kinds):
        ev = e.dagster_event
        row = {"step": e.step_key, "kind": ev.event_type_value, "timestamp": e.timestamp}
        if ev.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
            m = ev.event_specific_data.materialization
            row["asset"] = m.asset_key.to_user_string() + (
                f"[{m.partition}]" if m.partition and ".." not in str(m.partition) else ""
            )
            rc = m.metadata.get("dagster/row_count")
            row["rows"] = getattr(rc, "value", None)
        out.append(row)
    return out


def _partition(run) -> str:
    return run.tags.get("dagster/partition") or "..".join(
        x
        for x in (
            run.tags.get("dagster/asset_partition_range_start"),
            run.tags.get("dagster/asset_partition_range_end"),
        )
        if x
    )


def summarise_run(instance: dg.DagsterInstance, run) -> pd.DataFrame:
    partition = _partition(run)
    return run_summary(run.run_id, run.job_name, partition, run_events(instance, run.run_id))


def _store_summary(instance, run, wh) -> int:
    table = summarise_run(instance, run)
    added = wh.append("run_summaries", table, None, merge_by_run).rows_added if len(table) else 0
    _report(instance, "run_summaries", added)
    return added


def _report(instance: dg.DagsterInstance, table: str, added: int) -> None:
    """A sensor's write to one of the operations tables, as a materialisation of its asset."""
    if added:
        instance.report_runless_asset_event(
            dg.AssetMaterialization(asset_key=table, metadata={"rows_added": added, "written_by": "sensor"})
        )


# the tables the run sensors write (no run materialises them: the sensors report their writes)
operations_tables = [
    dg.AssetSpec(
        "run_failures",
        group_name="operations",
        description="One row per failed step of a failed run (one for the run when no step failed): job, "
        "partition, step, the first line of its error and a link to the run; written by the run-failure sensor, "
        "which also alerts.",
    ),
    dg.AssetSpec(
        "run_summaries",
        group_name="operations",
        description="One row per step of a run: status, start, duration, the assets it materialised and their "
        "rows; written by the run-status sensors (docs/operations.md).",
    ),
]


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="a run succeeded -> its per-step summary in run_summaries; an alert if an ERROR check failed",
)
def record_run_summaries(context: dg.RunStatusSensorContext, warehouse: WarehouseResource, alerts: AlertsResource):
    run = context.dagster_run
    n = _store_summary(context.instance, run, warehouse.get())
    context.log.info(f"{run.job_name}: {n} step row(s) recorded")
    checks = failed_checks(context.instance, run.run_id)
    if len(checks):
        link = f"{settings().dagster_url}/runs/{run.run_id}"
        alerts.send(alert_messages.check_failed(run.run_id, run.job_name, _partition(run), checks, link), context.log)


@dg.asset_sensor(
    asset_key=dg.AssetKey("review_queue"),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60,
    description="a plan's review queue is past the alert threshold -> an alert (once per materialisation)",
)
def review_queue_alert(context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry, alerts: AlertsResource):
    mat = asset_event.asset_materialization
    meta = {k: getattr(v, "value", v) for k, v in mat.metadata.items()}
    pending = int(meta.get("dagster/row_count", 0))
    link = f"{settings().dagster_url}/assets/review_queue"
    alert = alert_messages.review_queue_alert(
        mat.partition or "", pending, alerts.review_queue_threshold, meta.get("by_type") or {},
        float(meta.get("value_waiting") or 0.0), link,
    )  # fmt: skip
    if alert is None:
        return dg.SkipReason(f"{pending} decisions wait (threshold {alerts.review_queue_threshold})")
    reached = alerts.send(alert, context.log)
    return dg.SkipReason(f"{alert.title}; sent to {', '.join(reached) or 'no channel (alerts off)'}")


sensors = [
    landing_days_complete,
    stale_plans,
    planner_files,
    planner_answers_applied,
    record_run_failures,
    record_run_summaries,
    review_queue_alert,
]
