"""dbt models as Dagster assets, dbt tests as asset checks (dagster-dbt)."""

import subprocess
import sys
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource, DbtProject, dbt_assets

from ..config import DBT_PROJECT_DIR, PROJECT_DIR


def dbt_executable() -> str:
    """The venv's dbt, even when the venv is not activated (`.venv/bin/dagster dev`) or the code
    server runs the base interpreter (sys.prefix is still the venv)."""
    candidates = (
        Path(sys.prefix) / "bin" / "dbt",
        Path(sys.executable).parent / "dbt",
        PROJECT_DIR / ".venv" / "bin" / "dbt",
    )
    return str(next((p for p in candidates if p.exists()), "dbt"))


def ensure_manifest(project_dir: Path = DBT_PROJECT_DIR) -> Path:
    """Build target/manifest.json with `dbt parse` when it is missing or older than any model,
    macro or project file, so the code location never loads a stale manifest."""
    manifest = project_dir / "target" / "manifest.json"
    sources = [p for pat in ("models/**/*", "macros/**/*", "*.yml") for p in project_dir.glob(pat) if p.is_file()]
    if not manifest.exists() or max(p.stat().st_mtime for p in sources) > manifest.stat().st_mtime:
        subprocess.run([dbt_executable(), "parse", "--quiet"], cwd=project_dir, check=True)
    return manifest


dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
ensure_manifest()


@dbt_assets(manifest=dbt_project.manifest_path, project=dbt_project)
def warehouse_models(context: dg.AssetExecutionContext, dbt: DbtCliResource):
    yield from dbt.cli(["build"], context=context).stream()


def dbt_resource() -> DbtCliResource:
    return DbtCliResource(project_dir=dbt_project, dbt_executable=dbt_executable())
