"""Jobs a user launches from the UI or the CLI."""

import dagster as dg

from ._common import model_key
from .partitions import daily_partitions

# landing master files (unpartitioned)
ingest_master_job = dg.define_asset_job(
    "ingest_master", selection=dg.AssetSelection.groups("landing") - dg.AssetSelection.assets(
        "raw_pos_sales", "raw_inventory", "raw_receipts", "raw_open_orders", "raw_planner_decisions"))
# daily landing files; a partition range runs as one run (single-run backfill policy)
ingest_daily_job = dg.define_asset_job(
    "ingest_daily", partitions_def=daily_partitions,
    selection=dg.AssetSelection.assets("raw_pos_sales", "raw_inventory", "raw_receipts", "raw_open_orders", "raw_planner_decisions"))
# dbt marts, then every decision stage for one plan date, ending in the ERP outbox; the observed
# lead times (fct_order_lead_times) are built every plan too, whether or not a stage reads them yet
plan_job = dg.define_asset_job(
    "daily_plan", partitions_def=daily_partitions,
    selection=(dg.AssetSelection.groups("decisions", "governance") | dg.AssetSelection.assets("erp_outbox").upstream(depth=6)
               | dg.AssetSelection.assets(model_key("fct_order_lead_times")).upstream()) - dg.AssetSelection.groups("landing"))
# a planner file: ingest it (the sensors then republish the plans it answers)
review_planner_job = dg.define_asset_job(
    "review_planner", partitions_def=daily_partitions, selection=dg.AssetSelection.assets("raw_planner_decisions"))
# a plan's decisions after planner answers: replay the events, refresh the queue, rewrite the outbox
publish_job = dg.define_asset_job(
    "publish_decisions", partitions_def=daily_partitions,
    selection=dg.AssetSelection.assets("decision_log", "review_queue", "erp_outbox"))
