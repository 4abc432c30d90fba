"""The daily schedule and the freshness checks.

`daily_cycle_schedule` fires every morning (INVENTORY_PIPELINE_SCHEDULE_CRON, default 06:00 in
INVENTORY_PIPELINE_TIMEZONE, default UTC) and launches `daily_cycle` for the previous day's
partition — unless that partition's cycle already ran or is running (the landing sensor usually
launches it as soon as the day's files are complete), or the day's required files are not all
there yet (the tick says which are missing; the sensor launches the cycle when they arrive, and
the freshness checks turn red at the deadline if they never do). It reads the landing listing
through the same rule as `run` and the landing sensor (core.landing_dates): a folder under daily/
that is not a calendar date YYYY-MM-DD is ignored with a warning naming it.

Freshness checks (Dagster's time-partition freshness checks, evaluated by their own sensor): the
newest finished daily partition of every raw daily file and of every decision asset must be
materialised by INVENTORY_PIPELINE_FRESHNESS_DEADLINE_CRON (default 09:00) each day.
"""

import warnings
from datetime import timedelta

import dagster as dg

from ..config import settings
from ..core.landing_dates import landing_date_files
from ..core.landing_days import landing_days
from .jobs import FRESHNESS_ASSETS, daily_cycle_job
from .partitions import daily_partitions
from .resources import LandingZoneResource


def timezone() -> str:
    return settings().timezone


def _active_or_done(instance: dg.DagsterInstance, job: str, partition: str) -> list:
    return instance.get_run_records(
        dg.RunsFilter(
            job_name=job,
            tags={"dagster/partition": partition},
            statuses=[
                dg.DagsterRunStatus.SUCCESS,
                dg.DagsterRunStatus.STARTED,
                dg.DagsterRunStatus.QUEUED,
                dg.DagsterRunStatus.STARTING,
                dg.DagsterRunStatus.NOT_STARTED,
            ],
        ),
        limit=1,
    )


@dg.schedule(
    job=daily_cycle_job,
    cron_schedule=settings().schedule_cron,
    execution_timezone=timezone(),
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="every morning: ingest and plan the previous day (skipped when already done or incomplete)",
)
def daily_cycle_schedule(context: dg.ScheduleEvaluationContext, landing: LandingZoneResource):
    day = (context.scheduled_execution_time - timedelta(days=1)).date().isoformat()
    if day not in set(daily_partitions.get_partition_keys(current_time=context.scheduled_execution_time)):
        return dg.SkipReason(f"{day} is not a partition of daily_cycle")
    if _active_or_done(context.instance, daily_cycle_job.name, day):
        return dg.SkipReason(f"daily_cycle {day} already ran or is running")
    files = landing_date_files(landing.store().list_files("daily"), warn=context.log.warning)
    info = landing_days({k: v for k, v in files.items() if k.startswith(day + "/")}).get(day)
    if info is None or not info.complete:
        missing = ", ".join(info.missing) if info else "every file (no daily/" + day + "/ folder)"
        return dg.SkipReason(
            f"landing day {day} is incomplete: missing {missing}; the landing sensor launches "
            f"the cycle when the files arrive"
        )
    return dg.RunRequest(
        run_key=f"schedule-{day}-{info.signature}", partition_key=day, tags={"landing_signature": info.signature}
    )


# Dagster 1.13 marks these builders "superseded" by asset FreshnessPolicy objects; the checks are
# kept because they judge the newest *partition* (a FreshnessPolicy judges the asset's last
# materialisation of any partition, so a backfill of an old day would look fresh) and because
# they are asset checks: visible on each asset's Checks tab and asserted in the tests
with warnings.catch_warnings():
    warnings.simplefilter("ignore", category=dg.SupersessionWarning)
    freshness_checks = dg.build_time_partition_freshness_checks(
        assets=list(FRESHNESS_ASSETS),
        deadline_cron=settings().freshness_deadline_cron,
        timezone=timezone(),
        severity=dg.AssetCheckSeverity.WARN,
    )
    freshness_sensor = dg.build_sensor_for_freshness_checks(
        freshness_checks=freshness_checks,
        name="freshness_checks_sensor",
        minimum_interval_seconds=600,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )

schedules = [daily_cycle_schedule]
