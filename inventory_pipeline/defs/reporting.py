"""Reporting shell: the operations summaries behind the planners' dashboards (core/reporting.py),
written once per plan date so the console's first visit reads a few hundred rows instead of
scanning the marts. Nothing downstream reads them: a failure here never holds a plan back.

    dashboard_stock_posture/<plan date>/      stores' stockout and fill rate, per day, 56 days
    dashboard_inventory/<plan date>/          stock, value and weeks of supply by location and category
    dashboard_supplier_otif/<plan date>/      purchase orders due: on time, in full, both, per supplier
    dashboard_forecast_accuracy/<plan date>/  the last 8 plans' forecasts against what sold, per class
"""

import dagster as dg
import pandas as pd

from ..core import reporting
from ._common import model_key, operational, preview
from .partitions import daily_partitions
from .resources import WarehouseResource

_DEPS = {
    "dashboard_stock_posture": [model_key("fct_daily_demand")],
    "dashboard_inventory": [model_key(m) for m in ("fct_inventory_positions", "fct_daily_demand", "dim_products")],
    "dashboard_supplier_otif": [model_key("stg_open_orders"), model_key("stg_receipts")],
    "dashboard_forecast_accuracy": ["demand_forecast", model_key("fct_daily_demand")],
}
_WHAT = {
    "dashboard_stock_posture": "Stores' stockout rate and fill rate against estimated demand, per day over the "
    "56 days to the plan date (the console's stock posture chart).",
    "dashboard_inventory": "Stock on hand, its value at unit cost and weeks of supply, by location and category, "
    "on the plan date.",
    "dashboard_supplier_otif": "Purchase orders due by the plan date, per supplier: on time, in full, both (OTIF).",
    "dashboard_forecast_accuracy": "Realised accuracy: the last 8 plans' forecasts (first 14 days) against what "
    "sold by the plan date, WAPE and bias per demand class.",
}


def _headline(table: str, frame: pd.DataFrame) -> dict:
    """The numbers worth a line in the Dagster UI's metadata plots, per summary."""
    if not len(frame):
        return {}
    if table == "dashboard_stock_posture":
        last = frame.iloc[-1]
        return {"stockout_rate": float(last["stockout_rate"]), "fill_rate": float(last["fill_rate"])}
    if table == "dashboard_inventory":
        return {"inventory_value": round(float(frame["value"].sum()), 2)}
    if table == "dashboard_supplier_otif":
        return {"otif": round(float((frame["otif"] * frame["orders"]).sum() / frame["orders"].sum()), 4)}
    overall = frame.set_index("demand_class").loc["all"]
    return {"wape": float(overall["wape"]), "bias": float(overall["bias"])}


@dg.multi_asset(
    name="dashboard_summaries",
    partitions_def=daily_partitions,
    specs=[
        dg.AssetSpec(t, group_name="reporting", deps=deps, description=_WHAT[t], skippable=True)
        for t, deps in _DEPS.items()
    ],
    can_subset=True,
)
@operational
def dashboard_summaries(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    d, wh = context.partition_key, warehouse.get()
    results = []
    for table, compute in reporting.SUMMARIES.items():
        if dg.AssetKey(table) not in context.selected_asset_keys:
            continue
        frame = compute(wh, as_of=d)
        wh.write(table, frame, d)
        meta = {"dagster/row_count": len(frame), "preview": preview(frame, 20), **_headline(table, frame)}
        results.append(dg.MaterializeResult(asset_key=table, metadata=meta))
    return results
