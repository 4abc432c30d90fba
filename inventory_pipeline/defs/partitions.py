"""The daily partitioning shared by landing files and plans: partition D = the plan made with
every landing file dated D or earlier, taking effect on D+1."""

import os

import dagster as dg

from ..config import settings

daily_partitions = dg.DailyPartitionsDefinition(
    start_date=settings().start_date,
    end_date=os.environ.get("INVENTORY_PIPELINE_END_DATE") or None,
)
