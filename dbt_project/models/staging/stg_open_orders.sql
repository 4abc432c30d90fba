-- open_orders.csv of day D is the ERP's snapshot of orders still open at the end of D
select
    cast(landing_date as date) as snapshot_date,
    cast(order_id as varchar) as order_id,
    cast(order_date as date) as order_date,
    cast(source_id as varchar) as source_id,
    cast(location_id as varchar) as location_id,
    cast(sku_id as varchar) as sku_id,
    cast(units as bigint) as units,
    cast(expected_date as date) as expected_date
from {{ source('raw', 'open_orders') }}
