"""The daily partitioning shared by landing files and plans: partition D = the plan made with
every landing file dated D or earlier, taking effect on D+1."""

import dagster as dg

from ..config import settings

# the run tags Dagster reads for a single-run backfill of a partition range (the tag names its docs
# use to launch a range as one run; its own constants live in a private module)
PARTITION_RANGE_START_TAG = "dagster/asset_partition_range_start"
PARTITION_RANGE_END_TAG = "dagster/asset_partition_range_end"

daily_partitions = dg.DailyPartitionsDefinition(
    start_date=settings().start_date,
    end_date=settings().end_date,
)
