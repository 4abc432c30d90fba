"""Resources: where the pipeline reads and writes. Defaults come from the environment (config.py)."""

import dagster as dg
from dagster_aws.s3 import S3Resource

from ..config import settings
from ..core.ingestion import LandingStore, open_store
from ..core.policy import Policy, load_policy
from ..core.warehouse import Warehouse


class LandingZoneResource(dg.ConfigurableResource):
    """The landing zone: a local folder or an s3:// URI (read through dagster-aws' S3Resource)."""

    uri: str
    s3_endpoint_url: str | None = None  # e.g. a MinIO/moto server; None = AWS

    def s3_client(self):
        return S3Resource(endpoint_url=self.s3_endpoint_url).get_client()

    def store(self) -> LandingStore:
        return open_store(self.uri, self.s3_client() if self.uri.startswith("s3://") else None)


class WarehouseResource(dg.ConfigurableResource):
    root: str

    def get(self) -> Warehouse:
        from pathlib import Path

        return Warehouse(Path(self.root))


class PolicyResource(dg.ConfigurableResource):
    path: str

    def load(self) -> Policy:
        return load_policy(self.path)


class MlflowResource(dg.ConfigurableResource):
    tracking_uri: str
    artifact_root: str
    experiment: str = "demand_forecast"
    ui_url: str = "http://127.0.0.1:5000"  # where `make mlflow-ui` (or the team's server) shows the runs


class ForecastEngineResource(dg.ConfigurableResource):
    """Where statsforecast runs: `local` (the step's process) or `dask` (statsforecast's distributed
    backend on the Dask scheduler at `dask_scheduler`, e.g. a dask-kubernetes or Coiled cluster)."""

    engine: str = "local"
    dask_scheduler: str | None = None


class ExplainerResource(dg.ConfigurableResource):
    """Optional LLM rephrasing of explanations (Amazon Bedrock Converse, boto3). Used only when the
    policy's `explanations.llm_rephrase` is true and a model id is set; otherwise templates."""

    bedrock_model_id: str | None = None
    region: str | None = None
    endpoint_url: str | None = None

    def get(self, cfg):
        from ..core.explain import BedrockExplainer, bedrock_client

        if not cfg.llm_rephrase or not self.bedrock_model_id:
            return None
        return BedrockExplainer(
            bedrock_client(self.region, cfg.timeout_seconds, self.endpoint_url),
            self.bedrock_model_id,
            budget_seconds=cfg.budget_seconds,
        )


class OutboxResource(dg.ConfigurableResource):
    """The ERP outbox: a local folder or an s3:// URI."""

    uri: str
    s3_endpoint_url: str | None = None

    def s3_client(self):
        return S3Resource(endpoint_url=self.s3_endpoint_url).get_client()


def default_resources() -> dict:
    s = settings()
    return {
        "landing": LandingZoneResource(uri=s.landing_uri, s3_endpoint_url=s.s3_endpoint_url),
        "warehouse": WarehouseResource(root=str(s.warehouse_dir)),
        "policy": PolicyResource(path=str(s.policy_path)),
        "mlflow": MlflowResource(
            tracking_uri=s.mlflow_tracking_uri, artifact_root=s.mlflow_artifact_root, ui_url=s.mlflow_ui_url
        ),
        "forecast_engine": ForecastEngineResource(engine=s.forecast_engine, dask_scheduler=s.dask_scheduler),
        "explainer": ExplainerResource(
            bedrock_model_id=s.bedrock_model_id, region=s.bedrock_region, endpoint_url=s.bedrock_endpoint_url
        ),
        "outbox": OutboxResource(uri=s.outbox_uri, s3_endpoint_url=s.s3_endpoint_url),
    }
