"""Test session set-up: every path of the pipeline points into one temporary home, and the dbt
manifest is built from the current models (never a stale committed file)."""

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config):
    home = Path(tempfile.mkdtemp(prefix="inventory_pipeline_test_"))
    os.environ["INVENTORY_PIPELINE_HOME"] = str(home)
    from inventory_pipeline.config import LOCATION_OVERRIDES

    for var in (*LOCATION_OVERRIDES, "INVENTORY_PIPELINE_POLICY"):
        os.environ.pop(var, None)
    os.environ["INVENTORY_PIPELINE_WAREHOUSE_DIR"] = str(home / "data" / "warehouse")
    # the policy file is the home's own copy from the start: `inventory_pipeline.definitions.defs`
    # binds its path when first imported, by whichever test imports it first on a worker, and
    # test_pipeline's fixture later rewrites this same file for its network
    from inventory_pipeline.config import DEFAULT_POLICY_PATH

    (home / "policy.yaml").write_text(DEFAULT_POLICY_PATH.read_text())
    os.environ["INVENTORY_PIPELINE_POLICY"] = str(home / "policy.yaml")
    os.environ.setdefault("DAGSTER_HOME", str(home / "dagster_home"))
    (home / "dagster_home").mkdir(exist_ok=True)
    # the dbt manifest is built by `make install` (dbt parse), before the tests run


# the modules that take longest (summed test seconds of a `make test` run on 2 cores, 2026-12-08:
# test_pipeline 182, test_benchmark 155, test_cli 151, test_increments 102, ...), first:
# `--dist loadfile` hands whole modules to the workers in collection order, so a long module
# collected late (test_pipeline sorts after most) kept one worker busy while the other idled
LONGEST_FIRST = (
    "test_pipeline", "test_benchmark", "test_cli", "test_increments", "test_console_browser", "test_twin",
    "test_console_loop", "test_forecasting", "test_bad_input", "test_reconcile", "test_closed_loop",
    "test_forecast_global", "test_replenishment", "test_operations", "test_browser", "test_twin_pricing", "test_s3",
    "test_landing_v11",
)  # fmt: skip


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.stem, len(rank)))  # stable: the rest keep their order


@pytest.fixture
def tiny_config():
    from inventory_pipeline.simulation import NetworkConfig

    return NetworkConfig(regions=1, dcs=1, stores=2, skus=8, suppliers=2, days=90, seed=7, burn_in_days=28)


@pytest.fixture(scope="session")
def s3_endpoint():
    """moto's S3 server on 127.0.0.1 (a real HTTP S3 endpoint), started for the session."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = Path(sys.executable).parent / "moto_server"
    proc = subprocess.Popen(
        [str(exe), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        for _ in range(100):  # bounded wait for the server to listen
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        for k, v in old.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
