"""The Dagster code location: every stage's shell module, merged."""

import os

import dagster as dg

from .config import settings

# dbt (a subprocess) reads the warehouse folder from the environment, as the assets do
os.environ.setdefault("INVENTORY_PIPELINE_WAREHOUSE_DIR", str(settings().warehouse_dir))

from .defs import (dbt, decisions, evaluation, forecasting, ingestion, jobs, ledger, outbox, pricing,  # noqa: E402
                   rebalancing, replenishment, sensors)
from .defs.resources import default_resources  # noqa: E402

defs = dg.Definitions(
    assets=[
        *ingestion.landing_assets,
        dbt.warehouse_models,
        forecasting.demand_forecast,
        pricing.price_recommendations,
        replenishment.replenishment_orders,
        rebalancing.rebalancing_transfers,
        ledger.inventory_reconciliation,
        decisions.decision_log,
        decisions.review_queue,
        outbox.erp_outbox,
        evaluation.policy_evaluation,
    ],
    jobs=[jobs.ingest_master_job, jobs.ingest_daily_job, jobs.plan_job, jobs.review_planner_job, jobs.publish_job,
          evaluation.evaluate_policy_job],
    sensors=sensors.sensors,
    resources={**default_resources(), "dbt": dbt.dbt_resource()},
)
