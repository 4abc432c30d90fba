select
    cast(location_id as varchar) as location_id,
    cast(location_type as varchar) as location_type,
    cast(region as varchar) as region,
    nullif(cast(supplying_dc_id as varchar), '') as supplying_dc_id,
    cast(capacity_units as double) as capacity_units
from {{ source('raw', 'locations') }}
