"""Where things live. Every path comes from an environment variable with a project-local default.

Plain Python (no Dagster import): read by the core, the shell and the CLI alike.

| variable                           | default                                   | what                          |
|------------------------------------|-------------------------------------------|-------------------------------|
| INVENTORY_PIPELINE_HOME            | the project folder (parent of the package)| base for the defaults below   |
| INVENTORY_PIPELINE_LANDING_URI     | $HOME/data/landing                        | landing zone: folder or s3:// |
| INVENTORY_PIPELINE_OUTBOX_URI      | $HOME/data/outbox                         | ERP outbox: folder or s3://   |
| INVENTORY_PIPELINE_WAREHOUSE_DIR   | $HOME/data/warehouse                      | Parquet tables + DuckDB file  |
| INVENTORY_PIPELINE_POLICY          | packaged policy/default_policy.yaml       | versioned decision policy     |
| INVENTORY_PIPELINE_START_DATE      | 2025-01-01                                | first daily partition         |
| MLFLOW_TRACKING_URI                | sqlite:///$HOME/mlflow/mlflow.db          | MLflow tracking store         |
| INVENTORY_PIPELINE_MLFLOW_ARTIFACTS| $HOME/mlflow/artifacts                    | MLflow artifact root          |
| INVENTORY_PIPELINE_MLFLOW_UI_URL   | http://127.0.0.1:5000                     | MLflow UI (links in metadata) |
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_DIR = PACKAGE_DIR.parent
DEFAULT_POLICY_PATH = PACKAGE_DIR / "policy" / "default_policy.yaml"
DBT_PROJECT_DIR = PROJECT_DIR / "dbt_project"
DEFAULT_START_DATE = "2025-01-01"


def _home() -> Path:
    return Path(os.environ.get("INVENTORY_PIPELINE_HOME", PROJECT_DIR)).resolve()


@dataclass(frozen=True)
class Settings:
    landing_uri: str
    outbox_uri: str
    warehouse_dir: Path
    policy_path: Path
    start_date: str
    mlflow_tracking_uri: str
    mlflow_artifact_root: str
    mlflow_ui_url: str = "http://127.0.0.1:5000"

    @property
    def duckdb_path(self) -> Path:
        return self.warehouse_dir / "warehouse.duckdb"


def settings() -> Settings:
    """Resolve settings from the environment now (not at import time)."""
    home = _home()
    mlflow_dir = home / "mlflow"
    return Settings(
        landing_uri=os.environ.get("INVENTORY_PIPELINE_LANDING_URI", str(home / "data" / "landing")),
        outbox_uri=os.environ.get("INVENTORY_PIPELINE_OUTBOX_URI", str(home / "data" / "outbox")),
        warehouse_dir=Path(
            os.environ.get("INVENTORY_PIPELINE_WAREHOUSE_DIR", str(home / "data" / "warehouse"))
        ).resolve(),
        policy_path=Path(os.environ.get("INVENTORY_PIPELINE_POLICY", str(DEFAULT_POLICY_PATH))),
        start_date=os.environ.get("INVENTORY_PIPELINE_START_DATE", DEFAULT_START_DATE),
        mlflow_tracking_uri=os.environ.get("MLFLOW_TRACKING_URI", f"sqlite:///{mlflow_dir / 'mlflow.db'}"),
        mlflow_artifact_root=os.environ.get("INVENTORY_PIPELINE_MLFLOW_ARTIFACTS", str(mlflow_dir / "artifacts")),
        mlflow_ui_url=os.environ.get("INVENTORY_PIPELINE_MLFLOW_UI_URL", "http://127.0.0.1:5000").rstrip("/"),
    )
