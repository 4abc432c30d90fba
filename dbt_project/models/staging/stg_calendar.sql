-- one row per calendar event (contract v1.1): several events on a date are several rows; `region`
-- is null for a chain-wide event and names the locations' region otherwise (M5: a state's SNAP
-- days). A landed row with an empty event is a day without one: kept in raw_calendar, not staged.
-- A v1 calendar has no region column: the empty typed select adds it (union by name).
with src as (
    select * from {{ source('raw', 'calendar') }}
    union all by name
    select cast(null as date) as date, cast(null as varchar) as event, cast(null as varchar) as region
    where false
)
select cast(date as date) as date, cast(event as varchar) as event, nullif(cast(region as varchar), '') as region
from src
where event is not null and cast(event as varchar) <> ''
