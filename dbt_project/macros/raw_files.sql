{#- The Parquet files of an optional raw table (landing contract v1.1: a landing zone may never
    have had the file): its glob under the warehouse, and whether any file is there yet. At parse
    time (not `execute`) the answer is true, so the model's SQL is complete for the manifest. -#}
{% macro raw_files(table) -%}
{{ env_var('INVENTORY_PIPELINE_WAREHOUSE_DIR', '../data/warehouse') ~ '/' ~ table ~ '/**/*.parquet' }}
{%- endmacro %}

{% macro raw_files_landed(table) -%}
{%- if execute -%}
{{ return(run_query("select count(*) from glob('" ~ raw_files(table) ~ "')").columns[0].values()[0] > 0) }}
{%- else -%}
{{ return(true) }}
{%- endif -%}
{%- endmacro %}
