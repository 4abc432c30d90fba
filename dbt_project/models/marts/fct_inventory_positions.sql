-- End-of-day on hand and open orders (inventory position) per location, SKU and day.
with oo as (
    select snapshot_date as date, location_id, sku_id, sum(units) as on_order, min(expected_date) as next_expected_date
    from {{ ref('stg_open_orders') }}
    group by 1, 2, 3
)
select
    i.date, i.location_id, i.sku_id, i.on_hand,
    coalesce(oo.on_order, 0) as on_order,
    i.on_hand + coalesce(oo.on_order, 0) as inventory_position,
    oo.next_expected_date
from {{ ref('stg_inventory') }} i
left join oo using (date, location_id, sku_id)
