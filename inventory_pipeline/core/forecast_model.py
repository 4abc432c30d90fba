"""The forecast stage's MLflow pyfunc, `DemandForecaster`: its own module because it subclasses
MLflow's PythonModel, and importing MLflow costs ~1.3 s that the code location only pays when a
model is logged or loaded (core/tracking.py imports it then)."""

from __future__ import annotations

import warnings as _warnings

from mlflow.pyfunc import PythonModel

with _warnings.catch_warnings():
    # MLflow asks for type hints on predict to infer a signature; ours is logged explicitly
    _warnings.simplefilter("ignore", UserWarning)

    class DemandForecaster(PythonModel):
        """MLflow pyfunc: reproduces the forecast from the logged configuration.

        model_config = {"forecast_config": ForecastSettings.to_dict()} (optionally "selection": {class: model}
        to skip the model choice).
        predict(model_input, params): `model_input` is the history (location_id, sku_id, date,
        units_sold, is_stockout, on_promo and optionally category); params `plan_date` (YYYY-MM-DD),
        `calendar` (JSON list of {"date", "event"}) and `selection` (JSON {class: model}: the model
        choice a plan reused, its forecast_run's `selection`; empty = choose by CV). Returns the
        forecast frame of the stage.
        """

        def load_context(self, context):  # noqa: D401
            self.config = dict(context.model_config or {})

        def predict(self, context, model_input, params=None):
            import json as _json

            import pandas as pd

            from .forecasting import ForecastSettings, forecast_demand

            cfg = ForecastSettings.from_dict(self.config["forecast_config"])
            params = params or {}
            hist = model_input.copy()
            hist["date"] = pd.to_datetime(hist["date"])
            cats = hist.drop_duplicates("sku_id").set_index("sku_id")["category"] if "category" in hist else None
            cal = pd.DataFrame(_json.loads(params["calendar"])) if params.get("calendar") else None
            chosen = _json.loads(params["selection"]) if params.get("selection") else self.config.get("selection")
            return forecast_demand(hist, params["plan_date"], cfg, cats, cal, selection=chosen)
