"""Run the whole graph in process (used by `inventory-pipeline run/demo` and the tests).

Three runs, recorded in the Dagster instance (DAGSTER_HOME) so they show in the UI:
  ingest_master             master files (unpartitioned)
  ingest_daily [first..D]   every daily landing file up to D, as one single-run backfill
  daily_plan [D]            dbt build, forecast, pricing, replenishment, rebalancing,
                            decision log and ERP outbox for plan date D
"""

from __future__ import annotations

import dagster as dg
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG


def run_pipeline(
    plan_date: str | None = None,
    first_date: str | None = None,
    instance: dg.DagsterInstance | None = None,
    log=print,
    log_level: str = "WARNING",
) -> dict:
    """Run the three jobs; Dagster's console log shows `log_level` and above (the full event log
    is in the instance either way)."""
    from .definitions import defs

    dates = defs.resources["landing"].store().list_dirs("daily")
    if not dates:
        raise SystemExit(f"no daily/ folders in the landing zone {defs.resources['landing'].uri}")
    plan_date = plan_date or dates[-1]
    first_date = first_date or dates[0]
    instance = instance or dg.DagsterInstance.get()
    quiet = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    results = {}

    def summary(name: str) -> None:  # the per-run table: steps, status, seconds, rows
        from .core.operations import format_run_summary
        from .defs.sensors import summarise_run

        run = instance.get_run_by_id(results[name].run_id)
        log("  " + format_run_summary(summarise_run(instance, run)).replace("\n", "\n  "))

    log(f"ingest master files from {defs.resources['landing'].uri}")
    results["ingest_master"] = defs.resolve_job_def("ingest_master").execute_in_process(
        instance=instance, run_config=quiet
    )
    summary("ingest_master")
    log(f"ingest daily files {first_date} .. {plan_date} (one run)")
    results["ingest_daily"] = defs.resolve_job_def("ingest_daily").execute_in_process(
        instance=instance,
        run_config=quiet,
        tags={ASSET_PARTITION_RANGE_START_TAG: first_date, ASSET_PARTITION_RANGE_END_TAG: plan_date},
    )
    summary("ingest_daily")
    log(f"plan {plan_date}: dbt build, forecast, pricing, replenishment, rebalancing, decisions, outbox")
    results["daily_plan"] = defs.resolve_job_def("daily_plan").execute_in_process(
        instance=instance, run_config=quiet, partition_key=plan_date
    )
    summary("daily_plan")
    return {"plan_date": plan_date, "first_date": first_date, "results": results}
