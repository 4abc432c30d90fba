"""dbt models as Dagster assets, dbt tests as asset checks (dagster-dbt).

The manifest is prepared the way dagster-dbt documents: `make install` (and every `make` target
that runs the pipeline) builds it with `dbt parse`; under `dagster dev` `DbtProject.prepare_if_dev`
re-parses on load, so an edited model shows at once; a production image runs
`dagster-dbt project prepare-and-package` at build time. Nothing runs dbt at import otherwise.
"""

import importlib
import os
import sys
import threading
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource, DbtProject, dbt_assets
from packaging import version

from ..config import DBT_PROJECT_DIR, PROJECT_DIR
from ..core import increments
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
def _env_for_dbt(values: dict[str, str]):
    """Environment for the dbt process, set while it starts and restored afterwards (nothing is
    set at import): its profile reads the warehouse folder from INVENTORY_PIPELINE_WAREHOUSE_DIR,
    so dbt and the Python assets always use the same warehouse, and the incremental facts read
    the first date to rebuild."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in before.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


class DbtBuildConfig(dg.Config):
    full_refresh: bool = False  # rebuild the incremental facts from every landing day


INCREMENTAL_FACTS = ("fct_daily_demand", "fct_inventory_positions", "fct_order_lead_times")


@dbt_assets(manifest=dbt_project.manifest_path, project=dbt_project)
def warehouse_models(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource, config: DbtBuildConfig
):
    wh = warehouse.get()
    # the incremental facts rebuild from the first landing day that is new or changed since the
    # last build (core/increments.py); master data or model changes, or a request, rebuild all
    now = increments.snapshot(wh, DBT_PROJECT_DIR)
    step = increments.plan_increment(increments.load_state(wh), now, wh.duckdb_path.is_file(), config.full_refresh)
    context.log.info(f"dbt build: {'full refresh' if step.full_refresh else 'rebuild from ' + step.rebuild_from}"
                     f" ({step.reason})")  # fmt: skip
    # one target folder per warehouse, kept between runs: dbt's partial_parse.msgpack there matches
    # this warehouse's profile (its DuckDB path is part of dbt's profile hash), so every run after
    # the first skips the full parse (~2 s); a fresh folder per run would re-parse every time
    target = Path(warehouse.root).resolve() / ".dbt" / "target"
    env = {"INVENTORY_PIPELINE_WAREHOUSE_DIR": str(Path(warehouse.root).resolve()), **step.dbt_env()}
    with _env_for_dbt(env):
        invocation = dbt.cli(["build", *step.dbt_args()], context=context, target_path=target)  # dbt starts here
    import_in_background(STAGE_LIBRARIES)  # while this process mostly waits for dbt's
    yield from invocation.stream()
    if set(INCREMENTAL_FACTS) <= {k.path[-1] for k in context.selected_asset_keys}:
        increments.save_state(wh, now)  # only after a build of every fact that passed its tests


# what the decision stages import on first use: ~7 s of a new process (a launched run). Imported
# while dbt's own process builds the marts, they are loaded when the forecast step starts instead
# of inside it. The packages' top levels leave out what the forecast step then imported itself:
# statsforecast's models (1.5 s), MLflow's SQL store (0.8 s), matplotlib's Agg canvas (0.3 s; not
# pyplot, which would pick a backend before core.plots asks for Agg)
STAGE_LIBRARIES = (
    "mlflow",
    "mlflow.store.tracking.sqlalchemy_store",
    "statsforecast",
    "statsforecast.models",
    "cvxpy",
    "scipy.stats",
    "matplotlib.backends.backend_agg",
)


def import_in_background(modules: tuple[str, ...]) -> threading.Thread | None:
    """Import `modules` in a daemon thread (none when every one is already imported)."""
    missing = [m for m in modules if m not in sys.modules]
    if not missing:
        return None

    def load():
        for m in missing:
            try:
                importlib.import_module(m)
            except Exception:  # the step that needs the module imports it again and reports the error
                pass

    thread = threading.Thread(target=load, name="import-stage-libraries", daemon=True)
    thread.start()
    return thread


class VenvDbtCliResource(DbtCliResource):
    """dagster-dbt's resource, told the dbt version without asking: it runs `dbt --version` in a
    subprocess before every build (3.8 s here, a fresh resource per run), but when the executable is
    this environment's own dbt, the installed dbt-core package says the same (test_increments)."""

    @cached_property
    def _cli_version(self) -> version.Version:
        if Path(self.dbt_executable).parent == Path(sys.executable).parent:
            from importlib.metadata import version as installed

            return version.parse(installed("dbt-core"))
        return super()._cli_version


def dbt_resource() -> DbtCliResource:
    return VenvDbtCliResource(project_dir=dbt_project, dbt_executable=dbt_executable())
