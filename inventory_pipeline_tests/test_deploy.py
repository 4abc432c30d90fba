"""The shipped instance configurations are valid Dagster configuration, not prose: the local one
builds a working instance, the production one passes Dagster's instance schema and every
pluggable class in it (run coordinator, compute logs) accepts its config; the Helm values set the
same queueing policy as the jobs' tags."""

import shutil
from pathlib import Path

import dagster as dg
import pytest
import yaml

# Dagster has no public call that validates an instance configuration without building its
# storages (the production one needs Postgres): the schema check uses these private modules
# here, in a test, so a Dagster upgrade that changes them fails here and not in production
from dagster._core.instance.config import dagster_instance_config
from dagster._serdes.config_class import ConfigurableClassData

from inventory_pipeline.defs.jobs import WAREHOUSE_TAG

ROOT = Path(__file__).resolve().parents[1]
PROD_ENV = {
    "DAGSTER_PG_HOST": "db.example.internal",
    "DAGSTER_PG_PORT": "5432",
    "DAGSTER_PG_DB": "dagster",
    "DAGSTER_PG_USERNAME": "dagster",
    "DAGSTER_PG_PASSWORD": "secret",
    "DAGSTER_COMPUTE_LOG_BUCKET": "logs",
}


def _home(tmp_path, name, text=None):
    home = tmp_path / name
    home.mkdir()
    if text is None:
        shutil.copy(ROOT / "deploy" / name, home / "dagster.yaml")
    else:
        (home / "dagster.yaml").write_text(text)
    return home


def _rehydrate(section):
    return ConfigurableClassData(
        section["module"], section["class"], yaml.safe_dump(section.get("config", {}))
    ).rehydrate()


def test_dev_instance_starts_and_queues_one_warehouse_writer(tmp_path):
    home = _home(tmp_path, "dagster.dev.yaml")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        coord = instance.run_coordinator
        assert type(coord).__name__ == "QueuedRunCoordinator"
        limits = coord.get_run_queue_config().tag_concurrency_limits
        assert {"key": "inventory_pipeline/warehouse", "value": "writer", "limit": 1} in limits
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 1


def test_production_instance_config_validates(tmp_path, monkeypatch):
    for k, v in PROD_ENV.items():
        monkeypatch.setenv(k, v)
    home = _home(tmp_path, "dagster.yaml")
    cfg, _ = dagster_instance_config(str(home))
    assert set(cfg["storage"]) == {"postgres"}
    coord = _rehydrate(cfg["run_coordinator"])
    assert type(coord).__name__ == "QueuedRunCoordinator"
    key, value = next(iter(WAREHOUSE_TAG.items()))
    assert {"key": key, "value": value, "limit": 1} in coord.get_run_queue_config().tag_concurrency_limits
    logs = _rehydrate(cfg["compute_logs"])
    assert type(logs).__name__ == "S3ComputeLogManager"


def test_schema_check_is_real(tmp_path, monkeypatch):
    # a misspelt key in the production file is an error, so the test above proves something
    for k, v in PROD_ENV.items():
        monkeypatch.setenv(k, v)
    bad = (ROOT / "deploy" / "dagster.yaml").read_text().replace("hostname:", "hostnam:")
    home = _home(tmp_path, "bad", bad)
    with pytest.raises(dg.DagsterInvalidConfigError, match="hostnam"):
        dagster_instance_config(str(home))


def test_helm_values_match_the_instance_policy():
    values = yaml.safe_load((ROOT / "deploy" / "helm" / "values.yaml").read_text())
    prod = yaml.safe_load((ROOT / "deploy" / "dagster.yaml").read_text())
    queued = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert queued["tagConcurrencyLimits"] == prod["run_coordinator"]["config"]["tag_concurrency_limits"]
    assert queued["maxConcurrentRuns"] == prod["run_coordinator"]["config"]["max_concurrent_runs"]
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["postgresql"]["enabled"] is False
    deployment = values["dagster-user-deployments"]["deployments"][0]
    assert deployment["dagsterApiGrpcArgs"] == ["--module-name", "inventory_pipeline.definitions"]
    env = {e["name"]: e["value"] for e in deployment["env"]}
    assert env["INVENTORY_PIPELINE_FORECAST_ENGINE"] == "dask" and env["INVENTORY_PIPELINE_LANDING_URI"].startswith(
        "s3://"
    )


def test_loading_the_code_location_leaves_the_stages_libraries_unloaded():
    """The webserver, the daemon and every run worker load the code location; the libraries only a
    stage's computation uses (about 4 s of imports together) load when a step first calls them."""
    import subprocess
    import sys

    step_only = ["scipy.stats", "statsforecast", "mlforecast", "lightgbm", "mlflow", "matplotlib", "cvxpy"]
    probe = (
        "import sys, inventory_pipeline.definitions as d; assert d.defs is not None; "
        f"print(','.join(m for m in {step_only!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"loaded at import: {out.stdout.strip()}"


def test_the_libraries_the_code_location_loads_are_compiled_once():
    """`make install` writes the libraries' bytecode (uv pip install --compile-bytecode): where
    PYTHONDONTWRITEBYTECODE is set, nothing else ever does, and every process compiled Dagster,
    dbt and pandas from source (8 s of imports instead of 4; docs/results/2026-12-07-bytecode.md)."""
    import importlib.util

    uncompiled = []
    for name in ("dagster", "dagster_dbt", "dbt.version", "pandas", "duckdb", "pandera", "mlflow", "statsforecast"):
        source = importlib.util.find_spec(name).origin
        if source.endswith(".py") and not Path(importlib.util.cache_from_source(source)).is_file():
            uncompiled.append(name)
    assert not uncompiled, f"no bytecode for {uncompiled}: reinstall with `make install` (--compile-bytecode)"


ALLOCATOR_SETTINGS = ("INVENTORY_PIPELINE_TUNE_ALLOCATOR", "MALLOC_MMAP_THRESHOLD_", "NUMPY_MADVISE_HUGEPAGE")


def _env_with(extra: dict) -> dict:
    """This process's environment without any allocator setting of the caller's, plus `extra`."""
    import os

    return {**{k: v for k, v in os.environ.items() if k not in ALLOCATOR_SETTINGS}, **extra}


def _page_faults_of_a_new_array(env: dict) -> tuple[int, int]:
    """In a fresh process: two 96 MB arrays, the first dropped, then a third of the same size
    written through. Returns (page faults while writing the third, its 4 KiB pages)."""
    import subprocess
    import sys

    probe = (
        "import resource, numpy as np, inventory_pipeline\n"
        "n = 12_000_000; a = np.ones(n); b = np.ones(n); del a\n"
        "f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "c = np.ones(n)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0, c.nbytes // 4096)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=_env_with(env))
    faults, pages = map(int, out.stdout.split())
    return faults, pages


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="glibc's allocator")
def test_a_column_made_after_one_is_dropped_reuses_its_memory():
    """core/allocator.py: importing the package keeps large blocks on the heap, so the stages'
    next 11 M-row column reuses the pages of the last one instead of faulting new ones in (the
    M5 forecast asset spent 12.8 s of a 38 s process in the kernel before)."""
    from inventory_pipeline.core.allocator import tune_allocator

    faults, pages = _page_faults_of_a_new_array({})
    assert faults < pages // 20, f"{faults} page faults for a {pages}-page array: its memory was not reused"
    # the environment's own settings, or the opt-out, are left alone
    assert tune_allocator({"INVENTORY_PIPELINE_TUNE_ALLOCATOR": "0"}) == {
        "malloc_mmap_threshold": False,
        "numpy_hugepages_off": False,
    }
    assert tune_allocator({"MALLOC_MMAP_THRESHOLD_": "1000000", "NUMPY_MADVISE_HUGEPAGE": "1"}) == {
        "malloc_mmap_threshold": False,
        "numpy_hugepages_off": False,
    }
    untuned, _ = _page_faults_of_a_new_array({"INVENTORY_PIPELINE_TUNE_ALLOCATOR": "0", "NUMPY_MADVISE_HUGEPAGE": "0"})
    assert untuned > pages // 2  # the default: a new mapping, every page faulted in again


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="glibc's allocator")
def test_the_memory_a_stage_freed_goes_back_to_the_kernel_between_days():
    """What stays on the heap stays resident until `release_free_memory`: the twin calls it
    between its days, so one long process does not keep every day's dropped columns."""
    import subprocess
    import sys

    probe = (
        "import os, numpy as np, inventory_pipeline\n"
        "from inventory_pipeline.core.allocator import release_free_memory\n"
        "rss = lambda: int(open('/proc/self/statm').read().split()[1]) * os.sysconf('SC_PAGE_SIZE')\n"
        "a = np.ones(12_000_000); b = np.ones(12_000_000); del a\n"
        "held = rss(); released = release_free_memory()\n"
        "print(held - rss(), released)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=_env_with({}))
    freed, released = out.stdout.split()
    assert released == "True" and int(freed) > 0.9 * 96_000_000, out.stdout
