"""demand_forecast asset: calls core.forecasting, logs the run to MLflow, attaches metadata."""

import dagster as dg
import pandas as pd

from ..contracts.outputs import DemandForecast
from ..core.forecasting import backtest, forecast_config, forecast_demand
from ..core.plots import plot_forecasts
from ..core.tracking import fingerprint, log_run
from ._common import contract_check, contract_spec, model_key, preview
from .partitions import daily_partitions
from .resources import MlflowResource, PolicyResource, WarehouseResource


@dg.asset(
    partitions_def=daily_partitions,
    group_name="decisions",
    deps=[model_key("fct_daily_demand")],
    check_specs=[contract_spec("demand_forecast", DemandForecast)],
    kinds={"statsforecast", "mlflow"},
    description="Probabilistic daily demand per store x SKU for days D+1..D+30 (mean, p10-p99).",
)
def demand_forecast(context: dg.AssetExecutionContext, warehouse: WarehouseResource, policy: PolicyResource,
                    mlflow: MlflowResource):
    d = context.partition_key
    pol = policy.load()
    cfg = forecast_config(pol)
    wh = warehouse.get()
    start = (pd.Timestamp(d) - pd.Timedelta(days=cfg.history_days)).date().isoformat()
    history = wh.read_model(
        "select location_id, sku_id, date, units_sold, is_stockout from marts.fct_daily_demand "
        "where date <= cast(? as date) and date > cast(? as date) order by location_id, sku_id, date", [d, start])
    context.log.info(f"forecasting {history.groupby(['location_id', 'sku_id']).ngroups} series from {len(history)} rows")
    fc = forecast_demand(history, d, cfg)
    metrics = backtest(history, d, cfg, horizon=14)
    classes = fc.drop_duplicates(["location_id", "sku_id"])["demand_class"].value_counts().to_dict()
    # the version is what made the forecast (configuration, policy, data), never when it ran:
    # re-running the partition yields the same version, the same MLflow run and the same outbox
    version = "demand_forecast/" + fingerprint(cfg, pol.tag, history)
    plot = plot_forecasts(history, fc, wh.root / "plots" / "demand_forecast" / f"{d}.png")
    run_id = log_run(
        mlflow.tracking_uri, mlflow.artifact_root, mlflow.experiment, run_name=f"demand_forecast {d}",
        params={"plan_date": d, "horizon_days": cfg.horizon_days, "history_days": cfg.history_days,
                "model_smooth": f"SeasonalNaive({cfg.season_length})", "model_intermittent": "CrostonSBA+conformal",
                "model_new": "PoissonMean", "intermittent_adi": cfg.intermittent_adi, "policy_version": pol.tag},
        metrics={**metrics, **{f"series_{k}": v for k, v in classes.items()}, "series": sum(classes.values())},
        artifacts=[plot], tags={"dagster_run_id": context.run_id, "partition": d}, version=version,
    )
    fc["model_version"] = version
    wh.write("demand_forecast", fc, d)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(fc), "series_by_class": classes, "model_version": version,
            "mlflow_run_id": run_id, "mlflow_tracking_uri": mlflow.tracking_uri,
            **{k: round(v, 4) for k, v in metrics.items()},
            "plot": dg.MetadataValue.path(str(plot)), "preview": preview(fc),
        },
        check_results=[contract_check("output_contract", DemandForecast, fc)],
    )
