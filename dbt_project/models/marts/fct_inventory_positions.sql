-- End-of-day on hand and open orders (inventory position) per location, SKU and day.
-- Incremental by date, as fct_daily_demand (core/increments.py).
{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='date',
          on_schema_change='fail') }}
with oo as (
    select snapshot_date as date, location_id, sku_id, sum(units) as on_order, min(expected_date) as next_expected_date
    from {{ ref('stg_open_orders') }}
    {% if is_incremental() %}where snapshot_date >= '{{ env_var("INVENTORY_PIPELINE_DBT_REBUILD_FROM", "0001-01-01") }}'::date{% endif %}
    group by 1, 2, 3
)
select
    i.date, i.location_id, i.sku_id, i.on_hand,
    coalesce(oo.on_order, 0) as on_order,
    i.on_hand + coalesce(oo.on_order, 0) as inventory_position,
    oo.next_expected_date
from {{ ref('stg_inventory') }} i
left join oo using (date, location_id, sku_id)
{% if is_incremental() %}where i.date >= '{{ env_var("INVENTORY_PIPELINE_DBT_REBUILD_FROM", "0001-01-01") }}'::date{% endif %}
