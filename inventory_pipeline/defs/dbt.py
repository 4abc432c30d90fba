"""dbt models as Dagster assets, dbt tests as asset checks (dagster-dbt)."""


import sys
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource, DbtProject, dbt_assets

from ..config import DBT_PROJECT_DIR

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
# Builds target/manifest.json when running under `dagster dev`; `make install` and the tests
# run `dbt parse` so the manifest is never a stale committed file.
dbt_project.prepare_if_dev()


@dbt_assets(manifest=dbt_project.manifest_path, project=dbt_project)
def warehouse_models(context: dg.AssetExecutionContext, dbt: DbtCliResource):
    yield from dbt.cli(["build"], context=context).stream()


def dbt_resource() -> DbtCliResource:
    # the venv's dbt, even when the venv is not activated (e.g. `.venv/bin/dagster dev`)
    exe = Path(sys.executable).parent / "dbt"
    return DbtCliResource(project_dir=dbt_project, dbt_executable=str(exe) if exe.exists() else "dbt")
