"""Test session set-up: every path of the pipeline points into one temporary home, and the dbt
manifest is built from the current models (never a stale committed file)."""

import os
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config):
    home = Path(tempfile.mkdtemp(prefix="inventory_pipeline_test_"))
    os.environ["INVENTORY_PIPELINE_HOME"] = str(home)
    for var in ("INVENTORY_PIPELINE_LANDING_URI", "INVENTORY_PIPELINE_OUTBOX_URI", "INVENTORY_PIPELINE_WAREHOUSE_DIR",
                "MLFLOW_TRACKING_URI", "INVENTORY_PIPELINE_MLFLOW_ARTIFACTS", "INVENTORY_PIPELINE_POLICY"):
        os.environ.pop(var, None)
    os.environ["INVENTORY_PIPELINE_WAREHOUSE_DIR"] = str(home / "data" / "warehouse")
    os.environ.setdefault("DAGSTER_HOME", str(home / "dagster_home"))
    (home / "dagster_home").mkdir(exist_ok=True)
    # the dbt manifest is (re)built by inventory_pipeline.defs.dbt.ensure_manifest at import


@pytest.fixture
def tiny_config():
    from inventory_pipeline.simulation import NetworkConfig

    return NetworkConfig(regions=1, dcs=1, stores=2, skus=8, suppliers=2, days=90, seed=7, burn_in_days=28)
