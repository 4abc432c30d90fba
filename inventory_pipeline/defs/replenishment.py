"""replenishment_orders asset: calls core.replenishment with the price-adjusted forecast."""

import dagster as dg

from ..contracts.outputs import ReplenishmentOrders
from ..core.replenishment import plan_replenishment
from ._common import contract_check, contract_spec, model_key, preview
from .forecasting import demand_forecast
from .partitions import daily_partitions
from .pricing import price_recommendations
from .resources import PolicyResource, WarehouseResource


@dg.asset(
    partitions_def=daily_partitions,
    group_name="decisions",
    deps=[demand_forecast, price_recommendations, model_key("fct_inventory_positions"),
          model_key("dim_products"), model_key("dim_locations")],
    check_specs=[contract_spec("replenishment_orders", ReplenishmentOrders)],
    kinds={"scipy"},
    description="Supplier->DC purchase orders and DC->store replenishments (order-up-to from the forecast).",
)
def replenishment_orders(context: dg.AssetExecutionContext, warehouse: WarehouseResource, policy: PolicyResource):
    d = context.partition_key
    wh = warehouse.get()
    pol = policy.load()
    orders = plan_replenishment(
        forecast=wh.read("demand_forecast", d),
        prices=wh.read("price_recommendations", d),
        positions=wh.read_model("select * from marts.fct_inventory_positions where date = cast(? as date)", [d]),
        products=wh.read_model("select * from marts.dim_products"),
        locations=wh.read_model("select * from marts.dim_locations"),
        plan_date=d,
        service_level=pol.replenishment.service_level,
        review_period_days=pol.replenishment.review_period_days,
    )
    wh.write("replenishment_orders", orders, d)
    by_type = orders.groupby("decision_type").agg(lines=("units", "size"), units=("units", "sum"), value=("order_value", "sum"))
    return dg.MaterializeResult(
        metadata={"dagster/row_count": len(orders), "by_type": dg.MetadataValue.md(by_type.round(2).to_markdown()),
                  "binding_constraints": orders["binding_constraint"].value_counts().to_dict(),
                  "preview": preview(orders.drop(columns=["rationale"]))},
        check_results=[contract_check("output_contract", ReplenishmentOrders, orders)],
    )
