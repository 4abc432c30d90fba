"""rebalancing_transfers asset: calls core.rebalancing (no transfers proposed yet, and says so)."""

import dagster as dg

from ..core.rebalancing import STATUS, plan_transfers
from ._common import model_key
from .forecasting import demand_forecast
from .partitions import daily_partitions
from .replenishment import replenishment_orders
from .resources import WarehouseResource


@dg.asset(
    partitions_def=daily_partitions,
    group_name="decisions",
    deps=[replenishment_orders, demand_forecast, model_key("fct_inventory_positions"), model_key("dim_locations"),
          model_key("dim_products"), model_key("stg_lanes")],
    kinds={"cvxpy"},
    description=f"Store<->store transfers. Status: {STATUS}.",
)
def rebalancing_transfers(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    d = context.partition_key
    wh = warehouse.get()
    transfers = plan_transfers(
        forecast=wh.read("demand_forecast", d),
        positions=wh.read_model("select * from marts.fct_inventory_positions where date = cast(? as date)", [d]),
        locations=wh.read_model("select * from marts.dim_locations"),
        lanes=wh.read_model("select * from staging.stg_lanes"),
        products=wh.read_model("select * from marts.dim_products"),
        plan_date=d,
    )
    wh.write("rebalancing_transfers", transfers, d)
    context.log.warning(f"rebalancing_transfers: {STATUS}")
    return dg.MaterializeResult(metadata={"dagster/row_count": len(transfers), "status": STATUS})
