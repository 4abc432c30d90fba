"""Sensors of the planner loop.

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

import dagster as dg

from ..core.decisions import plan_date_of
from .jobs import publish_job, review_planner_job
from .partitions import daily_partitions
from .resources import LandingZoneResource, WarehouseResource


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


@dg.sensor(job=review_planner_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING,
           description="new or changed planner/YYYY-MM-DD/decisions.csv -> ingest it (review_planner)")
def planner_files(context: dg.SensorEvaluationContext, landing: LandingZoneResource):
    seen = json.loads(context.cursor) if context.cursor else {}
    sigs = planner_signatures(landing.store())
    keys = set(daily_partitions.get_partition_keys())
    requests = [dg.RunRequest(run_key=f"planner-{x}-{sig}", partition_key=x, tags={"planner_file_sha256": sig})
                for x, sig in sorted(sigs.items()) if seen.get(x) != sig and x in keys]
    outside = sorted(x for x in sigs if x not in keys)
    context.update_cursor(json.dumps({**seen, **{x: s for x, s in sigs.items() if x in keys}}, sort_keys=True))
    if not requests:
        return dg.SkipReason("no new or changed planner file" + (f"; outside the partitions: {outside}" if outside else ""))
    return requests


def plan_dates_answered(wh, planner_date: str) -> list[str]:
    """The plan dates whose decisions a planner file names (only plans that exist)."""
    if not wh.exists("raw_planner_decisions", planner_date):
        return []
    p = wh.read("raw_planner_decisions", planner_date)
    dates = sorted({x.date().isoformat() for x in plan_date_of(p["decision_id"]).dropna()}) if len(p) else []
    return [x for x in dates if wh.exists("decision_log", x)]


@dg.sensor(job=publish_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING,
           description="planner answers ingested -> republish the plans they answer (publish_decisions)")
def planner_answers_applied(context: dg.SensorEvaluationContext, warehouse: WarehouseResource):
    """Every materialisation of raw_planner_decisions after the cursor (an event-log storage id),
    oldest first — all of them, so a backfill of many planner days republishes every plan named."""
    after = int(context.cursor) if context.cursor else None
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("raw_planner_decisions"), after_storage_id=after),
        limit=200, ascending=True).records
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
    requests = [dg.RunRequest(run_key=f"publish-{d}-after-planner-{x}-{sid}", partition_key=d,
                              tags={"planner_file_date": x}) for d, (x, sid) in sorted(plans.items())]
    context.update_cursor(str(records[-1].storage_id))
    return requests or dg.SkipReason(f"{len(records)} planner file(s) ingested; none answers an existing plan")


sensors = [planner_files, planner_answers_applied]
