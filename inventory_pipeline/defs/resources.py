"""Resources: where the pipeline reads and writes. Defaults come from the environment (config.py)."""

import dagster as dg

from ..config import settings
from ..core.ingestion import LandingStore, open_store
from ..core.policy import Policy, load_policy
from ..core.warehouse import Warehouse


def _s3_client(endpoint_url: str | None):
    """An S3 client through dagster-aws' S3Resource, imported here: dagster-aws takes ~1.9 s to
    import and a local landing zone never needs it, so the code location loads without it."""
    from dagster_aws.s3 import S3Resource

    return S3Resource(endpoint_url=endpoint_url).get_client()


class LandingZoneResource(dg.ConfigurableResource):
    """The landing zone: a local folder or an s3:// URI (read through dagster-aws' S3Resource)."""

    uri: str
    s3_endpoint_url: str | None = None  # e.g. a MinIO/moto server; None = AWS

    def s3_client(self):
        return _s3_client(self.s3_endpoint_url)

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
    """Where statsforecast runs: `local` (the step's process, and `n_jobs` worker processes it
    forks for the model fits and the cross-validation) or `dask` (statsforecast's distributed
    backend on the Dask scheduler at `dask_scheduler`, e.g. a dask-kubernetes or Coiled cluster)."""

    engine: str = "local"
    dask_scheduler: str | None = None
    n_jobs: int = 1


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
        return _s3_client(self.s3_endpoint_url)


class AlertsResource(dg.ConfigurableResource):
    """Where operational alerts go (core.alerts): a Teams webhook through dagster-msteams and/or a
    Slack channel through dagster-slack; neither set = alerts off. `send` never raises: an alert
    channel that is down must not fail the sensor that noticed the problem (the warehouse tables
    and the Dagster UI stay the record)."""

    teams_webhook: str | None = None
    slack_token: str | None = None
    slack_channel: str = "#inventory-alerts"
    slack_api_url: str | None = None  # a proxy or a test server; None = Slack's own
    review_queue_threshold: int = 200

    def send(self, alert, log=None) -> list[str]:
        """Post `alert` (core.alerts.Alert) to every configured channel; the channels reached."""
        reached = []
        for name, post in (("teams", self._teams), ("slack", self._slack)):
            try:
                if post(alert):
                    reached.append(name)
            except Exception as e:  # noqa: BLE001 - see the class docstring
                if log is not None:
                    log.warning(f"alert to {name} failed: {e}")
        return reached

    def _teams(self, alert) -> bool:
        if not self.teams_webhook:
            return False
        from dagster_msteams import Card, MSTeamsResource
        from dagster_msteams.adaptive_card import AdaptiveCard

        client = MSTeamsResource(hook_url=self.teams_webhook, timeout=10).get_client()
        card = Card() if client.is_legacy_webhook() else AdaptiveCard()  # as dagster-msteams' own sensor
        for line in [f"**{alert.title}**", *filter(None, alert.lines)]:
            card.add_attachment(text_message=line)
        if alert.link:
            card.add_attachment(text_message=f"[Open in Dagster]({alert.link})")
        # a top-level text too: a Slack-style incoming webhook set here (as before the card) still shows it
        return client.post_message({**card.payload, "text": alert.text})

    def _slack(self, alert) -> bool:
        if not self.slack_token:
            return False
        from dagster_slack import SlackResource

        client = SlackResource(token=self.slack_token).get_client()
        if self.slack_api_url:
            client.base_url = self.slack_api_url.rstrip("/") + "/"
        client.timeout = 10
        return bool(client.chat_postMessage(channel=self.slack_channel, text=alert.text)["ok"])


def _alerts(s) -> AlertsResource:
    # secrets as EnvVar: the Dagster UI shows the variable's name, not the webhook or the token
    return AlertsResource(
        teams_webhook=dg.EnvVar("INVENTORY_PIPELINE_ALERT_WEBHOOK") if s.alert_webhook else None,
        slack_token=dg.EnvVar("INVENTORY_PIPELINE_ALERT_SLACK_TOKEN") if s.alert_slack_token else None,
        slack_channel=s.alert_slack_channel,
        slack_api_url=s.alert_slack_api_url,
        review_queue_threshold=s.alert_review_queue,
    )


def default_resources() -> dict:
    s = settings()
    return {
        "landing": LandingZoneResource(uri=s.landing_uri, s3_endpoint_url=s.s3_endpoint_url),
        "warehouse": WarehouseResource(root=str(s.warehouse_dir)),
        "policy": PolicyResource(path=str(s.policy_path)),
        "mlflow": MlflowResource(
            tracking_uri=s.mlflow_tracking_uri, artifact_root=s.mlflow_artifact_root, ui_url=s.mlflow_ui_url
        ),
        "forecast_engine": ForecastEngineResource(
            engine=s.forecast_engine, dask_scheduler=s.dask_scheduler, n_jobs=s.forecast_jobs
        ),
        "explainer": ExplainerResource(
            bedrock_model_id=s.bedrock_model_id, region=s.bedrock_region, endpoint_url=s.bedrock_endpoint_url
        ),
        "outbox": OutboxResource(uri=s.outbox_uri, s3_endpoint_url=s.s3_endpoint_url),
        "alerts": _alerts(s),
    }
