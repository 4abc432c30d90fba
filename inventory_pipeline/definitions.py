"""The Dagster code location: every stage's shell module, merged."""

import os

import dagster as dg

from .config import settings

# dbt (a subprocess) reads the warehouse folder from the environment, as the assets do
os.environ.setdefault("INVENTORY_PIPELINE_WAREHOUSE_DIR", str(settings().warehouse_dir))

from .defs import dbt, decisions, evaluation, forecasting, ingestion, jobs, outbox, pricing, rebalancing, replenishment  # noqa: E402
from .defs.resources import default_resources  # noqa: E402

defs = dg.Definitions(
    assets=[
        *ingestion.landing_assets,
        dbt.warehouse_models,
        forecasting.demand_forecast,
        pricing.price_recommendations,
        replenishment.replenishment_orders,
        rebalancing.rebalancing_transfers,
        decisions.decision_log,
        outbox.erp_outbox,
        evaluation.policy_evaluation,
    ],
    jobs=[jobs.ingest_master_job, jobs.ingest_daily_job, jobs.plan_job, evaluation.evaluate_policy_job],
    resources={**default_resources(), "dbt": dbt.dbt_resource()},
)
