"""demand_forecast asset: calls core.forecasting, runs the MLflow promotion gate, attaches metadata.

Each materialisation: the policy's forecast configuration (the candidate) is cross-validated on
the partition's history: over every candidate model when the plan chooses afresh, over the models
an earlier plan chose when it reuses that choice (policy forecast.reselect_every_days,
core.forecasting.reusable_selection; forecast_run and the MLflow run record which). If the
registry's `champion` is a different configuration it is cross-validated on the same window; the
gate (core.stages.FORECAST.serve) decides which one serves. The candidate is registered as a
version of `demand_forecaster` (once per configuration) and gets the alias `champion` when
promoted, `challenger` otherwise. One MLflow run per materialisation (reused when the partition
is re-run on the same data).
"""

import dataclasses
import json

import dagster as dg
import pandas as pd

from ..contracts.outputs import DemandForecast
from ..core.forecast_global_fits import stored_global_fits
from ..core.forecasting import ForecastSettings, drift_statistics
from ..core.plots import plot_cv_once, plot_forecasts
from ..core.sources import FORECAST_HISTORY_COLUMNS, WarehouseSource
from ..core.stages import FORECAST, ServedForecast
from ..core.tracking import fingerprint, log_run, register_forecaster, registry_version, set_alias
from ._common import contract_check, contract_spec, model_key, operational, preview
from .partitions import daily_partitions
from .resources import ForecastEngineResource, MlflowResource, PolicyResource, WarehouseResource

GATE = "promotion_gate"
DRIFT = "forecast_drift"


# the candidate's CV settings: the champion is judged on the same window as the candidate
SAME_WINDOW = (
    "cv_windows",
    "cv_horizon",
    "cv_sample_series",
    "seed",
    "horizon_days",
    "engine",
    "dask_scheduler",
    "dask_partitions",
    "n_jobs",
)


def _champion_config(champ: dict, cfg: ForecastSettings) -> ForecastSettings:
    """The registry champion's configuration with the candidate's CV window and engine settings."""
    return ForecastSettings.from_dict({**champ["config"], **{k: getattr(cfg, k) for k in SAME_WINDOW}}, base=cfg)


def _drift(wh, d: str, pol) -> dg.AssetCheckResult:
    """Realised demand of the last `drift_window_days` against the forecast made just before them."""
    f = pol.forecast
    origin = (pd.Timestamp(d) - pd.Timedelta(days=f.drift_window_days)).date().isoformat()
    if not wh.exists("demand_forecast", origin):
        return dg.AssetCheckResult(
            check_name=DRIFT,
            passed=True,
            metadata={"compared_with": "nothing yet"},
            description=f"no forecast for plan date {origin} to compare with yet",
        )
    then = wh.read("demand_forecast", origin)
    then = then[then["horizon"] <= f.drift_window_days]
    actual = WarehouseSource(wh).history(d, f.drift_window_days, FORECAST_HISTORY_COLUMNS)
    st = drift_statistics(then, actual, f.drift_warn_bias, f.drift_fail_bias, f.drift_tracking_signal)
    worst = "fail" if (st["status"] == "fail").any() else ("warn" if (st["status"] == "warn").any() else "ok")
    return dg.AssetCheckResult(
        check_name=DRIFT,
        passed=worst == "ok",
        severity=dg.AssetCheckSeverity.ERROR if worst == "fail" else dg.AssetCheckSeverity.WARN,
        metadata={"compared_with": origin, "by_class": dg.MetadataValue.md(st.round(4).to_markdown(index=False))},
        description=f"forecast of {origin} vs realised demand: bias per class "
        + ", ".join(f"{r.demand_class} {r.bias:+.1%}" for r in st.itertuples()),
    )


@dg.multi_asset(
    name="demand_forecast",
    partitions_def=daily_partitions,
    specs=[
        dg.AssetSpec(
            "demand_forecast",
            group_name="decisions",
            deps=[
                model_key("fct_daily_demand"),
                model_key("dim_products"),
                model_key("stg_calendar"),
                model_key("fct_promotion_plan"),
            ],
            kinds={"statsforecast", "mlflow"},
            description="Probabilistic daily demand per store x SKU for days D+1..D+30 (mean, p025-p99), "
            "censoring-corrected, segmented by demand class, model chosen by rolling-origin CV.",
        ),
        dg.AssetSpec(
            "forecast_run",
            group_name="decisions",
            deps=["demand_forecast"],
            kinds={"mlflow"},
            description="Which registered forecaster version served the plan and why (the promotion gate), "
            "with its MLflow run, CV WAPE and interval coverage: the plan's forecast decision.",
        ),
    ],
    check_specs=[
        contract_spec("demand_forecast", DemandForecast),
        dg.AssetCheckSpec(
            GATE,
            asset="demand_forecast",
            description="the policy's forecast configuration serves only if its CV WAPE is not worse "
            "than the registry champion's on the same window",
        ),
        dg.AssetCheckSpec(
            DRIFT,
            asset="demand_forecast",
            description="realised demand vs the forecast made before it: bias per demand class "
            "(warns, fails past the policy threshold)",
        ),
    ],
    can_subset=True,
)
@operational
def demand_forecast(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    policy: PolicyResource,
    mlflow: MlflowResource,
    forecast_engine: ForecastEngineResource,
):
    d = context.partition_key
    pol = policy.load()
    cfg = FORECAST.config(
        pol, engine=forecast_engine.engine, dask_scheduler=forecast_engine.dask_scheduler, n_jobs=forecast_engine.n_jobs
    )
    wh = warehouse.get()
    inputs = FORECAST.read(WarehouseSource(wh), d, cfg)
    hist = inputs.history
    context.log.info(f"forecasting from {len(hist):,} history rows")  # the series count follows the run
    source = WarehouseSource(wh)
    last = source.last_forecast_run(d)
    reuse, selected_on = FORECAST.model_choice(last, d, cfg)
    context.log.info(
        f"model choice reused from the plan of {selected_on}: {reuse}"
        if reuse
        else f"choosing models afresh (CV over every candidate; every {cfg.reselect_every_days} days)"
    )
    fits = FORECAST.carried_fits(last, source.kept_fits(last), cfg)
    # the global model's families keep their trained models by the same cadence
    kept_global = source.kept_global_fits(last) if cfg.family != "statsforecast" else None
    global_fits = FORECAST.carried_fits(last, kept_global, cfg)
    champ = registry_version(mlflow.tracking_uri, "champion")
    # the CV is reused only where the gate needs none: against another champion both are judged
    # on this plan's window
    gate_free = champ is None or champ["config_fingerprint"] == cfg.fingerprint()
    cv_on = FORECAST.cv_reuse(last, d, cfg, reuse is not None) if gate_free else None
    cv_state = source.cv_state(last) if cv_on else None
    cand = FORECAST.run(
        inputs,
        d,
        cfg,
        selection=reuse,
        progress=context.log.info,
        fits=fits,
        cv_state=cv_state,
        global_fits=global_fits,
    )
    served = _serve(context, cand, inputs, d, cfg, pol, champ)
    cv_from = cand.cv_on or d
    choice = ModelChoice(reuse is None, selected_on, **_fitting(cand, d), cv_on=cv_from, cv_reused=cv_from != d)
    context.log.info(f"{len(cand.classes):,} series; {choice.describe_fitting()}; {choice.describe_cv()}")
    run_id, artifacts = _log_run(context, served, inputs, d, cfg, pol, mlflow, wh, choice)
    model_version, candidate_version = _register(served, inputs, run_id, cfg, mlflow)
    fc = served.serving.forecast.assign(model_version=model_version)
    run = _forecast_run(served, model_version, run_id, d, choice)
    wh.write("demand_forecast", fc, d)
    wh.write("forecast_run", run, d)  # what the decision log records as the plan's forecast decision
    wh.write("forecast_fits", cand.fits, d)  # the parameters the next plans run forward (refit_every_days)
    wh.write("forecast_global_fits", stored_global_fits(cand.global_fits, d), d)  # ... the global models they reuse
    state = cand.cv_state()  # ... and the cross-validation they reuse
    wh.write("forecast_calibration", state.calibration_table(), d)
    wh.write("forecast_cv", state.cv, d)
    wh.write("forecast_cv_points", state.points, d)
    gate = dg.AssetCheckResult(
        check_name=GATE,
        passed=bool(served.promoted),
        severity=dg.AssetCheckSeverity.WARN,
        description=served.reason,
        metadata={
            "candidate_cv_wape": served.candidate.metrics.get("cv_wape", float("nan")),
            "champion_cv_wape": served.champion_cv_wape if served.champion_cv_wape is not None else float("nan"),
            "serving": model_version,
            "candidate_version": f"demand_forecaster/v{candidate_version}",
        },
    )
    return (
        dg.MaterializeResult(
            asset_key="demand_forecast",
            metadata=_forecast_metadata(served, fc, run_id, model_version, artifacts, mlflow, choice),
            check_results=[contract_check("output_contract", DemandForecast, fc), gate, _drift(wh, d, pol)],
        ),
        dg.MaterializeResult(
            asset_key="forecast_run",
            metadata={
                "dagster/row_count": len(run),
                "model_version": model_version,
                "gate": served.reason,
                "model_choice": choice.describe(),
                "parameters": choice.describe_fitting(),
            },
        ),
    )


@dataclasses.dataclass(frozen=True)
class ModelChoice:
    """Whether this plan chose its models afresh (the CV over every candidate) or reused the
    choice made on `selected_on` (policy forecast.reselect_every_days)."""

    reselected: bool
    selected_on: str
    # the chosen models' parameters (core.forecast_fits, policy forecast.refit_every_days): series run
    # forward with parameters kept from `estimated_on` (the oldest such day), series estimated afresh
    forwarded: int = 0
    estimated: int = 0
    estimated_on: str = ""
    cv_on: str = ""  # the plan whose cross-validation gave the intervals and CV metrics
    cv_reused: bool = False  # ... an earlier plan's (refit_every_days)
    # the global model (families mlforecast, combined): category models kept from `global_trained_on`
    # (the oldest such day) and models trained on this plan (core.forecast_global_fits)
    global_reused: int = 0
    global_trained: int = 0
    global_trained_on: str = ""

    def describe(self) -> str:
        return "chosen afresh (CV over every candidate)" if self.reselected else f"reused from {self.selected_on}"

    def describe_cv(self) -> str:
        if self.cv_reused:
            return f"intervals and CV metrics of the cross-validation of {self.cv_on}"
        return "intervals calibrated by this plan's cross-validation"

    def describe_fitting(self) -> str:
        if not self.forwarded:
            text = f"parameters estimated for {self.estimated:,} series"
        else:
            text = (
                f"parameters of {self.forwarded:,} series run forward from {self.estimated_on}, "
                f"{self.estimated:,} series estimated"
            )
        return text + self.describe_global()

    def describe_global(self) -> str:
        if not (self.global_reused or self.global_trained):
            return ""
        if not self.global_reused:
            return f"; global model trained for {self.global_trained} categories"
        return (
            f"; global model of {self.global_reused} categories kept from {self.global_trained_on}, "
            f"{self.global_trained} trained"
        )


def _numbers(metrics: dict) -> dict:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}


def _fitting(res, d: str) -> dict:
    """ModelChoice's fitting fields of a forecast result."""
    f = res.fitting
    carried = res.fits[res.fits["fitted_on"] < pd.Timestamp(d)] if len(res.fits) else res.fits
    on = pd.Timestamp(carried["fitted_on"].min()).date().isoformat() if len(carried) else d
    g = res.global_fits
    g_on = pd.Timestamp(g["fitted_on"].min()).date().isoformat() if len(g) else ""
    return {
        "forwarded": int(f.get("forwarded", 0)),
        "estimated": int(f.get("estimated", 0)),
        "estimated_on": on,
        "global_reused": int(f.get("global_reused", 0)),
        "global_trained": int(f.get("global_trained", 0)),
        "global_trained_on": g_on,
    }


def _serve(context, cand, inputs, d: str, cfg: ForecastSettings, pol, champ: dict | None) -> ServedForecast:
    """The promotion gate against the registry's champion (`champ`), cross-validated on the same
    window when it is a different configuration."""
    champ_res = None
    if champ and champ["config_fingerprint"] != cfg.fingerprint():
        context.log.info(f"cross-validating champion v{champ['version']} on the same window")
        ccfg = _champion_config(champ, cfg)
        champ_res = FORECAST.run(inputs, d, ccfg, progress=lambda m: context.log.info(f"champion {m}"))
    served = FORECAST.serve(cand, champ_res, pol.forecast.promotion_tolerance)
    if champ and champ_res is None:
        served = dataclasses.replace(served, reason=f"the policy's configuration is the champion (v{champ['version']})")
    return dataclasses.replace(served, champion_version=champ["version"] if champ else None)


def _log_run(context, served: ServedForecast, inputs, d: str, cfg: ForecastSettings, pol, mlflow, wh, choice):
    """One MLflow run per materialisation (reused when the partition re-runs on the same data):
    parameters, CV metrics, the forecast and CV plots and the CV table as artifacts."""
    serving, hist = served.serving, inputs.history
    data = fingerprint(hist)  # what the model version was made of (one pass over the history)
    plots = wh.root / "plots" / "demand_forecast"
    artifacts = [
        plot_forecasts(hist, serving.forecast, plots / f"{d}.png"),
        plot_cv_once(serving.cv_points, plots / f"{d}_cv.png", drawn=plots / "cv"),
    ]
    cv_csv = plots / f"{d}_cv.csv"
    serving.cv.to_csv(cv_csv, index=False)
    classes = _classes(serving)
    cens = serving.adjustments.censoring
    run_id = log_run(
        mlflow.tracking_uri,
        mlflow.artifact_root,
        mlflow.experiment,
        run_name=f"demand_forecast {d}",
        params={
            "plan_date": d,
            "horizon_days": cfg.horizon_days,
            "reported_horizons": pol.forecast.reported_horizons,
            "history_days": cfg.history_days,
            "data_fingerprint": data,
            "config_fingerprint": serving.config.fingerprint(),
            "policy_version": pol.tag,
            "selection_metric": serving.config.selection_metric,
            **{f"model_{k}": v for k, v in serving.selection.items()},
            "gate": served.reason,
            "model_choice": choice.describe(),
            "reselected": choice.reselected,
            "selected_on": choice.selected_on,
            "parameters": choice.describe_fitting(),
            "parameters_estimated_on": choice.estimated_on,
            **({"global_models_trained_on": choice.global_trained_on} if choice.global_trained_on else {}),
            "refit_every_days": cfg.refit_every_days,
            "cv_on": choice.cv_on,
            "cross_validation": choice.describe_cv(),
        },
        metrics={
            **_numbers(serving.metrics),
            **{f"series_{k}": v for k, v in classes.items()},
            "series": sum(classes.values()),
            "censored_share_corrected": cens.get("corrected_share", 0.0),
            "censored_units_added": cens.get("units_added", 0.0),
            **({"champion_cv_wape": served.champion_cv_wape} if served.champion_cv_wape is not None else {}),
            "candidate_cv_wape": served.candidate.metrics.get("cv_wape", float("nan")),
            "series_forwarded": choice.forwarded,
            "series_estimated": choice.estimated,
            **(
                {"global_models_reused": choice.global_reused, "global_models_trained": choice.global_trained}
                if choice.global_reused or choice.global_trained
                else {}
            ),
        },
        artifacts=[*artifacts, cv_csv],
        tags={"dagster_run_id": context.run_id, "partition": d},
        version=f"{serving.config.fingerprint()}/{data}/{pol.tag}",
    )
    return run_id, artifacts


def _register(served: ServedForecast, inputs, run_id: str, cfg: ForecastSettings, mlflow) -> tuple[str, str]:
    """Register the candidate (once per configuration) and move the aliases: `champion` when the
    gate promoted it, `challenger` otherwise. Returns the serving version's name and the
    candidate's registry version."""
    cand = served.candidate
    # the model's input example as the landing contract has it: string keys, not the read's categoricals
    example = inputs.history.head(20).astype({"location_id": object, "sku_id": object})
    example = example.assign(category=example["sku_id"].map(inputs.categories))
    version = register_forecaster(
        mlflow.tracking_uri,
        run_id,
        cfg.to_dict(),
        cand.metrics.get("cv_wape", float("nan")),
        cfg.fingerprint(),
        example,
        cand.forecast.head(20),
    )
    set_alias(mlflow.tracking_uri, "champion" if served.promoted else "challenger", version)
    return f"demand_forecaster/v{version if served.promoted else served.champion_version}", version


def _classes(serving) -> dict:
    return serving.classes["demand_class"].value_counts().to_dict() if len(serving.classes) else {}


def _forecast_run(served: ServedForecast, model_version: str, run_id: str, d: str, choice) -> pd.DataFrame:
    """The plan's forecast decision; with the candidate's model choice, which the next plans reuse."""
    m = served.serving.metrics
    return pd.DataFrame(
        [
            {
                "plan_date": pd.Timestamp(d),
                "model_version": model_version,
                "mlflow_run_id": run_id,
                "series": int(sum(_classes(served.serving).values())),
                "cv_wape": float(m.get("cv_wape", float("nan"))),
                "coverage_80": float(m.get("cv_coverage_80", float("nan"))),
                "promoted": bool(served.promoted),
                "gate": served.reason,
                "config_fingerprint": served.candidate.config.fingerprint(),
                "selection": json.dumps(served.candidate.selection, sort_keys=True),
                "selected_on": pd.Timestamp(choice.selected_on),
                "reselected": choice.reselected,
                "series_forwarded": choice.forwarded,  # run forward with kept parameters (refit_every_days)
                "parameters_estimated_on": pd.Timestamp(choice.estimated_on),
                "cv_on": pd.Timestamp(choice.cv_on),  # the cross-validation behind cv_wape and the intervals
                "cv_metrics": json.dumps(_numbers(served.candidate.metrics), sort_keys=True),
            }
        ]
    )


def _forecast_metadata(served: ServedForecast, fc, run_id, model_version: str, artifacts, mlflow, choice) -> dict:
    serving = served.serving
    m, cens = serving.metrics, serving.adjustments.censoring
    return {
        "dagster/row_count": len(fc),
        "series_by_class": _classes(serving),
        "model_version": model_version,
        "selection": serving.selection,
        "model_choice": choice.describe(),
        "parameters": choice.describe_fitting(),
        "cross_validation": choice.describe_cv(),
        "gate": served.reason,
        "mlflow_run_id": run_id,
        "mlflow_run": dg.MetadataValue.url(f"{mlflow.ui_url}/#/experiments/{_experiment_id(mlflow)}/runs/{run_id}"),
        "mlflow_tracking_uri": mlflow.tracking_uri,
        **{
            k: round(m[k], 4)
            for k in ("cv_wape", "cv_bias", "cv_mase", "cv_rmsse", "cv_coverage_80", "cv_coverage_95")
            if k in m
        },
        "selection_metric": serving.config.selection_metric,
        "censoring": dg.MetadataValue.json({k: round(v, 4) if isinstance(v, float) else v for k, v in cens.items()}),
        "promo_uplift": dg.MetadataValue.json({k: round(v, 3) for k, v in serving.adjustments.promo_uplift.items()}),
        "cv_table": dg.MetadataValue.md(serving.cv.round(4).to_markdown(index=False)) if len(serving.cv) else "",
        "plot": dg.MetadataValue.path(str(artifacts[0])),
        "cv_plot": dg.MetadataValue.path(str(artifacts[1])),
        "preview": preview(fc),
    }


def _experiment_id(mlflow_res: MlflowResource) -> str:
    import mlflow

    mlflow.set_tracking_uri(mlflow_res.tracking_uri)
    exp = mlflow.MlflowClient().get_experiment_by_name(mlflow_res.experiment)
    return exp.experiment_id if exp else "0"
