select
    cast(from_location_id as varchar) as from_location_id,
    cast(to_location_id as varchar) as to_location_id,
    cast(lead_time_days as double) as lead_time_days,
    cast(cost_per_unit as double) as cost_per_unit
from {{ source('raw', 'lanes') }}
