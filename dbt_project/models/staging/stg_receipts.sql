select
    cast(date as date) as date,
    cast(order_id as varchar) as order_id,
    cast(location_id as varchar) as location_id,
    cast(sku_id as varchar) as sku_id,
    cast(units_received as bigint) as units_received
from {{ source('raw', 'receipts') }}
