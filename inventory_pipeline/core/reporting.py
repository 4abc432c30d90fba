"""The operations summaries behind the planners' dashboards, as of a day: plain SQL over the dbt
marts (the DuckDB file, read-only) and the forecasts' Parquet partitions.

The pipeline computes them once per plan (defs/reporting.py, the `dashboard_*` assets) so a
dashboard reads a few hundred rows instead of scanning the marts at M5 scale; the console computes
them live only for a warehouse whose newest plan has none yet.

- `stock_posture`: per day, the stores' stockout rate (store x SKU days ending at zero stock) and
  fill rate against estimated demand: on a stock-out day demand is at least the sales and at least
  the mean of the item's last 28 clean days (sales are censored by stock).
- `inventory_by_location`: the day's stock per location and category, its value at unit cost and
  its weeks of supply at the last 28 days' sales (a DC's: its stores' sales).
- `supplier_otif`: purchase orders due by the day, per supplier: on time (first receipt by the
  first promised date), in full (units received >= units ordered), both.
- `forecast_accuracy`: the last plans' forecasts against what then sold, per demand class: WAPE and
  bias over the first `horizon` days of each forecast, on the days already observed.

`as_of` None means the newest day in the marts; a date computes what the day's plan saw (a
backfilled plan date reads nothing after it).
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from .warehouse import Warehouse

CLEAN_DAYS = 28  # the window whose clean days estimate a stock-out day's demand
SUPPLY_DAYS = 28  # the sales window behind weeks of supply
POSTURE_DAYS = 56  # days of stock posture a summary holds
ACCURACY_PLANS = 8  # the latest plans whose forecasts are scored
ACCURACY_HORIZON = 14  # the first days of each forecast that are scored
ACCURACY_COLUMNS = ["demand_class", "days", "actual", "wape", "bias"]


def _day(as_of) -> dt.date | None:
    return None if as_of is None else pd.Timestamp(as_of).date()


def stock_posture(wh: Warehouse, days: int = POSTURE_DAYS, as_of=None) -> pd.DataFrame:
    return wh.read_model(
        f"""
        with last as (select least(max(date), coalesce(?::date, max(date))) as d from marts.fct_daily_demand),
        s as (
            select date, location_id, sku_id, units_sold, is_stockout,
                   avg(case when not is_stockout then units_sold end) over (
                       partition by location_id, sku_id order by date
                       rows between {CLEAN_DAYS} preceding and 1 preceding) as clean_mean
            from marts.fct_daily_demand, last
            where date > last.d - interval {days + CLEAN_DAYS} day and date <= last.d
        )
        select date,
               avg(case when is_stockout then 1.0 else 0.0 end) as stockout_rate,
               sum(units_sold) / nullif(sum(case when is_stockout
                   then greatest(units_sold, coalesce(clean_mean, units_sold)) else units_sold end), 0) as fill_rate
        from s, last
        where date > last.d - interval {days} day
        group by date order by date
        """,
        [_day(as_of)],
    )


def inventory_by_location(wh: Warehouse, as_of=None) -> pd.DataFrame:
    return wh.read_model(
        f"""
        with last as (select least(max(date), coalesce(?::date, max(date))) as d from marts.fct_inventory_positions),
        stock as (
            select p.location_id, pr.category, sum(p.on_hand) as on_hand, sum(p.on_hand * pr.unit_cost) as value
            from marts.fct_inventory_positions p join marts.dim_products pr using (sku_id), last
            where p.date = last.d group by 1, 2
        ),
        sold as (  -- a store's sales, and each DC's: its stores'
            select coalesce(l.location_type, 'store') as kind, d.location_id, l.supplying_dc_id, pr.category,
                   sum(d.units_sold) / {SUPPLY_DAYS}.0 as daily
            from marts.fct_daily_demand d join marts.dim_products pr using (sku_id)
            left join marts.dim_locations l using (location_id), last
            where d.date > last.d - interval {SUPPLY_DAYS} day and d.date <= last.d group by 1, 2, 3, 4
        ),
        rate as (
            select location_id, category, sum(daily) as daily from sold group by 1, 2
            union all
            select supplying_dc_id, category, sum(daily) from sold where supplying_dc_id is not null group by 1, 2
        )
        select s.location_id, s.category, s.on_hand, round(s.value, 2) as value,
               round(s.on_hand / nullif(7 * r.daily, 0), 1) as weeks_of_supply
        from stock s left join rate r using (location_id, category)
        order by s.location_id, s.category
        """,
        [_day(as_of)],
    )


def supplier_otif(wh: Warehouse, as_of=None) -> pd.DataFrame:
    return wh.read_model(
        """
        with last as (select least(max(date), coalesce(?::date, max(date))) as d from staging.stg_receipts),
        orders as (  -- the first snapshot of each order: what was ordered and first promised
            select order_id, arg_min(source_id, snapshot_date) as supplier_id, arg_min(units, snapshot_date) as units,
                   arg_min(expected_date, snapshot_date) as promised
            from staging.stg_open_orders, last where order_id like 'PO%' and snapshot_date <= last.d group by order_id
        ),
        got as (select order_id, min(date) as first_receipt, sum(units_received) as received
                from staging.stg_receipts, last where date <= last.d group by order_id)
        select supplier_id, count(*) as orders,
               avg(case when first_receipt <= promised then 1.0 else 0.0 end) as on_time,
               avg(case when coalesce(received, 0) >= units then 1.0 else 0.0 end) as in_full,
               avg(case when first_receipt <= promised and received >= units then 1.0 else 0.0 end) as otif
        from orders left join got using (order_id), last
        where promised <= last.d
        group by supplier_id order by supplier_id
        """,
        [_day(as_of)],
    )


def forecast_accuracy(
    wh: Warehouse, plans: int = ACCURACY_PLANS, horizon: int = ACCURACY_HORIZON, as_of=None
) -> pd.DataFrame:
    """One DuckDB query over the forecasts' Parquet files (only the columns and horizons scored
    are read) joined to the sales mart; a plan's own forecast is scored by later plans."""
    days = [d for d in wh.partitions("demand_forecast") if as_of is None or d <= str(_day(as_of))][-plans:]
    if not days:
        return pd.DataFrame(columns=ACCURACY_COLUMNS)
    files = [str(wh.path("demand_forecast", d)) for d in days]
    by_class = wh.read_model(
        """
        with f as (
            select location_id, sku_id, cast(date as date) as date, "mean", demand_class
            from read_parquet(?, union_by_name = true) where horizon <= ?
        ),
        m as (
            select f.demand_class, f.date, f."mean" - a.units_sold as err, a.units_sold
            from f join marts.fct_daily_demand a using (location_id, sku_id, date)
            where a.date >= ?::date and a.date <= coalesce(?::date, a.date)
        )
        select demand_class, count(*) as days, sum(units_sold) as actual, sum(abs(err)) as abs_err, sum(err) as err
        from m group by demand_class order by demand_class
        """,
        [files, horizon, days[0], _day(as_of)],
    )
    if not len(by_class):  # no forecast day observed yet
        return pd.DataFrame(columns=ACCURACY_COLUMNS)
    out = by_class.set_index("demand_class")
    out = pd.concat([out, out.sum().to_frame("all").T])
    out["wape"] = (out["abs_err"] / out["actual"]).round(4)
    out["bias"] = (out["err"] / out["actual"]).round(4)
    out["days"] = out["days"].astype("int64")
    return out.drop(columns=["abs_err", "err"]).rename_axis("demand_class").reset_index()


SUMMARIES = {
    "dashboard_stock_posture": stock_posture,
    "dashboard_inventory": inventory_by_location,
    "dashboard_supplier_otif": supplier_otif,
    "dashboard_forecast_accuracy": forecast_accuracy,
}  # the warehouse table each summary is written to, per plan date
