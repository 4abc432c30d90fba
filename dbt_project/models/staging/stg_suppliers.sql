select
    cast(supplier_id as varchar) as supplier_id,
    cast(lead_time_days as double) as lead_time_days,
    cast(lead_time_std_days as double) as lead_time_std_days
from {{ source('raw', 'suppliers') }}
