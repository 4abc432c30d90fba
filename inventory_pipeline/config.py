"""The environment settings, in one object (`settings()`): where things live and how the
operations machinery behaves. Every one comes from an environment variable with a default; no other
module reads the environment. (The decision settings are the policy file's, core/policy.py.)

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
| INVENTORY_PIPELINE_END_DATE        | open                                      | last daily partition          |
| INVENTORY_PIPELINE_S3_ENDPOINT_URL | unset (AWS)                               | S3-compatible endpoint        |
| INVENTORY_PIPELINE_FORECAST_ENGINE | local                                     | local or dask                 |
| INVENTORY_PIPELINE_DASK_SCHEDULER  | unset (in-process Dask)                   | Dask scheduler address        |
| INVENTORY_PIPELINE_FORECAST_JOBS   | 1                                         | local engine's fit processes  |
| INVENTORY_PIPELINE_EXECUTOR        | in_process                                | or multiprocess: a run's steps|
| INVENTORY_PIPELINE_BEDROCK_MODEL_ID| unset (off)                               | model rephrasing explanations |
| INVENTORY_PIPELINE_BEDROCK_REGION  | AWS_REGION                                | Bedrock region                |
| INVENTORY_PIPELINE_BEDROCK_ENDPOINT_URL | unset (AWS)                          | Bedrock endpoint              |
| INVENTORY_PIPELINE_TIMEZONE        | UTC                                       | schedule and freshness clock  |
| INVENTORY_PIPELINE_SCHEDULE_CRON   | 0 6 * * *                                 | the daily cycle's schedule    |
| INVENTORY_PIPELINE_FRESHNESS_DEADLINE_CRON | 0 9 * * *                         | freshness checks' deadline    |
| INVENTORY_PIPELINE_LANDING_SETTLE_SECONDS | 30                                 | a day's files must rest this long |
| INVENTORY_PIPELINE_ALERT_WEBHOOK   | unset (off)                               | Teams alerts (dagster-msteams)|
| INVENTORY_PIPELINE_ALERT_SLACK_TOKEN | unset (off)                             | Slack alerts (dagster-slack)  |
| INVENTORY_PIPELINE_ALERT_SLACK_CHANNEL | #inventory-alerts                     | the Slack channel             |
| INVENTORY_PIPELINE_ALERT_SLACK_API_URL | unset (https://slack.com/api/)        | Slack Web API base (a proxy)  |
| INVENTORY_PIPELINE_ALERT_REVIEW_QUEUE | 200                                    | alert past this many waiting  |
| INVENTORY_PIPELINE_DAGSTER_URL     | http://127.0.0.1:3000                     | run links in failure records  |
| INVENTORY_PIPELINE_MAX_RETRIES     | 3                                         | retries of a transient failure |
| INVENTORY_PIPELINE_RETRY_BASE_SECONDS | 2                                      | backoff base                  |
| INVENTORY_PIPELINE_CONSOLE_DIR     | $HOME/console                             | console users file and locks  |
| INVENTORY_PIPELINE_CONSOLE_SESSION_MINUTES | 480                               | idle time a console login lasts |
| INVENTORY_PIPELINE_CONSOLE_AUTH    | password                                  | password, oidc or proxy       |
| INVENTORY_PIPELINE_CONSOLE_OIDC_PROVIDER | unset ([auth] itself)               | the [auth.NAME] of st.login   |
| INVENTORY_PIPELINE_CONSOLE_OIDC_CLAIM | email                                  | the claim naming the user     |
| INVENTORY_PIPELINE_CONSOLE_PROXY_HEADER | X-Forwarded-Email                    | the auth proxy's user header  |
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
    end_date: str | None = None
    s3_endpoint_url: str | None = None
    forecast_engine: str = "local"
    dask_scheduler: str | None = None
    forecast_jobs: int = 1
    # every step of a run in the run's own process: a step process per step would import the code
    # location and its libraries again each time (a small network's daily_plan: 69 s vs 13 s)
    executor: str = "in_process"
    bedrock_model_id: str | None = None
    bedrock_region: str | None = None
    bedrock_endpoint_url: str | None = None
    timezone: str = "UTC"
    schedule_cron: str = "0 6 * * *"
    freshness_deadline_cron: str = "0 9 * * *"
    landing_settle_seconds: float = 30.0
    alert_webhook: str | None = None
    alert_slack_token: str | None = None
    alert_slack_channel: str = "#inventory-alerts"
    alert_slack_api_url: str | None = None
    alert_review_queue: int = 200
    dagster_url: str = "http://127.0.0.1:3000"
    max_retries: int = 3
    retry_base_seconds: float = 2.0
    console_dir: Path = PROJECT_DIR / "console"  # resolved under $INVENTORY_PIPELINE_HOME by settings()
    console_session_minutes: float = 480.0
    console_auth: str = "password"  # password (users file) | oidc (st.login) | proxy (a trusted header)
    console_oidc_provider: str | None = None
    console_oidc_claim: str = "email"
    console_proxy_header: str = "X-Forwarded-Email"

    @property
    def duckdb_path(self) -> Path:
        return self.warehouse_dir / "warehouse.duckdb"


def _positive_int(name: str):
    def parse(value: str) -> int:
        if not value.strip().isdigit() or int(value) < 1:
            raise ValueError(f"INVENTORY_PIPELINE_{name}={value!r}: a whole number of at least 1")
        return int(value)

    return parse


def _executor(value: str) -> str:
    if value not in ("in_process", "multiprocess"):
        raise ValueError(f"INVENTORY_PIPELINE_EXECUTOR={value!r}: one of in_process, multiprocess")
    return value


def _console_auth(value: str) -> str:
    if value not in ("password", "oidc", "proxy"):
        raise ValueError(f"INVENTORY_PIPELINE_CONSOLE_AUTH={value!r}: one of password, oidc, proxy")
    return value


# optional settings: environment variable (INVENTORY_PIPELINE_<name>) -> field, parsed; unset or
# empty keeps the field's default in `Settings`
_OPTIONAL = {
    "MLFLOW_UI_URL": ("mlflow_ui_url", lambda v: v.rstrip("/")),
    "END_DATE": ("end_date", str),
    "S3_ENDPOINT_URL": ("s3_endpoint_url", str),
    "FORECAST_ENGINE": ("forecast_engine", str),
    "DASK_SCHEDULER": ("dask_scheduler", str),
    "FORECAST_JOBS": ("forecast_jobs", _positive_int("FORECAST_JOBS")),
    "EXECUTOR": ("executor", _executor),
    "BEDROCK_MODEL_ID": ("bedrock_model_id", str),
    "BEDROCK_ENDPOINT_URL": ("bedrock_endpoint_url", str),
    "TIMEZONE": ("timezone", str),
    "SCHEDULE_CRON": ("schedule_cron", str),
    "FRESHNESS_DEADLINE_CRON": ("freshness_deadline_cron", str),
    "LANDING_SETTLE_SECONDS": ("landing_settle_seconds", float),
    "ALERT_WEBHOOK": ("alert_webhook", str),
    "ALERT_SLACK_TOKEN": ("alert_slack_token", str),
    "ALERT_SLACK_CHANNEL": ("alert_slack_channel", str),
    "ALERT_SLACK_API_URL": ("alert_slack_api_url", str),
    "ALERT_REVIEW_QUEUE": ("alert_review_queue", int),
    "DAGSTER_URL": ("dagster_url", str),
    "MAX_RETRIES": ("max_retries", int),
    "RETRY_BASE_SECONDS": ("retry_base_seconds", float),
    "CONSOLE_SESSION_MINUTES": ("console_session_minutes", float),
    "CONSOLE_AUTH": ("console_auth", _console_auth),
    "CONSOLE_OIDC_PROVIDER": ("console_oidc_provider", str),
    "CONSOLE_OIDC_CLAIM": ("console_oidc_claim", str),
    "CONSOLE_PROXY_HEADER": ("console_proxy_header", str),
}
# the variables that move one location away from $INVENTORY_PIPELINE_HOME
LOCATION_OVERRIDES = (
    "INVENTORY_PIPELINE_LANDING_URI",
    "INVENTORY_PIPELINE_OUTBOX_URI",
    "INVENTORY_PIPELINE_WAREHOUSE_DIR",
    "MLFLOW_TRACKING_URI",
    "INVENTORY_PIPELINE_MLFLOW_ARTIFACTS",
)


def settings() -> Settings:
    """Resolve settings from the environment now (not at import time)."""
    home = _home()
    mlflow_dir = home / "mlflow"
    optional = {field: parse(_env(name)) for name, (field, parse) in _OPTIONAL.items() if _env(name)}
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
        bedrock_region=_env("BEDROCK_REGION") or os.environ.get("AWS_REGION") or None,
        console_dir=Path(_env("CONSOLE_DIR") or home / "console").resolve(),
        **optional,
    )


def use_home(home: Path, **env: str) -> Path:
    """Point this process, and every process it starts, at `home` (the commands that build a home
    of their own: import-m5, closed-loop): every location derives from it (a variable moving one
    elsewhere is cleared), Dagster's instance is home/dagster_home (the development instance's
    dagster.yaml copied in once), and `env` (VARIABLE=value) is set as well. Returns the Dagster
    home. The one place that writes the environment, on purpose: Dagster and dbt subprocesses read it."""
    import shutil

    os.environ["INVENTORY_PIPELINE_HOME"] = str(home)
    for var in LOCATION_OVERRIDES:
        os.environ.pop(var, None)
    dagster_home = home / "dagster_home"
    dagster_home.mkdir(parents=True, exist_ok=True)
    if not (dagster_home / "dagster.yaml").exists():
        shutil.copy(PROJECT_DIR / "deploy" / "dagster.dev.yaml", dagster_home / "dagster.yaml")
    os.environ.update(DAGSTER_HOME=str(dagster_home), **env)
    return dagster_home


def _env(name: str) -> str | None:
    """INVENTORY_PIPELINE_<name>, None when unset or empty."""
    return os.environ.get(f"INVENTORY_PIPELINE_{name}") or None
