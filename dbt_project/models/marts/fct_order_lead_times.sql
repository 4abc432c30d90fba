-- Observed lead times: one row per order line received at least partly, from the ERP's open-order
-- snapshots (what was ordered, when, from whom, and when it was expected) and the receipts (when
-- it arrived and how much). What the replenishment stage estimates each supplier's lead-time mean
-- and spread from, beside the supplier master's.
--
-- Only orders that appear in an open-order snapshot are kept: open_orders.csv of day D lists the
-- orders still open at the end of D (after that day's orders), so every order placed on a
-- landing day, and every order still open at the end of the first landing day, has a row. Left
-- out: receipts of orders closed before the landing zone starts (received on its first day,
-- ordered before it: their order date is unknown) and launch fills (order ids `LAUNCH-<sku>`,
-- one id shared by every location receiving the planogram fill: not orders, never in the ERP
-- book). Receipt lines of zero units are not receipts. Order header fields come from the order's
-- latest snapshot (the ERP's last word before the receipt).
with orders as (
    select order_id, order_date, source_id, location_id, sku_id, units as units_ordered, expected_date
    from {{ ref('stg_open_orders') }}
    qualify row_number() over (partition by order_id, location_id, sku_id order by snapshot_date desc) = 1
),
received as (
    select order_id, location_id, sku_id, min(date) as received_date, sum(units_received) as units_received
    from {{ ref('stg_receipts') }}
    where units_received > 0
    group by order_id, location_id, sku_id
)
select
    o.order_id,
    o.source_id,
    o.location_id,
    o.sku_id,
    o.order_date,
    o.expected_date,
    r.received_date,
    o.units_ordered,
    cast(r.units_received as bigint) as units_received,
    cast(date_diff('day', o.order_date, r.received_date) as bigint) as lead_time_days,
    cast(date_diff('day', o.expected_date, r.received_date) as bigint) as lead_time_delay_days,
    case
        when s.supplier_id is not null then 'supplier'
        when l.location_type = 'dc' then 'store_replenishment'
        when l.location_type = 'store' then 'transfer'
    end as order_type
from orders o
join received r using (order_id, location_id, sku_id)
left join {{ ref('stg_suppliers') }} s on s.supplier_id = o.source_id
left join {{ ref('stg_locations') }} l on l.location_id = o.source_id
