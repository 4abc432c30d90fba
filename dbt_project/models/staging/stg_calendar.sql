select cast(date as date) as date, cast(event as varchar) as event
from {{ source('raw', 'calendar') }}
