"""The Dagster code location: every stage's shell module, merged."""

import warnings

import dagster as dg

from .defs import (
    dbt,
    decisions,
    evaluation,
    forecasting,
    ingestion,
    jobs,
    ledger,
    outbox,
    pricing,
    rebalancing,
    reconcile,
    replenishment,
    reporting,
    schedules,
    sensors,
)
from .defs.resources import default_resources


def build_definitions(resources: dict | None = None) -> dg.Definitions:
    """The code location; `resources` overrides the defaults (tests point the landing zone and the
    outbox at an S3 server this way). Every job runs its steps in the run's process unless
    INVENTORY_PIPELINE_EXECUTOR=multiprocess: the plan's stages are a chain, and a process per step
    would import the code location and its libraries once per step."""
    from .config import settings

    executor = dg.multiprocess_executor if settings().executor == "multiprocess" else dg.in_process_executor
    return dg.Definitions(
        executor=executor,
        assets=[
            *ingestion.landing_assets,
            dbt.warehouse_models,
            forecasting.demand_forecast,
            pricing.price_recommendations,
            replenishment.replenishment_orders,
            rebalancing.rebalancing_transfers,
            ledger.inventory_reconciliation,
            *reconcile.reconcile_assets,
            decisions.decision_log,
            decisions.review_queue,
            reporting.dashboard_summaries,
            outbox.erp_outbox,
            evaluation.policy_evaluation,
            *sensors.operations_tables,
        ],
        asset_checks=schedules.freshness_checks,
        jobs=[
            jobs.ingest_master_job,
            jobs.ingest_daily_job,
            jobs.plan_job,
            jobs.daily_cycle_job,
            jobs.review_planner_job,
            jobs.publish_job,
            evaluation.evaluate_policy_job,
        ],
        schedules=schedules.schedules,
        sensors=[*sensors.sensors, schedules.freshness_sensor],
        resources={**default_resources(), "dbt": dbt.dbt_resource(), **(resources or {})},
    )


# daily_cycle runs one partition per run by design (see defs/jobs.py); Dagster says so at load
warnings.filterwarnings("ignore", message="Asset job daily_cycle materializes assets with varying BackfillPolicies")
defs = build_definitions()
