"""ERP outbox (core): the approved decisions of one plan date as contract-v1 files.

    <outbox>/YYYY-MM-DD/purchase_orders.csv  decision_id, sku_id, supplier_id, ship_to_location_id, units, order_date,
        expected_date
    <outbox>/YYYY-MM-DD/transfers.csv        decision_id, sku_id, from_location_id, to_location_id, units, ship_date,
        expected_date, transfer_type
    <outbox>/YYYY-MM-DD/price_changes.csv    decision_id, sku_id, location_id, old_price, new_price, effective_date
    <outbox>/YYYY-MM-DD/manifest.json        row counts, sha256 per file, model and policy versions; written last

`transfer_type` (replenishment = DC -> store, rebalancing = store <-> store) extends contract v1:
the ERP books both as stock transfers. Files are rendered deterministically (rows sorted by
decision id, fixed number formats, no timestamps), so the same partition always yields the same
bytes. A local folder is written beside the target and renamed into place; on S3 the manifest
is put last, so a reader that waits for manifest.json never sees a partial plan.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import pandas as pd

from .decisions import EXPORTABLE

OUTBOX_CONTRACT = "outbox-v1"
FILES = {  # outbox contract v1: file -> columns (../shared/DESIGN.md)
    "purchase_orders.csv": [
        "decision_id", "sku_id", "supplier_id", "ship_to_location_id", "units", "order_date", "expected_date",
    ],
    "transfers.csv": [
        "decision_id", "sku_id", "from_location_id", "to_location_id", "units", "ship_date", "expected_date",
        "transfer_type",
    ],
    "price_changes.csv": ["decision_id", "sku_id", "location_id", "old_price", "new_price", "effective_date"],
}  # fmt: skip


def _iso(s: pd.Series) -> pd.Series:
    return pd.to_datetime(s).dt.strftime("%Y-%m-%d")


def render_outbox(
    log: pd.DataFrame, plan_date: str, model_versions: list[str] = (), policy_version: str | None = None
) -> dict[str, bytes]:
    """The outbox files for the exportable decisions of `log`, as bytes (manifest last).

    The manifest names the model and policy versions of the plan even when no decision was made."""
    ok = log[log["status"].isin(EXPORTABLE)].sort_values("decision_id")
    po = ok[ok["decision_type"] == "purchase_order"]
    rp = ok[ok["decision_type"].isin(["store_replenishment", "transfer"])]
    pc = ok[ok["decision_type"] == "price_change"]
    frames = {
        "purchase_orders.csv": pd.DataFrame(
            {
                "decision_id": po["decision_id"],
                "sku_id": po["sku_id"],
                "supplier_id": po["source_id"],
                "ship_to_location_id": po["location_id"],
                "units": po["units"].astype("int64"),
                "order_date": _iso(po["order_date"]),
                "expected_date": _iso(po["expected_date"]),
            }
        ),
        "transfers.csv": pd.DataFrame(
            {
                "decision_id": rp["decision_id"],
                "sku_id": rp["sku_id"],
                "from_location_id": rp["source_id"],
                "to_location_id": rp["location_id"],
                "units": rp["units"].astype("int64"),
                "ship_date": _iso(rp["order_date"]),
                "expected_date": _iso(rp["expected_date"]),
                "transfer_type": rp["decision_type"].map(
                    {"store_replenishment": "replenishment", "transfer": "rebalancing"}
                ),
            }
        ),
        "price_changes.csv": pd.DataFrame(
            {
                "decision_id": pc["decision_id"],
                "sku_id": pc["sku_id"],
                "location_id": pc["location_id"],
                "old_price": pc["old_price"].map("{:.2f}".format),
                "new_price": pc["new_price"].map("{:.2f}".format),
                "effective_date": _iso(pc["order_date"]),
            }
        ),
    }
    out: dict[str, bytes] = {}
    for name, cols in FILES.items():
        out[name] = frames[name].reindex(columns=cols).to_csv(index=False, lineterminator="\n").encode()
    manifest = {
        "contract": OUTBOX_CONTRACT,
        "plan_date": plan_date,
        "effective_date": (pd.Timestamp(plan_date) + pd.Timedelta(days=1)).date().isoformat(),
        "files": {n: {"rows": len(frames[n]), "sha256": hashlib.sha256(out[n]).hexdigest()} for n in FILES},
        "model_versions": sorted(set(log["model_version"].dropna().astype(str)) | set(model_versions)),
        "policy_versions": sorted(
            set(log["policy_version"].dropna().astype(str)) | ({policy_version} if policy_version else set())
        ),
        "decisions_by_status": {k: int(v) for k, v in sorted(log["status"].value_counts().items())} if len(log) else {},
    }
    out["manifest.json"] = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    return out


def write_local(files: dict[str, bytes], root: str | Path, plan_date: str) -> tuple[Path, bool]:
    """Write the folder atomically. Returns (folder, changed); identical content is left alone."""
    root = Path(root)
    target = root / plan_date
    if (
        target.is_dir()
        and all((target / n).is_file() and (target / n).read_bytes() == b for n, b in files.items())
        and sorted(p.name for p in target.iterdir()) == sorted(files)
    ):
        return target, False
    root.mkdir(parents=True, exist_ok=True)
    # what a killed earlier write left behind (its own temp or swapped-out folder; one writer at a
    # time is guaranteed by the warehouse-writer run queue) never reached the ERP: remove it
    for stale in [*root.glob(f".{plan_date}.tmp-*"), *root.glob(f".{plan_date}.old-*")]:
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{plan_date}.tmp-", dir=root))
    tmp.chmod(0o755)
    try:
        for name, data in files.items():  # manifest.json is the last key: written last
            with open(tmp / name, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        old = None
        if target.exists():
            old = root / f".{plan_date}.old-{os.getpid()}"
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target, True


def write_s3(files: dict[str, bytes], client, bucket: str, prefix: str, plan_date: str) -> str:
    """Put every file under <prefix>/<plan_date>/, manifest.json last."""
    base = f"{prefix.strip('/')}/{plan_date}".lstrip("/")
    for name, data in files.items():
        client.put_object(Bucket=bucket, Key=f"{base}/{name}", Body=data)
    return f"s3://{bucket}/{base}"
