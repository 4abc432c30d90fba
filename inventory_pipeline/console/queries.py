"""What the console's pages show, read from the warehouse (Parquet partitions and, for the dbt
marts, the DuckDB file, read-only). Plain pandas; the app only lays it out.

A decision's current state is the replay of its plan's event log (`core.decisions.replay`), so the
console sees the outbox's export events and every planner answer the pipeline has applied, not
the decision_log table as it was when the plan ran.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

from ..core.decisions import plan_date_of, replay
from ..core.warehouse import Warehouse

REVIEW_PLANS = 7  # the queue holds the pending decisions of this many latest plans (as the review_queue asset)
Z80 = 1.2816  # the 80% central interval of a normal protection-period demand


def plan_dates(wh: Warehouse, latest: int | None = None) -> list[str]:
    """Plan dates with an event log, newest first."""
    days = sorted(wh.partitions("decision_events"), reverse=True)
    return days[:latest] if latest else days


def plan_state(wh: Warehouse, day: str) -> pd.DataFrame:
    """The replayed state of every decision of one plan (DECISION_COLUMNS)."""
    return replay(wh.read("decision_events", day))[0] if wh.exists("decision_events", day) else pd.DataFrame()


def logged_state(wh: Warehouse, day: str) -> pd.DataFrame:
    """A plan's decisions as its decision_log partition holds them (a Parquet read: ~0.1 s for an
    M5-size plan, where the replay takes ~0.6 s). publish_decisions rewrites it whenever answers
    are applied, so its pending decisions are the replay's (only export events come after it, and
    an exported decision is never pending): the queue reads it; answers are checked on the replay."""
    return wh.read("decision_log", day) if wh.exists("decision_log", day) else plan_state(wh, day)


def decision_state(wh: Warehouse, days: list[str], state_of=None) -> pd.DataFrame:
    """The replayed state of every decision of the plans `days`; `state_of(day)` replaces
    `plan_state` (the app passes a cached one)."""
    frames = [f for d in days if len(f := (state_of or (lambda x: plan_state(wh, x)))(d))]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _order_numbers(wh: Warehouse, day: str) -> pd.DataFrame:
    """Per order line of a plan: demand over the protection period with its 80% interval, the
    inventory position and the order-up-to target the units were sized against."""
    if not wh.exists("replenishment_orders", day):
        return pd.DataFrame()
    o = wh.read("replenishment_orders", day)
    mu, sd = o["mean_demand_protection"].astype(float), o["sigma_demand_protection"].astype(float)
    return o.assign(
        plan_date=pd.Timestamp(day),
        demand_over_lead_time=mu.round(1),
        demand_p10=np.maximum(mu - Z80 * sd, 0).round(1),
        demand_p90=(mu + Z80 * sd).round(1),
    )[
        ["plan_date", "decision_type", "sku_id", "source_id", "location_id", "demand_over_lead_time", "demand_p10",
         "demand_p90", "inventory_position", "target_units", "reorder_point"]
    ]  # fmt: skip


def review_queue(wh: Warehouse, plans: int = REVIEW_PLANS, state_of=None) -> pd.DataFrame:
    """The decisions waiting for a planner (each plan's decision log: `logged_state`), newest plan
    first and largest value first within a
    plan, with the numbers behind each: the decision's own (units or prices, value, expected cost
    and service, confidence, the routing reasons, the explanation) and, for orders, the demand
    over the lead time with its interval, the position and the target."""
    days = plan_dates(wh, plans)
    state = decision_state(wh, days, state_of or (lambda d: logged_state(wh, d)))
    if not len(state):
        return state
    q = state[state["status"] == "pending_review"].copy()
    numbers = [n for d in days if len(n := _order_numbers(wh, d))]
    if numbers and len(q):
        keys = ["plan_date", "decision_type", "sku_id", "source_id", "location_id"]
        q = q.merge(pd.concat(numbers, ignore_index=True), on=keys, how="left")
    q["plan_date"] = pd.to_datetime(q["plan_date"]).dt.date.astype(str)
    return q.sort_values(["plan_date", "value"], ascending=[False, False], ignore_index=True)


def own_events(wh: Warehouse, decision_id: str) -> pd.DataFrame:
    """One decision's raw events, read once for the decision page (a Parquet filter: the plan's
    other decisions are not loaded); empty if the id names no plan with an event log."""
    day = plan_date_of(pd.Series([decision_id])).iloc[0]
    if pd.isna(day) or not wh.exists("decision_events", day.date().isoformat()):
        return pd.DataFrame()
    return pd.read_parquet(
        wh.path("decision_events", day.date().isoformat()), filters=[("decision_id", "==", decision_id)]
    )


def decision_events(wh: Warehouse, decision_id: str, own: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every event of one decision, in order: proposed, routed, answered, exported (`own`: its
    events already read by `own_events`)."""
    ev = own_events(wh, decision_id) if own is None else own
    if not len(ev):
        return pd.DataFrame()
    ev = ev.sort_values(["recorded_at", "seq"], ignore_index=True)
    return ev[["recorded_at", "event", "revision", "actor", "reason", "override_value", "units", "new_price", "run_id"]]


def one_decision_state(wh: Warehouse, decision_id: str, own: pd.DataFrame | None = None) -> pd.DataFrame:
    """The replayed state of one decision (DECISION_COLUMNS; empty if unknown): its own events
    replayed, which is its row of the plan's replay (a decision's state depends on its events
    only; test_governance checks it) at a fraction of the cost (0.5 s for an M5-size plan)."""
    ev = own_events(wh, decision_id) if own is None else own
    return replay(ev)[0] if len(ev) else pd.DataFrame()


def recent_history(wh: Warehouse, location_id: str, sku_id: str, plan_date: str, days: int = 56) -> pd.DataFrame:
    """The store x SKU's daily sales, stock-out flags and stock on hand over the `days` up to the
    plan date (marts.fct_daily_demand), and the plan's forecast with its 80% interval after it."""
    end = pd.Timestamp(plan_date)
    start = end - pd.Timedelta(days=days - 1)
    hist = wh.read_model(
        "select date, units_sold, on_hand, is_stockout from marts.fct_daily_demand "
        "where location_id = ? and sku_id = ? and date between ? and ? order by date",
        [location_id, sku_id, start.date(), end.date()],
    )
    fc = pd.DataFrame()
    if wh.exists("demand_forecast", plan_date):  # one series of an M5-size plan's ~900k rows: read only it
        fc = pd.read_parquet(
            wh.path("demand_forecast", plan_date),
            columns=["date", "mean", "p10", "p90"],
            filters=[("location_id", "==", location_id), ("sku_id", "==", sku_id)],
        )
    return pd.concat([hist.assign(date=pd.to_datetime(hist["date"])), fc], ignore_index=True).sort_values("date")


def exported_lines(wh: Warehouse, decision_id: str, events: pd.DataFrame | None = None) -> pd.DataFrame:
    """The outbox lines of the decision (what the ERP received), from the export events
    (`events`: its `decision_events`, already read)."""
    ev = decision_events(wh, decision_id) if events is None else events
    return ev[ev["event"] == "exported"] if len(ev) else ev


def sent_answers(store, since: str) -> pd.DataFrame:
    """The latest answer per decision in the landing zone's planner files dated `since` or later
    (decision_id, answer_sent: "approve by ana on 2025-05-01"): what planners sent, whether or not
    the pipeline has applied it yet."""
    frames = []
    for day in store.list_dirs("planner"):
        body = store.read_bytes(f"planner/{day}/decisions.csv") if day >= since else None
        if body:
            f = pd.read_csv(io.BytesIO(body), dtype=str, keep_default_na=False)
            if {"decision_id", "action", "planner"} <= set(f.columns):  # a file the contract rejects shows nothing
                frames.append(f.assign(day=day))
    if not frames:
        return pd.DataFrame(columns=["decision_id", "answer_sent"])
    a = pd.concat(frames, ignore_index=True).drop_duplicates("decision_id", keep="last")
    return pd.DataFrame(
        {"decision_id": a["decision_id"], "answer_sent": a["action"] + " by " + a["planner"] + " on " + a["day"]}
    )
