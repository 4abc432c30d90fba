select
    cast(date as date) as date,
    cast(location_id as varchar) as location_id,
    cast(sku_id as varchar) as sku_id,
    cast(units_sold as bigint) as units_sold,
    cast(unit_price as double) as unit_price,
    cast(on_promo as integer) as on_promo
from {{ source('raw', 'pos_sales') }}
