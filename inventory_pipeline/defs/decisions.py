"""decision_log asset: every decision of the partition with id, status, versions and explanation."""

import dagster as dg

from ..contracts.outputs import DecisionLog
from ..core.decisions import build_decision_log
from ._common import contract_check, contract_spec, preview
from .ingestion import landing_assets
from .partitions import daily_partitions
from .pricing import price_recommendations
from .rebalancing import rebalancing_transfers
from .replenishment import replenishment_orders
from .resources import PolicyResource, WarehouseResource

_planner_asset = next(a for a in landing_assets if a.key.path[-1] == "raw_planner_decisions")


@dg.asset(
    partitions_def=daily_partitions,
    group_name="decisions",
    deps=[replenishment_orders, rebalancing_transfers, price_recommendations, _planner_asset],
    check_specs=[contract_spec("decision_log", DecisionLog)],
    description="All decisions of the plan: deterministic ids, approval status, model/policy versions, explanations.",
)
def decision_log(context: dg.AssetExecutionContext, warehouse: WarehouseResource, policy: PolicyResource):
    d = context.partition_key
    wh = warehouse.get()
    fc_versions = wh.read("demand_forecast", d)["model_version"].unique()
    planner = wh.read("raw_planner_decisions", d) if wh.exists("raw_planner_decisions", d) else None
    log = build_decision_log(
        orders=wh.read("replenishment_orders", d),
        transfers=wh.read("rebalancing_transfers", d),
        prices=wh.read("price_recommendations", d),
        plan_date=d,
        policy=policy.load(),
        model_version=str(fc_versions[0]) if len(fc_versions) else "none",
        planner=planner,
    )
    if planner is not None and len(planner):
        unknown = sorted(set(planner["decision_id"]) - set(log["decision_id"]))
        if unknown:
            context.log.warning(f"planner file names {len(unknown)} unknown decision id(s): {unknown[:10]}")
    wh.write("decision_log", log, d)
    return dg.MaterializeResult(
        metadata={"dagster/row_count": len(log), "by_status": log["status"].value_counts().to_dict(),
                  "by_type": log["decision_type"].value_counts().to_dict(), "preview": preview(log.drop(columns=["explanation"]))},
        check_results=[contract_check("output_contract", DecisionLog, log)],
    )
