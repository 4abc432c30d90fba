select
    cast(date as date) as date,
    cast(location_id as varchar) as location_id,
    cast(sku_id as varchar) as sku_id,
    cast(on_hand as bigint) as on_hand
from {{ source('raw', 'inventory') }}
