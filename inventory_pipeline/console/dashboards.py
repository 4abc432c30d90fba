"""The dashboards' numbers, from the warehouse: the dbt marts and staging views in the DuckDB file
(read-only) and the pipeline's Parquet tables. Plain SQL and pandas; the app draws them.

- `stock_posture`: per day, the stores' stockout rate (store x SKU days ending at zero stock) and
  fill rate against estimated demand: on a stock-out day demand is at least the sales and at least
  the mean of the item's last 28 clean days (sales are censored by stock).
- `inventory_by_location`: the latest stock per location and category, its value at unit cost and
  its weeks of supply at the last 28 days' sales (a DC's: its stores' sales).
- `supplier_otif`: purchase orders due by the latest day, per supplier: on time (first receipt by
  the first promised date), in full (units received >= units ordered), both.
- `forecast_accuracy`: the plans' forecasts against what then sold, per demand class: WAPE and bias
  over the first `horizon` days of each forecast, on the days already observed.
- `run_failures`: the failed runs the run-failure sensor recorded.
- `freshness`: each daily table's newest partition, how far it trails the landing, and its age.
"""

from __future__ import annotations

import pandas as pd

from ..core.warehouse import Warehouse

CLEAN_DAYS = 28  # the window whose clean days estimate a stock-out day's demand
SUPPLY_DAYS = 28  # the sales window behind weeks of supply


def stock_posture(wh: Warehouse, days: int = 56) -> pd.DataFrame:
    return wh.read_model(
        f"""
        with last as (select max(date) as d from marts.fct_daily_demand),
        s as (
            select date, location_id, sku_id, units_sold, is_stockout,
                   avg(case when not is_stockout then units_sold end) over (
                       partition by location_id, sku_id order by date
                       rows between {CLEAN_DAYS} preceding and 1 preceding) as clean_mean
            from marts.fct_daily_demand, last
            where date > last.d - interval {days + CLEAN_DAYS} day
        )
        select date,
               avg(case when is_stockout then 1.0 else 0.0 end) as stockout_rate,
               sum(units_sold) / nullif(sum(case when is_stockout
                   then greatest(units_sold, coalesce(clean_mean, units_sold)) else units_sold end), 0) as fill_rate
        from s, last
        where date > last.d - interval {days} day
        group by date order by date
        """
    )


def inventory_by_location(wh: Warehouse) -> pd.DataFrame:
    return wh.read_model(
        f"""
        with last as (select max(date) as d from marts.fct_inventory_positions),
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
            where d.date > last.d - interval {SUPPLY_DAYS} day group by 1, 2, 3, 4
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
        """
    )


def supplier_otif(wh: Warehouse) -> pd.DataFrame:
    return wh.read_model(
        """
        with last as (select max(date) as d from staging.stg_receipts),
        orders as (  -- the first snapshot of each order: what was ordered and first promised
            select order_id, arg_min(source_id, snapshot_date) as supplier_id, arg_min(units, snapshot_date) as units,
                   arg_min(expected_date, snapshot_date) as promised
            from staging.stg_open_orders where order_id like 'PO%' group by order_id
        ),
        got as (select order_id, min(date) as first_receipt, sum(units_received) as received
                from staging.stg_receipts group by order_id)
        select supplier_id, count(*) as orders,
               avg(case when first_receipt <= promised then 1.0 else 0.0 end) as on_time,
               avg(case when coalesce(received, 0) >= units then 1.0 else 0.0 end) as in_full,
               avg(case when first_receipt <= promised and received >= units then 1.0 else 0.0 end) as otif
        from orders left join got using (order_id), last
        where promised <= last.d
        group by supplier_id order by supplier_id
        """
    )


def forecast_accuracy(wh: Warehouse, plans: int = 8, horizon: int = 14) -> pd.DataFrame:
    days = sorted(wh.partitions("demand_forecast"))[-plans:]
    if not days:
        return pd.DataFrame(columns=["demand_class", "days", "actual", "wape", "bias"])
    f = pd.concat([wh.read("demand_forecast", d) for d in days], ignore_index=True)
    f = f[f["horizon"] <= horizon][["location_id", "sku_id", "date", "mean", "demand_class"]]
    a = wh.read_model(
        "select location_id, sku_id, date, units_sold from marts.fct_daily_demand where date >= ?",
        [pd.Timestamp(days[0]).date()],
    )
    m = f.assign(date=pd.to_datetime(f["date"])).merge(a.assign(date=pd.to_datetime(a["date"])))
    if not len(m):  # no forecast day observed yet
        return pd.DataFrame(columns=["demand_class", "days", "actual", "wape", "bias"])
    g = m.assign(err=m["mean"] - m["units_sold"], abs_err=(m["mean"] - m["units_sold"]).abs())
    out = g.groupby("demand_class").agg(
        days=("date", "size"), actual=("units_sold", "sum"), abs_err=("abs_err", "sum"), err=("err", "sum")
    )
    total = out.sum().to_frame("all").T
    out = pd.concat([out, total])
    out["wape"] = (out["abs_err"] / out["actual"]).round(4)
    out["bias"] = (out["err"] / out["actual"]).round(4)
    return out.drop(columns=["abs_err", "err"]).rename_axis("demand_class").reset_index()


def run_failures(wh: Warehouse) -> pd.DataFrame:
    return wh.read("run_failures") if wh.exists("run_failures") else pd.DataFrame()


FRESHNESS_TABLES = (
    "raw_pos_sales", "raw_inventory", "raw_receipts", "raw_open_orders",
    "demand_forecast", "price_recommendations", "replenishment_orders", "rebalancing_transfers", "decision_log",
)  # fmt: skip


def freshness(wh: Warehouse, now: pd.Timestamp | None = None) -> pd.DataFrame:
    """Per daily table: its newest partition, how many days it trails the newest landing day
    (raw_pos_sales), when that partition was written and how many hours ago. A plan table 1 day
    behind the landing is a plan not made yet (the Dagster UI's freshness checks hold the deadline)."""
    now = now if now is not None else pd.Timestamp.now(tz="UTC")
    rows = []
    for t in FRESHNESS_TABLES:
        parts = wh.partitions(t)
        if parts:
            written = pd.Timestamp(wh.path(t, parts[-1]).stat().st_mtime, unit="s", tz="UTC")
            rows.append({"table": t, "newest_partition": parts[-1], "written_at": written.floor("s")})
    f = pd.DataFrame(rows, columns=["table", "newest_partition", "written_at"])
    if not len(f):
        return f
    landing = f.loc[f["table"] == "raw_pos_sales", "newest_partition"].max()
    newest = pd.to_datetime(f["newest_partition"])
    f["days_behind_landing"] = (pd.Timestamp(landing) - newest).dt.days if isinstance(landing, str) else pd.NA
    f["hours_since_written"] = ((now - f["written_at"]).dt.total_seconds() / 3600).round(1)
    return f
