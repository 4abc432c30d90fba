"""price_recommendations asset: calls core.pricing on the forecast; the price-adjusted demand
multiplier it writes is what replenishment plans against."""

import dagster as dg
import pandas as pd

from ..contracts.outputs import PriceRecommendations
from ..core.pricing import PRICING_HISTORY_DAYS, recommend_prices
from ._common import contract_check, contract_spec, model_key, preview
from .forecasting import demand_forecast
from .partitions import daily_partitions
from .resources import WarehouseResource


@dg.asset(
    partitions_def=daily_partitions,
    group_name="decisions",
    deps=[demand_forecast, model_key("fct_daily_demand"), model_key("dim_products")],
    check_specs=[contract_spec("price_recommendations", PriceRecommendations)],
    kinds={"cvxpy"},
    description="Recommended price per store x SKU with expected units and margin (first version holds prices).",
)
def price_recommendations(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    d = context.partition_key
    wh = warehouse.get()
    fc = wh.read("demand_forecast", d)
    start = (pd.Timestamp(d) - pd.Timedelta(days=PRICING_HISTORY_DAYS)).date().isoformat()
    history = wh.read_model(
        "select location_id, sku_id, date, unit_price, price_observed, on_promo from marts.fct_daily_demand "
        "where date <= cast(? as date) and date > cast(? as date) order by location_id, sku_id, date", [d, start])
    products = wh.read_model("select * from marts.dim_products")
    recs = recommend_prices(fc, history, products, d)
    wh.write("price_recommendations", recs, d)
    changed = int((recs["recommended_price"].round(2) != recs["current_price"].round(2)).sum())
    return dg.MaterializeResult(
        metadata={"dagster/row_count": len(recs), "price_changes": changed,
                  "expected_margin_14d": round(float(recs["expected_margin_recommended"].sum()), 2),
                  "preview": preview(recs)},
        check_results=[contract_check("output_contract", PriceRecommendations, recs)],
    )
