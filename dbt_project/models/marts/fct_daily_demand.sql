-- One row per store, SKU and day the item was carried (or sold). Sales are censored by stock:
-- a day that ends with zero on hand may have lost sales (is_stockout), and the forecast must
-- learn demand, not only sales.
--
-- Incremental by date (core/increments.py decides): a build rebuilds the dates from
-- env var INVENTORY_PIPELINE_DBT_REBUILD_FROM on, the first landing day that is new or changed; each date's rows come
-- from that date's files only, so the other dates stay as they are. `--full-refresh` rebuilds all.
{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='date',
          on_schema_change='fail') }}
with inv as (
    select i.date, i.location_id, i.sku_id, i.on_hand
    from {{ ref('stg_inventory') }} i
    join {{ ref('stg_locations') }} l on l.location_id = i.location_id and l.location_type = 'store'
    {% if is_incremental() %}where i.date >= '{{ env_var("INVENTORY_PIPELINE_DBT_REBUILD_FROM", "0001-01-01") }}'::date{% endif %}
),
pos as (
    select date, location_id, sku_id, units_sold, unit_price, on_promo
    from {{ ref('stg_pos_sales') }}
    {% if is_incremental() %}where date >= '{{ env_var("INVENTORY_PIPELINE_DBT_REBUILD_FROM", "0001-01-01") }}'::date{% endif %}
),
grid as (
    select
        coalesce(inv.date, pos.date) as date,
        coalesce(inv.location_id, pos.location_id) as location_id,
        coalesce(inv.sku_id, pos.sku_id) as sku_id,
        coalesce(pos.units_sold, 0) as units_sold,
        pos.unit_price as observed_price,
        coalesce(pos.on_promo, 0) as on_promo,
        inv.on_hand
    from inv
    full outer join pos using (date, location_id, sku_id)
)
select
    g.date || '|' || g.location_id || '|' || g.sku_id as demand_key,
    g.date,
    g.location_id,
    g.sku_id,
    g.units_sold,
    -- the shelf price: observed when the item sold, else the product's base price
    coalesce(g.observed_price, p.base_price) as unit_price,
    g.observed_price is not null as price_observed,
    g.on_promo,
    g.on_hand,
    coalesce(g.on_hand = 0, false) as is_stockout,
    coalesce(dd.is_event, false) as is_event
from grid g
left join {{ ref('stg_products') }} p using (sku_id)
left join {{ ref('dim_date') }} dd using (date)
