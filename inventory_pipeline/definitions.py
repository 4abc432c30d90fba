"""The Dagster code location: every stage's shell module, merged."""

from __future__ import annotations

import os

import dagster as dg

from .config import settings

# dbt (a subprocess) reads the warehouse folder from the environment, as the assets do
os.environ.setdefault("INVENTORY_PIPELINE_WAREHOUSE_DIR", str(settings().warehouse_dir))

from .defs import dbt, ingestion  # noqa: E402
from .defs.resources import default_resources  # noqa: E402

defs = dg.Definitions(
    assets=[*ingestion.landing_assets, dbt.warehouse_models],
    resources={**default_resources(), "dbt": dbt.dbt_resource()},
)
