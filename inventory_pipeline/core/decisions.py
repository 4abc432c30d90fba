"""Decision log (core): every proposed decision with a deterministic id, its approval status,
the model and policy versions that made it, its confidence and its explanation.

Ids are a hash of what the decision is about (type, plan date, SKU, from, to), never of its
quantity or of the time it ran, so re-running a partition yields the same ids and the outbox
can never hold a duplicate order. Approval: inside the policy's limits a decision is
auto-approved; above them it waits for a planner (`pending_review`). A planner's file for the
partition (planner/YYYY-MM-DD/decisions.csv) approves, rejects or overrides by decision id.
Issue #7 turns this table into an append-only event log with status history.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from .policy import Policy

DECISION_COLUMNS = [
    "decision_id", "plan_date", "decision_type", "sku_id", "source_id", "location_id", "units",
    "old_price", "new_price", "order_date", "expected_date", "value", "confidence", "status",
    "review_reason", "model_version", "policy_version", "binding_constraint", "explanation",
    "planner", "planner_reason",
]
EXPORTABLE = ("auto_approved", "approved", "overridden")
_PREFIX = {"purchase_order": "PO", "store_replenishment": "RP", "transfer": "TR", "price_change": "PC"}


def decision_ids(kind: str, plan_date: str, sku: pd.Series, src: pd.Series, dst: pd.Series) -> pd.Series:
    """Deterministic ids: PREFIX-YYYYMMDD-<12 hex of sha256(kind|date|sku|from|to)>."""
    day = plan_date.replace("-", "")
    keys = kind + "|" + plan_date + "|" + sku.astype(str) + "|" + src.astype(str) + "|" + dst.astype(str)
    return pd.Series(
        [f"{_PREFIX[kind]}-{day}-{hashlib.sha256(k.encode()).hexdigest()[:12]}" for k in keys], index=sku.index, dtype=object
    )


def build_decision_log(
    orders: pd.DataFrame,
    transfers: pd.DataFrame,
    prices: pd.DataFrame,
    plan_date: str,
    policy: Policy,
    model_version: str,
    planner: pd.DataFrame | None = None,
) -> pd.DataFrame:
    limits = policy.approval
    parts = []
    if len(orders):
        o = orders
        parts.append(pd.DataFrame({
            "decision_type": o["decision_type"], "sku_id": o["sku_id"], "source_id": o["source_id"],
            "location_id": o["location_id"], "units": o["units"].astype(float), "old_price": np.nan, "new_price": np.nan,
            "order_date": o["order_date"], "expected_date": o["expected_date"], "value": o["order_value"],
            "confidence": o["service_level"], "binding_constraint": o["binding_constraint"], "explanation": o["rationale"],
            "over_limit": o["order_value"] > limits.max_order_value,
            "limit_text": "order value " + o["order_value"].round(2).astype(str) + f" > {limits.max_order_value}",
        }))
    if len(transfers):
        t = transfers
        parts.append(pd.DataFrame({
            "decision_type": "transfer", "sku_id": t["sku_id"], "source_id": t["from_location_id"],
            "location_id": t["to_location_id"], "units": t["units"].astype(float), "old_price": np.nan, "new_price": np.nan,
            "order_date": t["ship_date"], "expected_date": t["expected_date"], "value": t["units"] * t["cost_per_unit"],
            "confidence": np.nan, "binding_constraint": t["binding_constraint"], "explanation": t["rationale"],
            "over_limit": t["units"] > limits.max_transfer_units,
            "limit_text": "transfer units " + t["units"].astype(str) + f" > {limits.max_transfer_units}",
        }))
    changed = prices[prices["recommended_price"].round(2) != prices["current_price"].round(2)] if len(prices) else prices
    if len(changed):
        p = changed
        pct = (p["recommended_price"] / p["current_price"] - 1) * 100
        effective = pd.Timestamp(plan_date) + pd.Timedelta(days=1)
        parts.append(pd.DataFrame({
            "decision_type": "price_change", "sku_id": p["sku_id"], "source_id": "", "location_id": p["location_id"],
            "units": np.nan, "old_price": p["current_price"], "new_price": p["recommended_price"],
            "order_date": effective, "expected_date": effective,
            "value": p["expected_margin_recommended"] - p["expected_margin_current"],
            "confidence": p["elasticity_confidence"], "binding_constraint": p["binding_guardrail"],
            "explanation": p["rationale"], "over_limit": pct.abs() > limits.max_price_change_pct,
            "limit_text": "price change " + pct.round(1).astype(str) + f"% beyond ±{limits.max_price_change_pct}%",
        }))
    if not parts:
        return pd.DataFrame(columns=DECISION_COLUMNS)
    log = pd.concat(parts, ignore_index=True)
    log["decision_id"] = ""
    for kind, g in log.groupby("decision_type"):
        log.loc[g.index, "decision_id"] = decision_ids(kind, plan_date, g["sku_id"], g["source_id"], g["location_id"])
    log["plan_date"] = pd.Timestamp(plan_date)
    log["status"] = np.where(log["over_limit"], "pending_review", "auto_approved")
    log["review_reason"] = np.where(log["over_limit"], log["limit_text"], "")
    log["model_version"] = model_version
    log["policy_version"] = policy.tag
    log["planner"] = ""
    log["planner_reason"] = ""
    if planner is not None and len(planner):
        log = apply_planner_decisions(log, planner)
    return log[DECISION_COLUMNS].sort_values("decision_id", ignore_index=True)


def apply_planner_decisions(log: pd.DataFrame, planner: pd.DataFrame) -> pd.DataFrame:
    """Apply approve / reject / override by decision id; unknown ids are ignored (and reported
    by the shell). An override replaces the units (orders, transfers) or the new price."""
    log = log.copy()
    p = planner.drop_duplicates("decision_id", keep="last").set_index("decision_id")
    hit = log["decision_id"].isin(p.index)
    if not hit.any():
        return log
    act = log.loc[hit, "decision_id"].map(p["action"])
    log.loc[hit, "status"] = act.map({"approve": "approved", "reject": "rejected", "override": "overridden"})
    log.loc[hit, "planner"] = log.loc[hit, "decision_id"].map(p["planner"]).astype(str)
    log.loc[hit, "planner_reason"] = log.loc[hit, "decision_id"].map(p["reason"]).fillna("").astype(str)
    over = log.index[hit & (log["status"] == "overridden")]
    value = log.loc[over, "decision_id"].map(p["override_units_or_price"]).astype(float)
    price_rows = over[log.loc[over, "decision_type"] == "price_change"]
    unit_rows = over.difference(price_rows)
    log.loc[price_rows, "new_price"] = value[price_rows]
    log.loc[unit_rows, "units"] = np.floor(value[unit_rows])
    return log
