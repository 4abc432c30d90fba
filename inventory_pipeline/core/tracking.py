"""MLflow tracking for the forecast stage (plain Python; the shell passes URIs in)."""

from __future__ import annotations

from pathlib import Path


def fingerprint(*parts) -> str:
    """A short, stable hash of data frames and plain values: what a model version is made of."""
    import hashlib

    import pandas as pd

    h = hashlib.sha256()
    for p in parts:
        if isinstance(p, pd.DataFrame):
            h.update(pd.util.hash_pandas_object(p, index=False).to_numpy().tobytes())
            h.update("|".join(map(str, p.columns)).encode())
        else:
            h.update(repr(p).encode())
    return h.hexdigest()[:12]


def log_run(
    tracking_uri: str,
    artifact_root: str,
    experiment: str,
    run_name: str,
    params: dict,
    metrics: dict,
    artifacts: list[str | Path] = (),
    tags: dict | None = None,
    version: str | None = None,
) -> str:
    """Log one run and return its id. Creates the experiment (with its artifact root) if needed.

    With `version` (a deterministic model version: configuration + data fingerprint), a run
    already logged for that version is reused, so re-running a partition adds no duplicate run."""
    import mlflow

    if tracking_uri.startswith("sqlite:///"):
        Path(tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(tracking_uri)
    client = mlflow.MlflowClient()
    exp = client.get_experiment_by_name(experiment)
    exp_id = exp.experiment_id if exp else client.create_experiment(experiment, artifact_location=Path(artifact_root).resolve().as_uri())
    if version:
        found = client.search_runs([exp_id], filter_string=f"tags.model_version = '{version}'", max_results=1)
        if found:
            return found[0].info.run_id
        tags = {**(tags or {}), "model_version": version}
    with mlflow.start_run(experiment_id=exp_id, run_name=run_name, tags=tags or {}) as run:
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v == v})  # drop NaN
        for a in artifacts:
            mlflow.log_artifact(str(a))
        return run.info.run_id
