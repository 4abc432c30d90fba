"""dbt models as Dagster assets, dbt tests as asset checks (dagster-dbt).

The manifest is prepared the way dagster-dbt documents: `make install` (and every `make` target
that runs the pipeline) builds it with `dbt parse`; under `dagster dev` `DbtProject.prepare_if_dev`
re-parses on load, so an edited model shows at once; a production image runs
`dagster-dbt project prepare-and-package` at build time. Nothing runs dbt at import otherwise.
"""

import os
import sys
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource, DbtProject, dbt_assets

from ..config import DBT_PROJECT_DIR, PROJECT_DIR
from .resources import WarehouseResource


def dbt_executable() -> str:
    """The venv's dbt, even when the venv is not activated (`.venv/bin/dagster dev`) or the code
    server runs the base interpreter (sys.prefix is still the venv)."""
    candidates = (
        Path(sys.prefix) / "bin" / "dbt",
        Path(sys.executable).parent / "dbt",
        PROJECT_DIR / ".venv" / "bin" / "dbt",
    )
    return str(next((p for p in candidates if p.exists()), "dbt"))


dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
dbt_project.prepare_if_dev()


@contextmanager
def _warehouse_for_dbt(root: str):
    """dbt's profile reads the warehouse folder from INVENTORY_PIPELINE_WAREHOUSE_DIR: hand it the
    warehouse resource's folder while the dbt process starts, so dbt and the Python assets always
    use the same warehouse (restored afterwards; nothing is set at import)."""
    key, before = "INVENTORY_PIPELINE_WAREHOUSE_DIR", os.environ.get("INVENTORY_PIPELINE_WAREHOUSE_DIR")
    os.environ[key] = str(Path(root).resolve())
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before


@dbt_assets(manifest=dbt_project.manifest_path, project=dbt_project)
def warehouse_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource):
    with _warehouse_for_dbt(warehouse.root):
        invocation = dbt.cli(["build"], context=context)  # the dbt process starts here
    yield from invocation.stream()


def dbt_resource() -> DbtCliResource:
    return DbtCliResource(project_dir=dbt_project, dbt_executable=dbt_executable())
