"""MLflow tracking for the forecast stage (plain Python; the shell passes URIs in)."""

from __future__ import annotations

from pathlib import Path


def log_run(
    tracking_uri: str,
    artifact_root: str,
    experiment: str,
    run_name: str,
    params: dict,
    metrics: dict,
    artifacts: list[str | Path] = (),
    tags: dict | None = None,
) -> str:
    """Log one run and return its id. Creates the experiment (with its artifact root) if needed."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    client = mlflow.MlflowClient()
    exp = client.get_experiment_by_name(experiment)
    exp_id = exp.experiment_id if exp else client.create_experiment(experiment, artifact_location=Path(artifact_root).resolve().as_uri())
    with mlflow.start_run(experiment_id=exp_id, run_name=run_name, tags=tags or {}) as run:
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v == v})  # drop NaN
        for a in artifacts:
            mlflow.log_artifact(str(a))
        return run.info.run_id
