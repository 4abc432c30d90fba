-- stores carry the lead time of the lane from their supplying DC (1 day when no lane is given)
select
    l.location_id, l.location_type, l.region, l.supplying_dc_id, l.capacity_units,
    coalesce(ln.lead_time_days, case when l.location_type = 'store' then 1 end) as replenishment_lead_time_days,
    ln.cost_per_unit as replenishment_cost_per_unit
from {{ ref('stg_locations') }} l
left join {{ ref('stg_lanes') }} ln
    on ln.from_location_id = l.supplying_dc_id and ln.to_location_id = l.location_id
