"""Rebalancing transfers (core): store <-> store moves. Not implemented yet (issue #6).

The function exists so the stage, its asset and its outbox file exist with their final columns;
it proposes no transfer and says so in every run's metadata. Issue #6 replaces the body with a
cvxpy transport problem over the store<->store lanes.
"""

from __future__ import annotations

import pandas as pd

TRANSFER_COLUMNS = [
    "sku_id", "from_location_id", "to_location_id", "units", "ship_date", "expected_date", "lead_time_days",
    "cost_per_unit", "expected_shortage_saved", "binding_constraint", "rationale",
]
STATUS = "not implemented yet: no store-to-store transfers are proposed (issue #6)"


def plan_transfers(
    forecast: pd.DataFrame,
    positions: pd.DataFrame,
    locations: pd.DataFrame,
    lanes: pd.DataFrame,
    products: pd.DataFrame,
    plan_date: str,
) -> pd.DataFrame:
    """Store -> store transfers for plan_date + 1 (the interface the asset and the twin call).

    No transfers yet: an empty table with the stage's output columns."""
    return pd.DataFrame({c: pd.Series(dtype="object") for c in TRANSFER_COLUMNS}).astype({"units": "int64"})
