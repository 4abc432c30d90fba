select
    cast(sku_id as varchar) as sku_id,
    cast(category as varchar) as category,
    cast(supplier_id as varchar) as supplier_id,
    cast(unit_cost as double) as unit_cost,
    cast(base_price as double) as base_price,
    cast(case_pack as integer) as case_pack,
    cast(min_order_qty as integer) as min_order_qty
from {{ source('raw', 'products') }}
