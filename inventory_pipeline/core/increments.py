"""What a dbt build must rebuild: the incremental facts (fct_daily_demand, fct_inventory_positions,
fct_order_lead_times) are rebuilt from the earliest landing day whose raw partition changed since
the last build, and fully when anything they join without a date changed (master files, the
models themselves).

Change is content, not file time: every warehouse partition has a `.sha256` sidecar of its bytes
(core/warehouse.py), so re-ingesting an unchanged landing file (as `inventory-pipeline run` does
for every day) rebuilds nothing, while a late or corrected file for a planned day rebuilds that
day and every later one. The state is the digests the last successful build saw, kept in the
warehouse (`.dbt/increment.json`), so the decision survives processes and machines sharing the
warehouse folder.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from .warehouse import Warehouse

# the raw tables the incremental facts read by date, and those they join whole
DATED_TABLES = ("raw_pos_sales", "raw_inventory", "raw_open_orders", "raw_receipts")
WHOLE_TABLES = ("raw_locations", "raw_products", "raw_calendar", "raw_suppliers")
NOTHING_TO_REBUILD = "9999-12-31"  # a rebuild_from after every date: the facts keep every row
EVERY_DATE = "0001-01-01"  # a rebuild_from before every date (a full refresh)
STATE_FILE = Path(".dbt") / "increment.json"
REBUILD_FROM_VAR = "INVENTORY_PIPELINE_DBT_REBUILD_FROM"  # read by the incremental models


@dataclass(frozen=True)
class Increment:
    """One build's plan: `full_refresh`, or rebuild the dates from `rebuild_from` on; and why."""

    full_refresh: bool
    rebuild_from: str
    reason: str

    def dbt_args(self) -> list[str]:
        return ["--full-refresh"] if self.full_refresh else []

    def dbt_env(self) -> dict[str, str]:
        """The first date to rebuild goes to dbt as an environment variable, not a --vars value:
        dbt re-parses the whole project when its vars change, but only the files that read an
        environment variable when that changes (partial parsing)."""
        return {REBUILD_FROM_VAR: self.rebuild_from}


def _digest(wh: Warehouse, table: str, partition: str | None = None) -> str:
    sidecar = wh.path(table, partition).with_name("data.parquet.sha256")
    if sidecar.is_file():
        return sidecar.read_text().strip()
    data = wh.path(table, partition)  # written before sidecars existed: hash the bytes
    return hashlib.sha256(data.read_bytes()).hexdigest() if data.is_file() else ""


def models_digest(project_dir: Path) -> str:
    """The dbt project's SQL and YAML: a changed model rebuilds its table in full."""
    h = hashlib.sha256()
    for p in sorted(
        [*project_dir.glob("models/**/*"), *project_dir.glob("macros/**/*"), project_dir / "dbt_project.yml"]
    ):
        if p.is_file():
            h.update(str(p.relative_to(project_dir)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def snapshot(wh: Warehouse, project_dir: Path) -> dict:
    """The digests a build sees: models, each whole table, each dated partition."""
    return {
        "models": models_digest(project_dir),
        "whole": {t: _digest(wh, t) for t in WHOLE_TABLES},
        "dated": {t: {d: _digest(wh, t, d) for d in wh.partitions(t)} for t in DATED_TABLES},
    }


def plan_increment(before: dict | None, now: dict, warehouse_built: bool, full_refresh: bool = False) -> Increment:
    """Compare the last build's snapshot with the present one; `warehouse_built`: the DuckDB file
    the facts live in exists."""
    if full_refresh:
        return Increment(True, EVERY_DATE, "full refresh asked for")
    if before is None or not warehouse_built:
        return Increment(True, EVERY_DATE, "first build of this warehouse")
    if before.get("models") != now["models"]:
        return Increment(True, EVERY_DATE, "the dbt models changed")
    changed_whole = [t for t in WHOLE_TABLES if before.get("whole", {}).get(t) != now["whole"][t]]
    if changed_whole:
        return Increment(True, EVERY_DATE, f"master data changed: {', '.join(changed_whole)}")
    changed = {
        d
        for t in DATED_TABLES
        for d in set(now["dated"][t]) | set(before.get("dated", {}).get(t, {}))
        if now["dated"][t].get(d) != before.get("dated", {}).get(t, {}).get(d)
    }
    if not changed:
        return Increment(False, NOTHING_TO_REBUILD, "no landing day changed")
    first = min(changed)
    return Increment(False, first, f"{len(changed)} landing day(s) new or changed, the first {first}")


def load_state(wh: Warehouse) -> dict | None:
    return wh.read_state(STATE_FILE)


def save_state(wh: Warehouse, snap: dict) -> None:
    wh.write_state(STATE_FILE, snap)
