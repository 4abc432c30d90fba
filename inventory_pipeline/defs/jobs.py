"""Jobs a user launches from the UI or the CLI, or that the schedule and sensors launch.

Every job carries the tag `inventory_pipeline/warehouse: writer`; the instance's run queue
(dagster.yaml `tag_concurrency_limits`, see deploy/dagster.yaml) runs one such run at a time, so a
backfill of many plan dates never has two runs writing the DuckDB file at once.
"""

import dagster as dg

from ..core.stages import PLAN_ASSETS
from ._common import model_key

WAREHOUSE_TAG = {"inventory_pipeline/warehouse": "writer"}
DAILY_RAW = ("raw_pos_sales", "raw_inventory", "raw_receipts", "raw_open_orders")
OPTIONAL_DAILY_RAW = ("raw_promotions",)  # contract v1.1; optional, so no freshness check
_daily_raw = dg.AssetSelection.assets(*DAILY_RAW, *OPTIONAL_DAILY_RAW)
_planner = dg.AssetSelection.assets("raw_planner_decisions")
# the assets whose newest partition has a freshness check (defs/schedules.py). Those checks judge
# the clock, not the data, and run in the freshness sensor's own runs; a materialisation job that
# executed them would report every backfilled or historical plan date as stale, so no job here
# selects them
FRESHNESS_ASSETS = (*DAILY_RAW, *PLAN_ASSETS)
FRESHNESS_CHECK = "freshness_check"  # the check name Dagster's builder gives
_freshness = dg.AssetSelection.checks(*(dg.AssetCheckKey(dg.AssetKey(a), FRESHNESS_CHECK) for a in FRESHNESS_ASSETS))
# (the partitioning of each job is inferred from its assets: the shared daily partitions)

# landing master files (unpartitioned)
ingest_master_job = dg.define_asset_job(
    "ingest_master",
    selection=dg.AssetSelection.groups("landing") - _daily_raw - _planner - _freshness,
    tags=WAREHOUSE_TAG,
)
# daily landing files; a partition range runs as one run (single-run backfill policy)
ingest_daily_job = dg.define_asset_job(
    "ingest_daily", selection=(_daily_raw | _planner) - _freshness, tags=WAREHOUSE_TAG
)
# dbt marts, then every decision stage for one plan date, ending in the ERP outbox, and the dashboards'
# summaries; the observed lead times (fct_order_lead_times) are built every plan too, whether or not a
# stage reads them yet
_plan = (
    dg.AssetSelection.groups("decisions", "governance", "reporting")
    | dg.AssetSelection.assets("erp_outbox").upstream(depth=6)
    | dg.AssetSelection.assets(model_key("fct_order_lead_times")).upstream()
) - dg.AssetSelection.groups("landing")
plan_job = dg.define_asset_job("daily_plan", selection=_plan - _freshness, tags=WAREHOUSE_TAG)
# what the schedule and the landing sensor run for a new day: that day's files, then its plan.
# It mixes the landing assets' single-run backfill policy with the plan's one-partition runs, so
# Dagster warns at load that it runs one partition per run — which is what it is for; ranges are
# backfilled per stage (docs/operations.md), and that warning is silenced in definitions.py
daily_cycle_job = dg.define_asset_job(
    "daily_cycle",
    selection=(_daily_raw | _plan) - _freshness,
    tags=WAREHOUSE_TAG,
    description="a new landing day: ingest its daily files, then plan it (dbt, forecast, prices, orders, transfers, "
    "decisions, ERP outbox)",
)
# a planner file: ingest it (the sensors then republish the plans it answers)
review_planner_job = dg.define_asset_job("review_planner", selection=_planner - _freshness, tags=WAREHOUSE_TAG)
# a plan's decisions after planner answers: replay the events, refresh the queue, rewrite the outbox
publish_job = dg.define_asset_job(
    "publish_decisions",
    selection=dg.AssetSelection.assets(
        "decision_log", "decision_events", "decision_inputs", "planner_not_applied", "review_queue", "erp_outbox"
    )
    - _freshness,
    tags=WAREHOUSE_TAG,
)


def without_freshness(job: dg.JobDefinition, keys) -> dg.JobDefinition:
    """`job` narrowed to the assets `keys` and their data checks. Dagster's plain
    `asset_selection=` subset adds every check of the selected assets, freshness checks included
    (they are defined on the same assets); those judge the clock and run from their own sensor."""
    keys = set(keys)
    checks = {
        k
        for k in job.get_subset(asset_selection=keys).asset_layer.asset_graph.asset_check_keys
        if k.name != FRESHNESS_CHECK
    }
    return job.get_subset(asset_selection=keys, asset_check_selection=checks)
