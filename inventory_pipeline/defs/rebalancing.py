"""rebalancing_transfers asset: calls core.rebalancing (no transfers proposed yet, and says so)."""

import dagster as dg

from ..core.rebalancing import STATUS, plan_transfers
from .partitions import daily_partitions
from .replenishment import replenishment_orders
from .resources import WarehouseResource


@dg.asset(
    partitions_def=daily_partitions,
    group_name="decisions",
    deps=[replenishment_orders],
    kinds={"cvxpy"},
    description=f"Store<->store transfers. Status: {STATUS}.",
)
def rebalancing_transfers(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    d = context.partition_key
    transfers = plan_transfers()
    warehouse.get().write("rebalancing_transfers", transfers, d)
    context.log.warning(f"rebalancing_transfers: {STATUS}")
    return dg.MaterializeResult(metadata={"dagster/row_count": len(transfers), "status": STATUS})
