-- one row per day of data, with the calendar's events (several events on a day are joined)
with days as (
    select distinct date from {{ ref('stg_inventory') }}
    union
    select distinct date from {{ ref('stg_pos_sales') }}
)
select
    d.date,
    dayofweek(d.date) as day_of_week,
    dayofyear(d.date) as day_of_year,
    string_agg(c.event, ',' order by c.event) as events,
    count(c.event) > 0 as is_event
from days d
left join {{ ref('stg_calendar') }} c on c.date = d.date
group by d.date
