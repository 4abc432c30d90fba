"""The dashboards' numbers: the operations summaries the pipeline writes with each plan
(core/reporting.py, the `dashboard_*` tables), read from the newest plan's partition, and what only
the present can say (run failures, freshness).

`summary` falls back to computing a summary live from the marts when the newest plan has none (a
warehouse built before the summaries existed, or a plan still running): slower at M5 scale, the
same numbers.
"""

from __future__ import annotations

import pandas as pd

from ..core import reporting
from ..core.warehouse import Warehouse


def current_summary(wh: Warehouse, table: str) -> pd.DataFrame | None:
    """The summary `table` as the newest complete plan (the newest decision_log partition) wrote
    it, or None when that plan has none."""
    plans = wh.partitions("decision_log")
    if plans and wh.exists(table, plans[-1]):
        return wh.read(table, plans[-1])
    return None


def summary(wh: Warehouse, table: str) -> pd.DataFrame:
    """The newest plan's summary, else computed now from the marts."""
    written = current_summary(wh, table)
    return written if written is not None else reporting.SUMMARIES[table](wh)


def run_failures(wh: Warehouse) -> pd.DataFrame:
    return wh.read("run_failures") if wh.exists("run_failures") else pd.DataFrame()


FRESHNESS_TABLES = (
    "raw_pos_sales", "raw_inventory", "raw_receipts", "raw_open_orders",
    "demand_forecast", "price_recommendations", "replenishment_orders", "rebalancing_transfers", "decision_log",
)  # fmt: skip


def freshness(wh: Warehouse, now: pd.Timestamp | None = None) -> pd.DataFrame:
    """Per daily table: its newest partition, how many days it trails the newest landing day
    (raw_pos_sales), when that partition was written and how many hours ago. A plan table 1 day
    behind the landing is a plan not made yet (the Dagster UI's freshness checks hold the deadline)."""
    now = now if now is not None else pd.Timestamp.now(tz="UTC")
    rows = []
    for t in FRESHNESS_TABLES:
        parts = wh.partitions(t)
        if parts:
            written = pd.Timestamp(wh.path(t, parts[-1]).stat().st_mtime, unit="s", tz="UTC")
            rows.append({"table": t, "newest_partition": parts[-1], "written_at": written.floor("s")})
    f = pd.DataFrame(rows, columns=["table", "newest_partition", "written_at"])
    if not len(f):
        return f
    landing = f.loc[f["table"] == "raw_pos_sales", "newest_partition"].max()
    newest = pd.to_datetime(f["newest_partition"])
    f["days_behind_landing"] = (pd.Timestamp(landing) - newest).dt.days if isinstance(landing, str) else pd.NA
    f["hours_since_written"] = ((now - f["written_at"]).dt.total_seconds() / 3600).round(1)
    return f
