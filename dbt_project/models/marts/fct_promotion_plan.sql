-- the promotion plan known at each plan date (point in time, contract v1.1): the rows of the latest
-- promotions.csv dated on or before the plan date; a day without a file keeps the previous plan,
-- a later file changes or cancels a promotion. One row per plan date x promotion line.
with days as (
    select date as plan_date from {{ ref('dim_date') }}
),
latest as (
    select d.plan_date, max(f.file_date) as file_date
    from days d
    join {{ ref('stg_promotion_files') }} f on f.file_date <= d.plan_date
    group by d.plan_date
)
select
    l.plan_date, l.file_date, p.promo_id, p.sku_id, p.category, p.location_id, p.start_date, p.end_date,
    p.discount_pct, p.display
from latest l
join {{ ref('stg_promotions') }} p on p.file_date = l.file_date
