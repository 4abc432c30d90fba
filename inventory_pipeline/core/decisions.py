"""Decision log (core): an append-only event log of every decision, and its current state as a
fold over the events.

A *decision* is one forecast version served, price change, purchase order, DC -> store
replenishment or store -> store transfer of one plan date. Its id is a hash of what it is about
(type, plan date, SKU, from, to) — never of its quantity or of the time it ran — so re-running a
partition yields the same ids and the outbox can never hold a duplicate order.

Each decision has a life of *events* (one row each, never updated or deleted):

    proposed ─► auto_approved ───────────────────────────────► exported
             └► pending_review ─► approved | overridden ─────► exported
                               └► rejected

`proposed` carries the payload: the numbers (units, prices, dates, value, expected cost and
service, confidence), the binding constraint, the explanation, the forecast model version
(MLflow registry), the policy version and the inputs fingerprint (a hash of every warehouse
partition the plan read). Its `revision` is a hash of that payload: a re-run with the same inputs
proposes the same revision (a hash of the numbers, dates and versions), and the event ids (hashes
of decision, revision and event) are the same, so merging them into the log adds nothing. A re-run
with different inputs proposes a new
revision, which goes through approval again (a planner's answer to the old numbers does not carry
over). Planner answers (approve / reject / override) apply while a decision is not yet exported;
answers that cannot apply are returned by `replay` with the reason, never silently dropped.

`replay(events)` is the view: the current state of every decision (status, lifecycle state,
status history, who reviewed it, the numbers after an override).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy  # its submodules load on first use: scipy.stats costs ~1.2 s the code location need not pay

from .dates import as_dates
from .policy import Policy
from .pricing import price_changed

DECISION_TYPES = (
    "forecast",
    "purchase_order",
    "store_replenishment",
    "transfer",
    "price_change",
)
APPROVAL_STATUSES = (
    "auto_approved",
    "pending_review",
    "approved",
    "rejected",
    "overridden",
)
EVENTS = ("proposed", *APPROVAL_STATUSES, "exported")
EXPORTABLE = ("auto_approved", "approved", "overridden")
PLANNER_ACTIONS = {
    "approve": "approved",
    "reject": "rejected",
    "override": "overridden",
}
_PREFIX = {
    "forecast": "FC",
    "purchase_order": "PO",
    "store_replenishment": "RP",
    "transfer": "TR",
    "price_change": "PC",
}
ID_PATTERN = r"^(FC|PO|RP|TR|PC)-\d{8}-[0-9a-f]{12}$"
# order of events written in one batch (recorded_at ties): a proposal before its routing, before
# a planner's answer, before the export
_SEQ = {
    "proposed": 0,
    "auto_approved": 1,
    "pending_review": 1,
    "approved": 2,
    "rejected": 2,
    "overridden": 2,
    "exported": 3,
}

# what a decision is: its type, item, route and numbers
WHAT_COLUMNS = [
    "decision_type", "sku_id", "source_id", "location_id", "units", "old_price", "new_price", "order_date",
    "expected_date", "value", "expected_cost", "expected_service", "confidence",
]  # fmt: skip
VERSION_COLUMNS = ["model_version", "policy_version", "inputs_fingerprint"]  # what made it
WHY_COLUMNS = ["binding_constraint", "explanation", "explanation_source"]
PAYLOAD_COLUMNS = [*WHAT_COLUMNS, *WHY_COLUMNS, *VERSION_COLUMNS]
EVENT_COLUMNS = [
    "event_id", "decision_id", "plan_date", "revision", "event", "seq", "event_date", "recorded_at", "actor",
    "reason", "override_value", "run_id", *PAYLOAD_COLUMNS,
]  # fmt: skip
DECISION_COLUMNS = [
    "decision_id", "plan_date", *WHAT_COLUMNS, "status", "review_reason", *VERSION_COLUMNS, "revision", *WHY_COLUMNS,
    "planner", "planner_reason", "reviewed_on", "state", "status_history", "proposal_generation",
]  # fmt: skip
# the planner's review queue: what waits for an answer, and why
REVIEW_QUEUE_COLUMNS = [
    "decision_id", "plan_date", "decision_type", "sku_id", "source_id", "location_id", "units", "old_price",
    "new_price", "value", "confidence", "review_reason", "explanation",
]  # fmt: skip
NOT_APPLIED_COLUMNS = [
    "planner_file_date",
    "row",
    "decision_id",
    "action",
    "planner",
    "reason",
]
_NUMBERS = [
    "units",
    "old_price",
    "new_price",
    "value",
    "expected_cost",
    "expected_service",
    "confidence",
]
# columns a proposal may carry for `route` only (not in the payload, not in the events): a price
# change's unit cost and the pricing stage's change_reason (markdown = a documented clearance)
ROUTING_COLUMNS = ["unit_cost", "change_reason"]
HOLD_COLUMNS = ["location_id", "sku_id", "from_location_id", "note"]


def _h(s: pd.Series | str, n: int = 12) -> pd.Series | str:
    if isinstance(s, str):
        return hashlib.sha256(s.encode()).hexdigest()[:n]
    return pd.Series(
        [hashlib.sha256(k.encode()).hexdigest()[:n] for k in s],
        index=s.index,
        dtype=object,
    )


def decision_ids(kind: str, plan_date: str, sku: pd.Series, src: pd.Series, dst: pd.Series) -> pd.Series:
    """Deterministic ids: PREFIX-YYYYMMDD-<12 hex of sha256(kind|date|sku|from|to)>."""
    keys = kind + "|" + plan_date + "|" + sku.astype(str) + "|" + src.astype(str) + "|" + dst.astype(str)
    return f"{_PREFIX[kind]}-{plan_date.replace('-', '')}-" + _h(keys)


def plan_date_of(decision_id: pd.Series) -> pd.Series:
    """The plan date a decision id names (NaT where the id is malformed)."""
    return pd.to_datetime(
        decision_id.astype(str).str.extract(r"^[A-Z]{2}-(\d{8})-")[0],
        format="%Y%m%d",
        errors="coerce",
    )


def forecast_confidence(mean: pd.Series, sigma: pd.Series) -> pd.Series:
    """P(|demand - forecast| <= 50% of the forecast) over the protection period under a normal
    with the forecast's spread: 2 Phi(0.5 mean / sigma) - 1 (1 when sigma is 0, 0 when mean is 0)."""
    m, s = np.asarray(mean, float), np.asarray(sigma, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(s > 1e-12, 0.5 * m / s, np.where(m > 0, np.inf, 0.0))
    return pd.Series(2 * scipy.stats.norm.cdf(z) - 1, index=getattr(mean, "index", None))


# ---- proposals -----------------------------------------------------------------------------------


def _forecast_decision(forecast: dict, plan_date: str, model_version: str) -> pd.DataFrame:
    """The decision that this forecast version serves the plan."""
    return pd.DataFrame(
        {
            "decision_type": ["forecast"],
            "sku_id": [""],
            "source_id": [""],
            "location_id": [""],
            "units": [float(forecast.get("series", np.nan))],
            "old_price": np.nan,
            "new_price": np.nan,
            "order_date": pd.Timestamp(plan_date) + pd.Timedelta(days=1),
            "expected_date": pd.NaT,
            "value": [float(forecast.get("cv_wape", np.nan))],
            "expected_cost": np.nan,
            "expected_service": [float(forecast.get("coverage_80", np.nan))],
            "confidence": [1 - min(1.0, float(forecast.get("cv_wape", np.nan)))],
            "binding_constraint": "promotion_gate",
            "explanation": [
                f"forecast {forecast.get('model_version', model_version)} serves "
                f"{int(forecast.get('series', 0))} store x SKU series (CV WAPE "
                f"{float(forecast.get('cv_wape', np.nan)):.3f}, 80% interval coverage "
                f"{float(forecast.get('coverage_80', np.nan)):.3f}); gate: {forecast.get('gate', '')}; "
                f"MLflow run {forecast.get('mlflow_run_id', '')}"
            ],
        }
    )


def _order_decisions(o: pd.DataFrame) -> pd.DataFrame:
    """Purchase orders and store replenishments."""
    conf = (
        forecast_confidence(o["mean_demand_protection"], o["sigma_demand_protection"])
        if "sigma_demand_protection" in o
        else pd.Series(np.nan, index=o.index)
    )
    return pd.DataFrame(
        {
            "decision_type": o["decision_type"],
            "sku_id": o["sku_id"],
            "source_id": o["source_id"],
            "location_id": o["location_id"],
            "units": o["units"].astype(float),
            "old_price": np.nan,
            "new_price": np.nan,
            "order_date": o["order_date"],
            "expected_date": o["expected_date"],
            "value": o["order_value"].astype(float),
            "expected_cost": o["expected_cost"].astype(float) if "expected_cost" in o else np.nan,
            "expected_service": (o["expected_service"] if "expected_service" in o else o["service_level"]).astype(
                float
            ),
            "confidence": conf.astype(float),
            "binding_constraint": o["binding_constraint"],
            "explanation": o["rationale"],
        }
    )


def _transfer_decisions(t: pd.DataFrame) -> pd.DataFrame:
    """Store -> store rebalancing transfers."""
    return pd.DataFrame(
        {
            "decision_type": "transfer",
            "sku_id": t["sku_id"],
            "source_id": t["from_location_id"],
            "location_id": t["to_location_id"],
            "units": t["units"].astype(float),
            "old_price": np.nan,
            "new_price": np.nan,
            "order_date": t["ship_date"],
            "expected_date": t["expected_date"],
            "value": (t["units"] * t["cost_per_unit"]).astype(float),
            "expected_cost": -(t["net_value"].astype(float)) if "net_value" in t else np.nan,
            "expected_service": np.nan,
            "confidence": np.nan,
            "binding_constraint": t["binding_constraint"],
            "explanation": t["rationale"],
        }
    )


def _price_decisions(p: pd.DataFrame, plan_date: str) -> pd.DataFrame:
    """The recommended prices that change (effective the day after the plan)."""
    effective = pd.Timestamp(plan_date) + pd.Timedelta(days=1)
    return pd.DataFrame(
        {
            "decision_type": "price_change",
            "sku_id": p["sku_id"],
            "source_id": "",
            "location_id": p["location_id"],
            "units": np.nan,
            "old_price": p["current_price"].astype(float),
            "new_price": p["recommended_price"].astype(float),
            "order_date": effective,
            "expected_date": effective,
            "value": (p["expected_margin_recommended"] - p["expected_margin_current"]).astype(float),
            "expected_cost": np.nan,
            "expected_service": np.nan,
            "confidence": p["elasticity_confidence"].astype(float) if "elasticity_confidence" in p else np.nan,
            "binding_constraint": p["binding_guardrail"],
            "explanation": p["rationale"],
            "unit_cost": p["unit_cost"].astype(float) if "unit_cost" in p else np.nan,
            "change_reason": p["change_reason"].astype(str) if "change_reason" in p else "",
        }
    )


def propose(
    orders: pd.DataFrame,
    transfers: pd.DataFrame,
    prices: pd.DataFrame,
    plan_date: str,
    model_version: str,
    policy_version: str,
    inputs_fingerprint: str = "",
    forecast: dict | None = None,
) -> pd.DataFrame:
    """One row per decision of the plan (decision_id, revision, plan_date and PAYLOAD_COLUMNS), from
    the stage outputs. `forecast` (model_version, series, cv_wape, coverage_80, gate, mlflow_run_id)
    adds the decision that this forecast version serves the plan."""
    parts = []
    if forecast:
        parts.append(_forecast_decision(forecast, plan_date, model_version))
    if len(orders):
        parts.append(_order_decisions(orders))
    if len(transfers):
        parts.append(_transfer_decisions(transfers))
    changed = prices[price_changed(prices["recommended_price"], prices["current_price"])] if len(prices) else prices
    if len(changed):
        parts.append(_price_decisions(changed, plan_date))
    if not parts:
        return pd.DataFrame(columns=["decision_id", "plan_date", "revision", *PAYLOAD_COLUMNS])
    log = pd.concat(parts, ignore_index=True)
    for c in (
        "sku_id",
        "source_id",
        "location_id",
        "binding_constraint",
        "explanation",
    ):
        log[c] = log[c].fillna("").astype(str)
    for c in _NUMBERS:  # a stage's empty or all-NaN column must not make the whole column object
        log[c] = pd.to_numeric(log[c], errors="coerce").astype(float)
    for c in ("order_date", "expected_date"):
        log[c] = as_dates(log[c])
    log["decision_id"] = ""
    for kind, g in log.groupby("decision_type"):
        log.loc[g.index, "decision_id"] = decision_ids(kind, plan_date, g["sku_id"], g["source_id"], g["location_id"])
    log["plan_date"] = pd.Timestamp(plan_date)
    log["explanation_source"] = "template"
    log["model_version"] = model_version
    log["policy_version"] = policy_version
    log["inputs_fingerprint"] = inputs_fingerprint
    log["revision"] = revision_of(log)
    extra = [c for c in ROUTING_COLUMNS if c in log.columns]  # read by `route`, not part of the payload
    return log[["decision_id", "plan_date", "revision", *PAYLOAD_COLUMNS, *extra]].sort_values(
        "decision_id", ignore_index=True
    )


def revision_of(log: pd.DataFrame) -> pd.Series:
    """A hash of what a proposal says: its numbers, dates, binding constraint and the model and
    policy versions — not its explanation wording, nor the inputs fingerprint (new data that
    yields the same decision is not a new decision; the fingerprint of the first derivation stays)."""
    key = log["decision_id"].astype(str)
    for c in _NUMBERS:
        key = key + "|" + log[c].astype(float).round(6).astype(str)
    for c in ("order_date", "expected_date"):
        key = key + "|" + as_dates(log[c]).dt.strftime("%Y-%m-%d").fillna("")
    for c in (
        "source_id",
        "location_id",
        "binding_constraint",
        "model_version",
        "policy_version",
    ):
        key = key + "|" + log[c].astype(str)
    return _h(key)


# ---- approval routing --------------------------------------------------------------------------


@dataclass(frozen=True)
class TypicalOrders:
    """Past order sizes per (location_id, sku_id): median units and number of orders."""

    table: pd.DataFrame  # location_id, sku_id, median_units, orders
    daily_po_value: float = float("nan")  # median value of the purchase orders placed per day

    @staticmethod
    def from_orders(orders: pd.DataFrame | None, unit_cost: pd.Series | None = None) -> TypicalOrders:
        """From past orders (order_id, order_date, source_id, location_id, sku_id, units; one row
        per order). `unit_cost` by sku_id values the purchase orders (those to a DC) per day."""
        if orders is None or not len(orders):
            return TypicalOrders(pd.DataFrame(columns=["location_id", "sku_id", "median_units", "orders"]))
        g = orders.groupby(["location_id", "sku_id"])["units"]
        t = pd.DataFrame({"median_units": g.median(), "orders": g.size()}).reset_index()
        daily = float("nan")
        if unit_cost is not None and "is_purchase_order" in orders:
            po = orders[orders["is_purchase_order"].astype(bool)]
            if len(po):
                val = po["units"] * po["sku_id"].map(unit_cost).fillna(0)
                daily = float(val.groupby(as_dates(po["order_date"])).sum().median())
        return TypicalOrders(t, daily)


def _master_hold(table: str, r: dict, note: str, supplier_of: pd.Series | None) -> pd.DataFrame | None:
    """What one quarantined master row holds: a product its SKU everywhere, a supplier every SKU it
    supplies, a lane the moves along it (None: nothing it names)."""
    if table == "products" and r.get("sku_id"):
        return pd.DataFrame(
            {"location_id": [None], "sku_id": [str(r["sku_id"])], "from_location_id": [None], "note": [note]}
        )
    if table == "suppliers" and r.get("supplier_id") and supplier_of is not None:
        skus = supplier_of.index[supplier_of.astype(str) == str(r["supplier_id"])].astype(str)
        if len(skus):
            return pd.DataFrame({"location_id": None, "sku_id": skus, "from_location_id": None, "note": note})
    elif table == "lanes" and r.get("from_location_id") and r.get("to_location_id"):
        return pd.DataFrame(
            {
                "location_id": [str(r["to_location_id"])],
                "sku_id": [None],
                "from_location_id": [str(r["from_location_id"])],
                "note": [note],
            }
        )
    return None


def input_holds(
    day_items: pd.DataFrame | None = None,
    master: dict[str, pd.DataFrame] | None = None,
    supplier_of: pd.Series | None = None,
) -> pd.DataFrame:
    """The holds (HOLD_COLUMNS) of a plan from its inputs' quarantine.

    `day_items` are the items of the quarantined rows of the plan date's daily files
    (core.ingestion.quarantined_items): "input quarantined: <file>, row <n> (<reason>)".
    `master` maps products / suppliers / lanes to their quarantine tables (held and rejected
    rows): a product row holds its SKU everywhere, a supplier row every SKU it supplies
    (`supplier_of`: sku_id -> supplier_id), a lane row the moves along it; "master data: <file>,
    row <n>: <reason>"."""
    from .ingestion import short_path

    parts = []
    if day_items is not None and len(day_items):
        d = day_items
        parts.append(
            pd.DataFrame(
                {
                    "location_id": d["location_id"],
                    "sku_id": d["sku_id"],
                    "from_location_id": None,
                    "note": d["note"] + " (" + d["reason"].str.split("; ").str[0].str.slice(0, 120) + ")",
                }
            )
        )
    for table, q in (master or {}).items():
        if q is None or not len(q):
            continue
        recs = [json.loads(r) if isinstance(r, str) and r else {} for r in q["record"]]
        note = (
            "master data: "
            + q["file"].astype(str).map(short_path)
            + ", row "
            + q["row"].astype("Int64").astype(str)
            + ": "
            + q["reason"].astype(str).str.slice(0, 160)
        ).tolist()
        for r, n in zip(recs, note, strict=True):
            hold = _master_hold(table, r if isinstance(r, dict) else {}, n, supplier_of)
            if hold is not None:
                parts.append(hold)
    if not parts:
        return pd.DataFrame(columns=HOLD_COLUMNS)
    h = pd.concat(parts, ignore_index=True)
    return h.astype(object).where(h.notna(), None)[HOLD_COLUMNS]


def hold_notes(p: pd.DataFrame, holds: pd.DataFrame | None, limit: int = 3) -> pd.Series:
    """Per decision of `p`: the notes of the holds (HOLD_COLUMNS) that concern it, "" if none.

    A hold naming a location and a SKU concerns the decisions of that SKU at that location, as
    destination or source; a SKU only: every decision of the SKU; a location only: every decision
    at or from it; `from_location_id` + `location_id` (a lane): the decisions moving along it.
    The forecast decision is never held."""
    from .ledger import join_notes

    out = pd.Series("", index=p.index, dtype=object)
    if holds is None or not len(holds) or not len(p):
        return out
    h = holds.reindex(columns=HOLD_COLUMNS).reset_index(drop=True)
    h["_order"] = range(len(h))
    d = p.loc[p["decision_type"] != "forecast", ["sku_id", "location_id", "source_id"]].astype(str)
    d["_line"] = d.index
    lane, has_loc, has_sku = (
        h["from_location_id"].notna(),
        h["location_id"].notna(),
        h["sku_id"].notna(),
    )
    # a decision's location is its destination or its source: match each
    dest = d[["_line", "sku_id", "location_id"]]
    src = d[["_line", "sku_id", "source_id"]].rename(columns={"source_id": "location_id"})
    parts = []
    for mask, on, sides in (
        (~lane & has_loc & has_sku, ["location_id", "sku_id"], (dest, src)),
        (~lane & ~has_loc & has_sku, ["sku_id"], (dest,)),
        (~lane & has_loc & ~has_sku, ["location_id"], (dest, src)),
    ):
        if mask.any():
            sub = h.loc[mask, [*on, "note", "_order"]].astype({c: str for c in on})
            parts += [side.merge(sub, on=on)[["_line", "note", "_order"]] for side in sides]
    if lane.any():
        sub = h.loc[lane, ["from_location_id", "location_id", "note", "_order"]].astype(
            {"from_location_id": str, "location_id": str}
        )
        moves = d.rename(columns={"source_id": "from_location_id"})
        parts.append(moves.merge(sub, on=["from_location_id", "location_id"])[["_line", "note", "_order"]])
    notes = join_notes(parts, limit)
    out.loc[notes.index] = notes.astype(str)
    return out


def route(
    proposals: pd.DataFrame,
    policy: Policy,
    typical: TypicalOrders | None = None,
    items_priced: int | None = None,
    holds: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Add `status` (auto_approved | pending_review) and `review_reason` to the proposals.

    A decision waits for review when it passes an impact threshold of the policy's `approval`
    section (order value, price change %, transfer size, low confidence on a decision worth more
    than `min_confidence_value`), when an order is `guards.anomaly_multiple` times larger than the
    item's typical order (median of its past orders, with at least `guards.anomaly_min_orders`
    of them), or when auto-approving it would pass a daily cap of `guards` (purchase-order value:
    the largest orders wait; number of price changes: the smallest expected gains wait). Every
    reason that applies is listed.

    Two more reasons always hold, whatever the thresholds: a decision about an item whose input
    was quarantined or whose master data breaks a rule (`holds`, see `hold_notes`; the note says
    which file and row), and a price change below unit cost (a negative expected margin) that is
    not a documented clearance (the pricing stage's change_reason "markdown"). A held decision is
    never auto-approved, so the outbox never exports it without a planner's answer."""
    p = proposals.copy()
    if not len(p):
        return p.assign(status=pd.Series(dtype=object), review_reason=pd.Series(dtype=object))
    r = _Reasons(p)
    _threshold_reasons(r, p, policy.approval)
    held = hold_notes(p, holds)
    r.add(held != "", held)
    if "unit_cost" in p:
        _below_cost_reason(r, p)
    is_order = p["decision_type"].isin(["purchase_order", "store_replenishment"])
    if typical is not None and len(typical.table) and is_order.any():
        _anomaly_reason(r, p, is_order, typical, policy.guards)
    _cap_reasons(r, p, daily_caps(policy, typical, items_priced))
    p["status"] = np.where(r.pending(), "pending_review", "auto_approved")
    p["review_reason"] = r.text()
    return p


class _Reasons:
    """Why each proposal of `p` waits for a planner: one column per reason, in the order added."""

    def __init__(self, p: pd.DataFrame) -> None:
        self.index, self.table = p.index, pd.DataFrame(index=p.index)

    def add(self, mask, text) -> None:
        mask = pd.Series(np.asarray(mask, bool), index=self.index)
        col = pd.Series("", index=self.index, dtype=object)
        if mask.any():
            col[mask] = np.asarray(
                text if np.ndim(text) == 0 else pd.Series(text, index=self.index)[mask],
                dtype=object,
            )
        self.table[len(self.table.columns)] = col

    def pending(self) -> pd.Series:
        return (self.table != "").any(axis=1)

    def text(self):
        t = self.table
        return t.apply(lambda r: "; ".join(x for x in r if x), axis=1) if len(t.columns) and len(t) else ""


def _threshold_reasons(r: _Reasons, p: pd.DataFrame, a) -> None:
    """The approval section's impact thresholds: order value, transfer cost and size, price
    change, low confidence on a decision worth enough."""
    is_order = p["decision_type"].isin(["purchase_order", "store_replenishment"])
    is_tr = p["decision_type"] == "transfer"
    is_pc = p["decision_type"] == "price_change"
    pct = (p["new_price"] / p["old_price"] - 1) * 100
    r.add(
        is_order & (p["value"] > a.max_order_value),
        "order value " + p["value"].round(2).astype(str) + f" > {a.max_order_value:g}",
    )
    r.add(
        is_tr & (p["value"] > a.max_order_value),
        "transfer cost " + p["value"].round(2).astype(str) + f" > {a.max_order_value:g}",
    )
    r.add(
        is_tr & (p["units"] > a.max_transfer_units),
        "transfer units " + p["units"].round(0).astype("Int64").astype(str) + f" > {a.max_transfer_units:g}",
    )
    r.add(
        is_pc & (pct.abs() > a.max_price_change_pct + 1e-9),
        "price change " + pct.round(1).astype(str) + f"% beyond ±{a.max_price_change_pct:g}%",
    )
    low = (
        ~(p["decision_type"] == "forecast")
        & (p["confidence"] < a.min_confidence)
        & (p["value"].abs() >= a.min_confidence_value)
    )
    r.add(
        low,
        "confidence " + p["confidence"].round(2).astype(str) + f" < {a.min_confidence:g}",
    )


def _below_cost_reason(r: _Reasons, p: pd.DataFrame) -> None:
    """A price change below unit cost that is not a documented clearance markdown."""
    is_pc = p["decision_type"] == "price_change"
    cost = pd.to_numeric(p["unit_cost"], errors="coerce")
    clearance = p["change_reason"].astype(str).eq("markdown") if "change_reason" in p else False
    loss = is_pc & (p["new_price"] < cost - 1e-9) & ~clearance
    r.add(
        loss,
        "negative expected margin: new price "
        + p["new_price"].round(2).astype(str)
        + " below unit cost "
        + cost.round(2).astype(str)
        + " (not a clearance markdown)",
    )


def _anomaly_reason(r: _Reasons, p: pd.DataFrame, is_order: pd.Series, typical: TypicalOrders, g) -> None:
    """An order `anomaly_multiple` times its item's typical (median) order size."""
    t = typical.table.set_index(["location_id", "sku_id"])
    key = pd.MultiIndex.from_frame(p[["location_id", "sku_id"]])
    med = pd.Series(t["median_units"].reindex(key).to_numpy(float), index=p.index)
    n = pd.Series(t["orders"].reindex(key).fillna(0).to_numpy(float), index=p.index)
    anomalous = is_order & (n >= g.anomaly_min_orders) & (p["units"] > g.anomaly_multiple * med)
    r.add(
        anomalous,
        "units "
        + p["units"].round(0).astype("Int64").astype(str)
        + f" > {g.anomaly_multiple:g} x typical "
        + med.round(1).astype(str)
        + " (median of "
        + n.astype(int).astype(str)
        + " past orders)",
    )


def _cap_reasons(r: _Reasons, p: pd.DataFrame, cap: dict) -> None:
    """The daily caps on what is auto-approved: past the purchase-order value cap the largest
    orders wait, past the price-change cap the smallest expected gains wait."""
    is_po = p["decision_type"] == "purchase_order"
    is_pc = p["decision_type"] == "price_change"
    if cap["order_value"] is not None:
        auto = p[is_po & ~r.pending()].sort_values(["value", "decision_id"])
        over = auto.index[auto["value"].cumsum() > cap["order_value"] + 1e-9]
        r.add(
            p.index.isin(over),
            f"daily purchase-order value cap {cap['order_value']:.2f} ({cap['order_value_source']}) reached",
        )
    if cap["price_changes"] is not None:
        auto = p[is_pc & ~r.pending()].sort_values(["value", "decision_id"], ascending=[False, True])
        over = auto.index[cap["price_changes"] :]
        r.add(
            p.index.isin(over),
            f"daily price-change cap {cap['price_changes']} ({cap['price_changes_source']}) reached",
        )


def daily_caps(
    policy: Policy,
    typical: TypicalOrders | None = None,
    items_priced: int | None = None,
) -> dict:
    """The plan's caps on auto-approved purchase-order value and number of price changes: the
    tighter of the absolute cap and the relative one (a multiple of the median daily PO value of
    the past orders; a share of the items priced), None where neither applies."""
    g = policy.guards
    ov, ov_src = [], []
    if g.max_daily_order_value is not None:
        (
            ov.append(g.max_daily_order_value),
            ov_src.append("guards.max_daily_order_value"),
        )
    daily = typical.daily_po_value if typical is not None else float("nan")
    if g.max_daily_order_value_multiple is not None and np.isfinite(daily) and daily > 0:
        ov.append(g.max_daily_order_value_multiple * daily)
        ov_src.append(f"{g.max_daily_order_value_multiple:g} x median daily PO value {daily:.2f}")
    pc, pc_src = [], []
    if g.max_daily_price_changes is not None:
        (
            pc.append(g.max_daily_price_changes),
            pc_src.append("guards.max_daily_price_changes"),
        )
    if g.max_daily_price_change_share is not None and items_priced:
        pc.append(int(np.floor(g.max_daily_price_change_share * items_priced)))
        pc_src.append(f"{g.max_daily_price_change_share:g} of {items_priced} items priced")
    i, j = (int(np.argmin(ov)) if ov else None), (int(np.argmin(pc)) if pc else None)
    return {
        "order_value": ov[i] if ov else None,
        "order_value_source": ov_src[i] if ov else "",
        "price_changes": pc[j] if pc else None,
        "price_changes_source": pc_src[j] if pc else "",
    }


def guard_violations(
    state: pd.DataFrame,
    policy: Policy,
    typical: TypicalOrders | None = None,
    items_priced: int | None = None,
) -> pd.DataFrame:
    """Re-checks the runtime guards on what the plan would auto-approve, independently of `route`:
    one row per broken guard (guard, decision_id, detail). A planner's explicit approval is the
    planner's authority and is not counted against the caps."""
    cols = ["guard", "decision_id", "detail"]
    a = state[state["status"] == "auto_approved"]
    cap, g, bad = daily_caps(policy, typical, items_priced), policy.guards, []
    po = a[a["decision_type"] == "purchase_order"]
    if cap["order_value"] is not None and po["value"].sum() > cap["order_value"] + 1e-6:
        bad.append(
            (
                "daily_order_value",
                "",
                f"auto-approved purchase orders worth {po['value'].sum():.2f} > cap "
                f"{cap['order_value']:.2f} ({cap['order_value_source']})",
            )
        )
    pc = a[a["decision_type"] == "price_change"]
    if cap["price_changes"] is not None and len(pc) > cap["price_changes"]:
        bad.append(
            (
                "daily_price_changes",
                "",
                f"{len(pc)} auto-approved price changes > cap {cap['price_changes']} ({cap['price_changes_source']})",
            )
        )
    o = a[a["decision_type"].isin(["purchase_order", "store_replenishment"])]
    if typical is not None and len(typical.table) and len(o):
        t = typical.table.set_index(["location_id", "sku_id"])
        key = pd.MultiIndex.from_frame(o[["location_id", "sku_id"]])
        med, n = (
            t["median_units"].reindex(key).to_numpy(float),
            t["orders"].reindex(key).fillna(0).to_numpy(float),
        )
        m = (n >= g.anomaly_min_orders) & (o["units"].to_numpy(float) > g.anomaly_multiple * med)
        for did, u, md in zip(o["decision_id"][m], o["units"][m], med[m]):
            bad.append(
                (
                    "order_size_anomaly",
                    did,
                    f"units {u:g} > {g.anomaly_multiple:g} x typical {md:g}",
                )
            )
    return pd.DataFrame(bad, columns=cols)


# ---- events ------------------------------------------------------------------------------------


def _events(
    base: pd.DataFrame,
    event: pd.Series | str,
    key: pd.Series,
    recorded_at: str,
    run_id: str,
) -> pd.DataFrame:
    e = base.copy()
    e["event"] = event
    e["seq"] = e["event"].map(_SEQ).astype(int)
    e["event_id"] = _h(e["decision_id"] + "|" + e["event"] + "|" + key, 16)
    e["recorded_at"] = recorded_at
    e["run_id"] = run_id
    return e.reindex(columns=EVENT_COLUMNS)


def _proposal_keys(routed: pd.DataFrame, existing: pd.DataFrame | None) -> pd.Series:
    """The key of each `proposed` event: its revision, so a re-run adds nothing; but a decision
    that returns to numbers it had before other numbers (a late file, then its correction) gets
    `revision|again<n>`: a proposal of its own, after the other one, exported again."""
    key = routed["revision"].astype(str)
    if existing is None or not len(existing):
        return key
    prop = existing[existing["event"] == "proposed"]
    if not len(prop):
        return key
    current = prop.drop_duplicates("decision_id", keep="last").set_index("decision_id")["revision"]
    times = prop.groupby(["decision_id", "revision"]).size()
    pairs = pd.MultiIndex.from_arrays([routed["decision_id"], key])
    n = times.reindex(pairs).fillna(0).astype(int).to_numpy()
    same = current.reindex(routed["decision_id"]).to_numpy() == key.to_numpy()
    again = np.where(same, n - 1, n)  # the current proposal keeps its own key; a return gets the next
    return key.where(again <= 0, key + "|again" + again.astype(str))


def proposal_events(
    routed: pd.DataFrame, recorded_at: str, run_id: str = "", existing: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Two events per decision: `proposed` (with the payload) and its routing. `existing`: the
    plan's events so far (a decision returning to earlier numbers is proposed anew)."""
    if not len(routed):
        return pd.DataFrame(columns=EVENT_COLUMNS)
    base = routed.assign(
        event_date=routed["plan_date"],
        actor="pipeline",
        reason="",
        override_value=np.nan,
    )
    prop = _events(base, "proposed", _proposal_keys(routed, existing), recorded_at, run_id)
    routing = _events(
        base.assign(reason=routed["review_reason"]),
        routed["status"],
        base["revision"],
        recorded_at,
        run_id,
    )
    for c in PAYLOAD_COLUMNS:  # the payload lives on the proposal only
        routing[c] = np.nan if c in _NUMBERS else None
    routing["decision_type"] = routed["decision_type"].to_numpy()
    return pd.concat([prop, routing], ignore_index=True)


def planner_events(planner: pd.DataFrame, file_date: str, recorded_at: str, run_id: str = "") -> pd.DataFrame:
    """One event per planner row (decision_id, action, override_units_or_price, reason, planner;
    `row` if given; `revision`, landing contract v1.1: the revision the planner answered). The
    event id hashes the row's content and file date, so re-reading the same file adds nothing, and
    a changed answer is a new event."""
    if planner is None or not len(planner):
        return pd.DataFrame(columns=EVENT_COLUMNS)
    pl = planner.reset_index(drop=True)
    value = pd.to_numeric(pl["override_units_or_price"], errors="coerce")
    base = pd.DataFrame(
        {
            "decision_id": pl["decision_id"].astype(str),
            "plan_date": plan_date_of(pl["decision_id"]),
            "revision": _answered_revision(pl),
            "event_date": pd.Timestamp(file_date),
            "actor": pl["planner"].fillna("").astype(str),
            "reason": pl["reason"].fillna("").astype(str),
            "override_value": value,
        }
    )
    key = (
        file_date
        + "|"
        + pl["action"].astype(str)
        + "|"
        + value.astype(str)
        + "|"
        + base["actor"]
        + "|"
        + base["reason"]
        # an answer naming its revision is another answer; one without keeps its old event id
        + np.where(base["revision"] != "", "|" + base["revision"], "")
    )
    return _events(base, pl["action"].map(PLANNER_ACTIONS), key, recorded_at, run_id)


def _answered_revision(pl: pd.DataFrame) -> pd.Series:
    """The `revision` column of a planner file ("" where absent or blank: the answer holds for
    whatever the decision's numbers are when it is read)."""
    if "revision" not in pl:
        return pd.Series("", index=pl.index)
    r = pl["revision"].astype(object)
    return r.where(r.notna(), "").astype(str).str.strip().replace({"nan": "", "None": ""})


def export_events(
    state: pd.DataFrame,
    manifest_sha256: str,
    export_date: str,
    recorded_at: str,
    run_id: str = "",
) -> pd.DataFrame:
    """An `exported` event for every exportable decision of `state` not yet exported with these
    numbers (the key is the revision and the exported units / price, so a re-export of the same
    folder adds nothing)."""
    s = state[state["status"].isin(EXPORTABLE) & (state["decision_type"] != "forecast")]
    if not len(s):
        return pd.DataFrame(columns=EVENT_COLUMNS)
    base = pd.DataFrame(
        {
            "decision_id": s["decision_id"],
            "plan_date": s["plan_date"],
            "revision": s["revision"],
            "event_date": pd.Timestamp(export_date),
            "actor": "erp_outbox",
            "reason": "outbox manifest " + manifest_sha256[:12],
            "override_value": np.nan,
            "decision_type": s["decision_type"],
        }
    )
    key = s["revision"] + "|" + s["units"].astype(str) + "|" + s["new_price"].astype(str)
    if "proposal_generation" in s:  # the export of a decision proposed again is an export of its own
        g = s["proposal_generation"].fillna(0).astype(int)
        key = key.where(g <= 0, key + "|again" + g.astype(str))
    return _events(base, "exported", key, recorded_at, run_id)


def merge_events(existing: pd.DataFrame | None, new: pd.DataFrame) -> pd.DataFrame:
    """Append-only merge: every existing event is kept as it was (first recording wins), new
    event ids are appended. Deterministic order: recorded_at, seq, decision_id, event_id."""
    frames = [f.reindex(columns=EVENT_COLUMNS) for f in (existing, new) if f is not None and len(f)]
    if not frames:
        return pd.DataFrame(columns=EVENT_COLUMNS)
    ev = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    ev = ev.drop_duplicates("event_id", keep="first")
    for c in ("plan_date", "event_date", "order_date", "expected_date"):
        ev[c] = as_dates(ev[c])
    for c in _NUMBERS + ["override_value"]:
        ev[c] = pd.to_numeric(ev[c], errors="coerce").astype(float)
    for c in [
        "event_id",
        "decision_id",
        "revision",
        "event",
        "recorded_at",
        "actor",
        "reason",
        "run_id",
    ]:
        ev[c] = ev[c].fillna("").astype(str)
    for c in (
        "decision_type",
        "sku_id",
        "source_id",
        "location_id",
        "binding_constraint",
        "explanation",
        "explanation_source",
        "model_version",
        "policy_version",
        "inputs_fingerprint",
    ):
        ev[c] = ev[c].astype(object).where(ev[c].notna(), None)
    ev["seq"] = ev["seq"].astype(int)
    return ev.sort_values(["recorded_at", "seq", "decision_id", "event_id"], ignore_index=True)[EVENT_COLUMNS]


# ---- the view ------------------------------------------------------------------------------------


def _routed_state(ev: pd.DataFrame) -> pd.DataFrame:
    """Each decision's latest proposal with the routing of that revision (before any answer)."""
    props = ev[ev["event"] == "proposed"]
    # how many times the current revision was proposed before (a return to earlier numbers: 1, ...)
    props = props.assign(proposal_generation=props.groupby(["decision_id", "revision"]).cumcount())
    prop = props.drop_duplicates("decision_id", keep="last").set_index("decision_id")
    state = prop[["plan_date", "revision", *PAYLOAD_COLUMNS, "order", "proposal_generation"]].copy()
    route_ev = ev[ev["event"].isin(["auto_approved", "pending_review"])]
    route_ev = route_ev[
        route_ev["revision"].to_numpy() == state["revision"].reindex(route_ev["decision_id"]).to_numpy()
    ]
    route_ev = route_ev.drop_duplicates("decision_id", keep="last").set_index("decision_id")
    state["status"] = route_ev["event"].reindex(state.index).fillna("proposed")
    state["review_reason"] = route_ev["reason"].reindex(state.index).fillna("")
    state["state"] = state["status"]
    state["status_history"] = "proposed>" + state["status"]
    state["planner"] = ""
    state["planner_reason"] = ""
    state["reviewed_on"] = pd.NaT
    return state


def _refusal(cur: pd.Series, r, exported: bool) -> str | None:
    """Why a planner answer `r` cannot apply to the decision `cur` (None: it applies)."""
    if exported:
        return "already exported: the ERP has this decision"
    if cur["decision_type"] == "forecast":
        return "a forecast version is governed by the promotion gate, not by planner answers"
    if r.event == "overridden" and not (np.isfinite(r.override_value) and r.override_value >= 0):
        return "an override needs a non-negative override_units_or_price"
    if r.event == "overridden" and cur["decision_type"] == "price_change" and r.override_value <= 0:
        return "an overridden price must be positive"
    if isinstance(r.revision, str) and r.revision and r.revision != cur["revision"]:
        return f"answered revision {r.revision}, but the numbers changed since (now revision {cur['revision']})"
    return None


def _apply_answers(state: pd.DataFrame, did: str, g: pd.DataFrame, not_applied: list) -> None:
    """The planner answers and export events `g` of decision `did`, in order, onto `state`;
    the answers that cannot apply go to `not_applied`."""
    cur = state.loc[did]
    status, hist, exported = cur["status"], [cur["status"]], False
    units, price = cur["units"], cur["new_price"]
    upd = {}
    for r in g.itertuples():
        if r.event == "exported":
            if r.revision == cur["revision"] and status in EXPORTABLE:
                exported = True
                hist.append("exported")
            continue
        why = _refusal(cur, r, exported)
        if why:
            not_applied.append((r.event_date, did, r.event, r.actor, why))
            continue
        status = r.event
        hist.append(status)
        units, price = cur["units"], cur["new_price"]
        if status == "overridden":
            if cur["decision_type"] == "price_change":
                price = round(float(r.override_value), 2)
            else:
                units = float(np.floor(r.override_value))
        upd = {
            "planner": r.actor,
            "planner_reason": r.reason,
            "reviewed_on": r.event_date,
        }
    state.loc[did, ["status", "units", "new_price"]] = [status, units, price]
    state.loc[did, "state"] = "exported" if exported else status
    state.loc[did, "status_history"] = ">".join(["proposed", *hist])
    for k, v in upd.items():
        state.loc[did, k] = v


def replay(events: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(state, not_applied): the current state of every decision (DECISION_COLUMNS), and the
    planner answers that could not apply (NOT_APPLIED_COLUMNS) — an unknown decision id, an answer
    to a decision already exported, an override without a valid value, an answer to a forecast.

    The current revision is the latest proposal; its routing sets the status; the planner answers
    recorded after that proposal apply in order while the decision is not exported; exported
    events of the current revision set `state` to exported."""
    ev = merge_events(None, events) if len(events) else events.reindex(columns=EVENT_COLUMNS)
    ev = ev.reset_index(drop=True)
    ev["order"] = np.arange(len(ev))
    state = _routed_state(ev)
    later = ev[ev["event"].isin(["approved", "rejected", "overridden", "exported"])]
    not_applied = []
    if len(later):
        known = later["decision_id"].isin(state.index)
        for r in later[~known & (later["event"] != "exported")].itertuples():
            not_applied.append((r.event_date, r.decision_id, r.event, r.actor, "unknown decision id"))
        later = later[known]
        later = later[later["order"].to_numpy() > state["order"].reindex(later["decision_id"]).to_numpy()]
        touched = later.loc[later["event"] != "exported", "decision_id"].unique()
        exp = later[(later["event"] == "exported") & ~later["decision_id"].isin(touched)]
        exp = exp[exp["revision"].to_numpy() == state["revision"].reindex(exp["decision_id"]).to_numpy()]
        done = state.index.isin(exp["decision_id"]) & state["status"].isin(EXPORTABLE)  # vectorised: no planner answer
        state.loc[done, "state"] = "exported"
        state.loc[done, "status_history"] = state.loc[done, "status_history"] + ">exported"
        later = later[later["decision_id"].isin(touched)]
        for did, g in later.groupby("decision_id", sort=False):  # only the decisions a planner answered
            _apply_answers(state, did, g, not_applied)
    na = pd.DataFrame(
        [
            (
                d,
                None,
                i,
                ("approve" if e == "approved" else "reject" if e == "rejected" else "override"),
                a,
                w,
            )
            for d, i, e, a, w in not_applied
        ],
        columns=NOT_APPLIED_COLUMNS,
    )
    state = state.drop(columns="order").reset_index()
    state["reviewed_on"] = as_dates(state["reviewed_on"])
    return state.reindex(columns=DECISION_COLUMNS).sort_values("decision_id", ignore_index=True), na


def build_decision_log(
    orders: pd.DataFrame,
    transfers: pd.DataFrame,
    prices: pd.DataFrame,
    plan_date: str,
    policy: Policy,
    model_version: str,
    planner: pd.DataFrame | None = None,
    typical: TypicalOrders | None = None,
    inputs_fingerprint: str = "",
    forecast: dict | None = None,
    recorded_at: str = "",
    holds: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Propose, route and apply a planner file in one batch: the state of the plan's decisions
    (what the asset computes, without the event store)."""
    routed = route(
        propose(
            orders,
            transfers,
            prices,
            plan_date,
            model_version,
            policy.tag,
            inputs_fingerprint,
            forecast,
        ),
        policy,
        typical,
        holds=holds,
    )
    ev = proposal_events(routed, recorded_at)
    if planner is not None and len(planner):
        ev = merge_events(ev, planner_events(planner, plan_date, recorded_at))
    return replay(ev)[0]


# ---- governance KPIs ---------------------------------------------------------------------------


def override_rates(state: pd.DataFrame) -> pd.DataFrame:
    """Per decision type and overall: decisions, sent for review, reviewed, approved, rejected,
    overridden, still pending, and the override rate = overrides / decisions sent for review."""
    s = state[state["decision_type"] != "forecast"]
    reviewed = s["status_history"].str.contains("pending_review", regex=False)
    f = pd.DataFrame(
        {
            "decision_type": s["decision_type"],
            "decisions": 1,
            "sent_for_review": reviewed.astype(int),
            "approved": (reviewed & (s["status"] == "approved")).astype(int),
            "rejected": (reviewed & (s["status"] == "rejected")).astype(int),
            "overridden": (reviewed & (s["status"] == "overridden")).astype(int),
            "pending": (s["status"] == "pending_review").astype(int),
        }
    )
    t = f.groupby("decision_type").sum()
    t.loc["all"] = t.sum()
    t["override_rate"] = np.where(
        t["sent_for_review"] > 0,
        t["overridden"] / t["sent_for_review"].clip(lower=1),
        np.nan,
    )
    t["review_share"] = np.where(t["decisions"] > 0, t["sent_for_review"] / t["decisions"].clip(lower=1), np.nan)
    return t.reset_index()
