-- the days that had a promotions.csv: the raw_promotions asset writes raw_promotions_files beside
-- raw_promotions (one row per day with a file, none for a day without). A file with no kept row is
-- an empty plan; a day without a file keeps the previous plan.
-- depends_on: {{ source('raw', 'promotions') }}
{%- set files = raw_files('raw_promotions_files') %}
{%- set landed = raw_files_landed('raw_promotions_files') %}
with src as (
    {%- if landed %}
    select * from read_parquet('{{ files }}', union_by_name=true)
    union all by name
    {%- endif %}
    select cast(null as varchar) as file_date, cast(null as varchar) as file_path, cast(null as bigint) as rows_read
    where false
)
select cast(file_date as date) as file_date, cast(file_path as varchar) as file_path, cast(rows_read as bigint) as rows_read
from src
