"""erp_outbox asset: writes the approved decisions of the partition (core.outbox) and verifies it."""

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

import dagster as dg

from ..core.decisions import export_events, merge_events
from ..core.outbox import render_outbox, write_local, write_s3
from ._common import operational
from .decisions import decision_log
from .partitions import daily_partitions
from .resources import OutboxResource, PolicyResource, WarehouseResource


@dg.asset(
    partitions_def=daily_partitions,
    group_name="decisions",
    deps=[decision_log],
    check_specs=[
        dg.AssetCheckSpec(
            "manifest_matches_files",
            asset="erp_outbox",
            description="every file's row count and sha256 match manifest.json",
        )
    ],
    description="Approved decisions for the ERP: purchase_orders, transfers, price_changes, manifest (written last).",
)
@operational
def erp_outbox(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, outbox: OutboxResource, policy: PolicyResource
):
    d = context.partition_key
    wh = warehouse.get()
    log = wh.read("decision_log", d)
    versions = wh.read("demand_forecast", d)["model_version"].unique().tolist()
    files = render_outbox(log, d, model_versions=versions, policy_version=policy.load().tag)
    manifest = json.loads(files["manifest.json"])
    if outbox.uri.startswith("s3://"):
        u = urlparse(outbox.uri)
        where, changed = write_s3(files, outbox.s3_client(), u.netloc, u.path, d), True
        read_back = {
            n: outbox.s3_client()
            .get_object(Bucket=u.netloc, Key=f"{where.split(u.netloc + '/', 1)[1]}/{n}")["Body"]
            .read()
            for n in files
        }
    else:
        folder, changed = write_local(files, outbox.uri, d)
        where = str(folder)
        read_back = {n: (Path(folder) / n).read_bytes() for n in files}
    ok = all(hashlib.sha256(read_back[n]).hexdigest() == m["sha256"] for n, m in manifest["files"].items())
    exported = 0
    if ok:  # the ERP can read it now: record the export in the decision's history (idempotent)
        now = datetime.now(UTC).isoformat(timespec="seconds")
        ev = export_events(log, hashlib.sha256(files["manifest.json"]).hexdigest(), d, now, context.run_id)
        exported = wh.append("decision_events", ev, d, merge_events).rows_added
        if exported:  # the decision log's event store grew: say so on its asset
            context.log_event(
                dg.AssetMaterialization(
                    asset_key="decision_events",
                    partition=d,
                    metadata={"export_events_added": exported, "written_by": "erp_outbox"},
                )
            )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": sum(m["rows"] for m in manifest["files"].values()),
            "outbox": where,
            "changed": changed,
            **{f"rows_{n.split('.')[0]}": m["rows"] for n, m in manifest["files"].items()},
            "decisions_by_status": manifest["decisions_by_status"],
            "export_events_added": exported,
        },
        check_results=[dg.AssetCheckResult(check_name="manifest_matches_files", passed=ok)],
    )
