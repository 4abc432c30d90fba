-- daily/D/promotions.csv (contract v1.1): the promotion plan merchandising knows at the close of
-- D, one row per promotion line; file_date = D. A plan for D reads the latest file dated <= D
-- (marts.fct_promotion_plan; core/promotions.py `promotion_plan` in Python). Optional columns a
-- file does not have (display, location_id, category or sku_id) come from the empty typed select;
-- a landing zone that never had the file (v1) stages no rows.
{%- set files = raw_files('raw_promotions') %}
{%- set landed = raw_files_landed('raw_promotions') %}
with src as (
    {%- if landed %}
    select * from {{ source('raw', 'promotions') }}
    union all by name
    {%- endif %}
    select
        cast(null as varchar) as landing_date, cast(null as varchar) as promo_id, cast(null as varchar) as sku_id,
        cast(null as varchar) as category, cast(null as varchar) as location_id, cast(null as date) as start_date,
        cast(null as date) as end_date, cast(null as double) as discount_pct, cast(null as bigint) as display
    where false
)
select
    cast(landing_date as date) as file_date,
    cast(promo_id as varchar) as promo_id,
    nullif(cast(sku_id as varchar), '') as sku_id,
    nullif(cast(category as varchar), '') as category,
    nullif(cast(location_id as varchar), '') as location_id,  -- null = every store
    cast(start_date as date) as start_date,
    cast(end_date as date) as end_date,
    cast(discount_pct as double) as discount_pct,
    coalesce(cast(display as integer), 0) as display
from src
