"""Governance shell: the decision log (an append-only event store in the warehouse), its runtime
guards, the planner review queue and the planner-answer sensors. Thin: the maths and the state
machine are in core.decisions, the explanation rules in core.explain.

    decision_events/<plan date>/   append-only events of that plan's decisions (proposed, routed,
                                   planner answers, exported); merged under a lock, never rewritten
    decision_log/<plan date>/      the current state of the plan's decisions (a replay of its events)
    decision_inputs/<plan date>/   every partition the plan read, with its content hash
    planner_not_applied/<plan date>/  planner answers that could not apply, with the reason
"""

from dataclasses import dataclass
from datetime import UTC, datetime

import dagster as dg
import pandas as pd

from ..contracts.outputs import DecisionLog
from ..core.decisions import (
    EVENT_COLUMNS,
    REVIEW_QUEUE_COLUMNS,
    TypicalOrders,
    guard_violations,
    input_holds,
    merge_events,
    override_rates,
    plan_date_of,
    planner_events,
    proposal_events,
    propose,
    replay,
    route,
)
from ..core.explain import rephrase_explanations
from ..core.ingestion import quarantined_items
from ..core.replan import DATED_INPUTS
from ..core.warehouse import fingerprint_of
from ._common import (
    blocking_check,
    contract_check,
    contract_spec,
    decision_table,
    model_key,
    operational,
    preview,
    violations_check,
)
from .ingestion import landing_assets
from .ledger import day_quarantine, inventory_reconciliation
from .partitions import daily_partitions
from .pricing import price_recommendations
from .rebalancing import rebalancing_transfers
from .resources import ExplainerResource, PolicyResource, WarehouseResource

_planner_asset = next(a for a in landing_assets if a.key.path[-1] == "raw_planner_decisions")
_DAILY_RAW = list(DATED_INPUTS)  # the promotion plan files (contract v1.1) too
_MASTER_RAW = [
    "raw_locations",
    "raw_products",
    "raw_suppliers",
    "raw_lanes",
    "raw_calendar",
]
_STAGES = [
    "demand_forecast",
    "price_recommendations",
    "replenishment_orders",
    "replenishment_targets",
    "rebalancing_transfers",
    "inventory_reconciliation",
]
REVIEW_WINDOW_DAYS = 7  # the review queue lists pending decisions of the plans of the last 7 days


def _days(d: str, n: int) -> list[str]:
    return [x.date().isoformat() for x in pd.date_range(end=pd.Timestamp(d), periods=n)]


def inputs_fingerprint(wh, d: str, history_days: int) -> tuple[str, pd.DataFrame]:
    """Every partition a plan reads (master files, the daily landing files of the history window,
    the stage outputs of the plan) with its content hash."""
    reads = (
        [(t, None) for t in _MASTER_RAW]
        + [(t, x) for t in _DAILY_RAW for x in _days(d, history_days)]
        + [(t, d) for t in _STAGES]
    )
    return wh.fingerprint(reads)


REPUBLISH_JOBS = ("publish_decisions",)  # re-derive a plan's decisions from its stage outputs, not re-plan it


def plan_inputs(context, wh, d: str, history_days: int) -> tuple[str, pd.DataFrame]:
    """What plan `d` read, recorded in decision_inputs. A republish after planner answers keeps
    the plan's record: its stage outputs were computed from those reads, not from the warehouse
    as it is now (which may hold a late file the stale_plans sensor has yet to re-plan)."""
    if context.job_name in REPUBLISH_JOBS and wh.exists("decision_inputs", d):
        inputs = wh.read("decision_inputs", d)
        return fingerprint_of(inputs), inputs
    fp, inputs = inputs_fingerprint(wh, d, history_days)
    wh.write("decision_inputs", inputs, d)
    return fp, inputs


def typical_orders(wh, d: str, days: int) -> TypicalOrders:
    """Past orders (one row per order id) of the open-order snapshots of the last `days` days."""
    files = [str(wh.path("raw_open_orders", x)) for x in _days(d, days) if wh.exists("raw_open_orders", x)]
    if not files:
        return TypicalOrders.from_orders(None)
    o = wh.query(
        f"select order_id, any_value(order_date) as order_date, any_value(location_id) as location_id, "
        f"any_value(sku_id) as sku_id, max(units) as units from read_parquet({files!r}, union_by_name=true) "
        f"group by order_id"
    )
    o = o[~o["order_id"].astype(str).str.startswith("LAUNCH")]  # a new item's first fill is no typical order
    locs = wh.read_model("select location_id, location_type from marts.dim_locations")
    dcs = set(locs.loc[locs["location_type"] == "dc", "location_id"])
    o["is_purchase_order"] = o["location_id"].isin(dcs)
    cost = wh.read_model("select sku_id, unit_cost from marts.dim_products").set_index("sku_id")["unit_cost"]
    return TypicalOrders.from_orders(o, cost)


def plan_holds(wh, d: str) -> pd.DataFrame:
    """What holds decisions of plan d: the items of the quarantined rows of d's daily files and
    the quarantined or held rows of the master files (core.decisions.input_holds)."""
    master = {t: wh.read(f"quarantine_{t}") for t in ("products", "suppliers", "lanes") if wh.exists(f"quarantine_{t}")}
    supplier_of = wh.read("raw_products").set_index("sku_id")["supplier_id"] if wh.exists("raw_products") else None
    return input_holds(quarantined_items(day_quarantine(wh, d)), master, supplier_of)


def _planner_rows(wh, d: str) -> list[tuple[str, pd.DataFrame]]:
    """The answers of every planner file dated d or later that name a decision of plan d."""
    out = []
    for x in wh.partitions("raw_planner_decisions"):
        if x < d:
            continue
        p = wh.read("raw_planner_decisions", x)
        p = p[plan_date_of(p["decision_id"]) == pd.Timestamp(d)] if len(p) else p
        if len(p):
            out.append((x, p))
    return out


_LOG_DEPS = [
    "replenishment_orders",
    "replenishment_targets",
    rebalancing_transfers,
    price_recommendations,
    "demand_forecast",
    "forecast_run",
    _planner_asset,
    inventory_reconciliation,
    model_key("dim_locations"),
    model_key("dim_products"),
]


@dataclass
class _RoutedPlan:
    """The plan's proposals, routed, and what they were made from."""

    routed: pd.DataFrame
    prices: pd.DataFrame
    typical: TypicalOrders
    fingerprint: str
    inputs: pd.DataFrame  # every partition the plan read, with its hash
    run: dict | None  # the forecast_run row
    model_version: str


def _routed_plan(context, wh, d: str, pol, explainer: ExplainerResource) -> _RoutedPlan:
    """Proposals from the stage outputs, routed by the policy (auto-approved or waiting, input
    holds applied) and, when configured, with explanations rephrased."""
    run = wh.read("forecast_run", d).iloc[0].to_dict() if wh.exists("forecast_run", d) else None
    fc_versions = wh.read("demand_forecast", d)["model_version"].unique()
    model_version = str(run["model_version"]) if run else (str(fc_versions[0]) if len(fc_versions) else "none")
    fp, inputs = plan_inputs(context, wh, d, pol.forecast.history_days)
    prices = wh.read("price_recommendations", d)
    proposals = propose(
        wh.read("replenishment_orders", d),
        wh.read("rebalancing_transfers", d),
        prices,
        d,
        model_version,
        pol.tag,
        fp,
        forecast=run,
    )
    typical = typical_orders(wh, d, pol.guards.history_days)
    holds = plan_holds(wh, d)
    routed = route(proposals, pol, typical, items_priced=len(prices), holds=holds)
    if len(holds):
        context.log.warning(
            f"{len(holds)} input hold(s) from quarantined or held rows: "
            f"{int(routed['review_reason'].str.contains('input quarantined|master data').sum())} "
            "decision(s) wait for a planner"
        )
    ex = explainer.get(pol.explanations)
    if ex is not None:
        routed = rephrase_explanations(routed, ex, pol.explanations.max_decisions)
        context.log.info(f"explanations: {routed['explanation_source'].value_counts().to_dict()}")
    return _RoutedPlan(routed, prices, typical, fp, inputs, run, model_version)


def _log_metadata(state, events, plan: _RoutedPlan, planner_files: list, not_applied, pol) -> dict:
    """What the decision log's materialisation shows in the Dagster UI."""
    return {
        "dagster/row_count": len(state),
        "by_status": state["status"].value_counts().to_dict(),
        "by_type": state["decision_type"].value_counts().to_dict(),
        "pending_review": int((state["status"] == "pending_review").sum()),
        "review_reasons": state.loc[state["review_reason"] != "", "review_reason"]
        .str.split(";")
        .explode()
        .str.replace(r"-?\d[\d.]*", "N", regex=True)
        .str.strip()
        .value_counts()
        .head(10)
        .to_dict(),
        "planner_files": planner_files,
        "planner_not_applied": len(not_applied),
        "held_for_input": int(state["review_reason"].str.contains("input quarantined|master data", regex=True).sum()),
        "override_rate": dg.MetadataValue.md(override_rates(state).round(4).to_markdown(index=False)),
        "events_total": len(events),
        "inputs_fingerprint": plan.fingerprint,
        "inputs_partitions": len(plan.inputs),
        "model_version": plan.model_version,
        "policy_version": pol.tag,
        "mlflow_run_id": str(plan.run["mlflow_run_id"]) if plan.run else "",
        "daily_po_value_median": round(plan.typical.daily_po_value, 2)
        if plan.typical.daily_po_value == plan.typical.daily_po_value
        else None,
        "preview": preview(state.drop(columns=["explanation", "status_history"])),
    }


@dg.multi_asset(
    name="decision_log",
    partitions_def=daily_partitions,
    specs=[
        decision_table(
            "decision_log",
            _LOG_DEPS,
            "Every decision of the plan as the replay of its append-only events: id, status and "
            "history, versions (MLflow model, policy), inputs fingerprint, binding constraint, expected cost and "
            "service, confidence, explanation. Planner answers from planner/*/decisions.csv are applied here.",
        ),
        decision_table(
            "decision_events",
            _LOG_DEPS,
            "The plan's append-only event store: proposed, routed, planner answers, exported "
            "(the outbox appends its export events). Merged under a lock, never rewritten.",
        ),
        decision_table(
            "decision_inputs",
            _LOG_DEPS,
            "Every partition the plan read, with its content hash (the inputs fingerprint's parts).",
        ),
        decision_table(
            "planner_not_applied",
            _LOG_DEPS,
            "Planner answers that could not apply to this plan's decisions, with the reason.",
        ),
    ],
    check_specs=[
        contract_spec("decision_log", DecisionLog),
        blocking_check(
            "runtime_guards",
            "decision_log",
            "what is auto-approved stays inside the daily caps (purchase-order "
            "value, number of price changes) and no auto-approved order is far "
            "above its item's typical size",
        ),
    ],
    can_subset=True,
)
@operational
def decision_log(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    policy: PolicyResource,
    explainer: ExplainerResource,
):
    d = context.partition_key
    wh = warehouse.get()
    pol = policy.load()
    now = datetime.now(UTC).isoformat(timespec="seconds")
    plan = _routed_plan(context, wh, d, pol, explainer)
    routed, typical, prices = plan.routed, plan.typical, plan.prices
    # a republish applies answers to the plan's proposals; it proposes nothing: the stage outputs
    # may be those of a later run that stopped at a gate, which no decision log vetted
    before = wh.read("decision_events", d) if wh.exists("decision_events", d) else None
    republish = context.job_name in REPUBLISH_JOBS and before is not None
    new = [] if republish else [proposal_events(routed, now, context.run_id, before)]
    answers = _planner_rows(wh, d)
    new += [planner_events(p, x, now, context.run_id) for x, p in answers]
    new = [x for x in new if len(x)]
    added = pd.concat(new, ignore_index=True) if new else pd.DataFrame(columns=EVENT_COLUMNS)
    events = wh.append("decision_events", added, d, merge_events).table
    state, not_applied = replay(events)
    wh.write("decision_log", state, d)
    wh.write("planner_not_applied", not_applied, d)
    if len(not_applied):
        context.log.warning(
            f"{len(not_applied)} planner answer(s) not applied: "
            + "; ".join(f"{r.decision_id}: {r.reason}" for r in not_applied.head(5).itertuples())
        )
    guards = guard_violations(state, pol, typical, items_priced=len(prices))
    return (
        dg.MaterializeResult(
            asset_key="decision_log",
            metadata=_log_metadata(state, events, plan, [x for x, _ in answers], not_applied, pol),
            check_results=[
                contract_check("output_contract", DecisionLog, state),
                violations_check("runtime_guards", guards, "guard", "guard(s) tripped", pol.tag),
            ],
        ),
        dg.MaterializeResult(
            asset_key="decision_events",
            metadata={"dagster/row_count": len(events), "by_event": events["event"].value_counts().to_dict()},
        ),
        dg.MaterializeResult(
            asset_key="decision_inputs",
            metadata={"dagster/row_count": len(plan.inputs), "inputs_fingerprint": plan.fingerprint},
        ),
        dg.MaterializeResult(
            asset_key="planner_not_applied",
            metadata={"dagster/row_count": len(not_applied), "preview": preview(not_applied)},
        ),
    )


@dg.asset(
    partitions_def=daily_partitions,
    group_name="governance",
    deps=[decision_log],
    description=f"Decisions waiting for a planner, from the plans of the last {REVIEW_WINDOW_DAYS} days, with "
    "their explanation and why they wait. Answer in planner/YYYY-MM-DD/decisions.csv.",
)
@operational
def review_queue(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    d = context.partition_key
    wh = warehouse.get()
    days = [x for x in _days(d, REVIEW_WINDOW_DAYS) if wh.exists("decision_events", x)]
    events = pd.concat([wh.read("decision_events", x) for x in days], ignore_index=True) if days else None
    state = replay(events)[0] if events is not None else pd.DataFrame(columns=["status"])
    q = state[state["status"] == "pending_review"].sort_values(["plan_date", "value"], ascending=[True, False])
    q = q.reindex(columns=REVIEW_QUEUE_COLUMNS).reset_index(drop=True)
    wh.write("review_queue", q, d)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(q),
            "by_type": q["decision_type"].value_counts().to_dict(),
            "value_waiting": round(float(q["value"].fillna(0).sum()), 2),
            "plans": days,
            "how_to_answer": "planner/YYYY-MM-DD/decisions.csv: decision_id, action (approve|reject|override), "
            "override_units_or_price, reason, planner",
            "queue": preview(q, 25),
        }
    )
