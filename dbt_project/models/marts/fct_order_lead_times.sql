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
--
-- Incremental by landing day, as fct_daily_demand (core/increments.py): a build from day R
-- recomputes the order lines seen on or after R (a snapshot or a receipt dated R or later, in the
-- landing files now or in the rows built before, `last_seen_date`), each from all of its
-- snapshots and receipts; the other lines read only days before R, which did not change. A line a
-- corrected file took back (no receipt left) comes out of the batch without a receipt date and
-- the post-hook removes it, so no row outlives the file it came from. `--full-refresh` rebuilds all.
{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='order_id',
          on_schema_change='fail',
          post_hook="delete from {{ this }} where received_date is null") }}
{% set rebuild_from = env_var("INVENTORY_PIPELINE_DBT_REBUILD_FROM", "0001-01-01") %}
with
{% if is_incremental() %}
touched as (
    select order_id from {{ ref('stg_open_orders') }} where snapshot_date >= '{{ rebuild_from }}'::date
    union
    select order_id from {{ ref('stg_receipts') }} where date >= '{{ rebuild_from }}'::date
    union
    select order_id from {{ this }} where last_seen_date >= '{{ rebuild_from }}'::date
),
{% endif %}
snapshots as (
    select * from {{ ref('stg_open_orders') }}
    {% if is_incremental() %}where order_id in (select order_id from touched){% endif %}
),
orders as (
    select order_id, order_date, source_id, location_id, sku_id, units as units_ordered, expected_date
    from snapshots
    qualify row_number() over (partition by order_id, location_id, sku_id order by snapshot_date desc) = 1
),
last_snapshot as (
    select order_id, location_id, sku_id, max(snapshot_date) as snapshot_date from snapshots group by all
),
received as (
    select order_id, location_id, sku_id, min(date) as received_date, max(date) as last_received_date,
           sum(units_received) as units_received
    from {{ ref('stg_receipts') }}
    where units_received > 0
    {% if is_incremental() %}and order_id in (select order_id from touched){% endif %}
    group by order_id, location_id, sku_id
)
select
    order_id,
    o.source_id,
    location_id,
    sku_id,
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
    end as order_type,
    -- the last landing day this row read (its latest snapshot or receipt): what an incremental
    -- build from a later day leaves as it is
    greatest(ls.snapshot_date, r.last_received_date) as last_seen_date
{% if is_incremental() %}
-- every touched line is in the batch, so the delete+insert replaces each of its rows; one that no
-- longer has a snapshot or a receipt has no received_date (the post-hook)
from touched
left join orders o using (order_id)
left join last_snapshot ls using (order_id, location_id, sku_id)
left join received r using (order_id, location_id, sku_id)
{% else %}
from orders o
join last_snapshot ls using (order_id, location_id, sku_id)
join received r using (order_id, location_id, sku_id)
{% endif %}
left join {{ ref('stg_suppliers') }} s on s.supplier_id = o.source_id
left join {{ ref('stg_locations') }} l on l.location_id = o.source_id
