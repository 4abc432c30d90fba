"""Demand forecast (core): probabilistic daily forecasts per store x SKU with statsforecast.

First version (issue #4 deepens it):
- series: daily units sold per store x SKU from the plan date back `history_days`, gaps inside a
  carried period filled with 0; series no longer carried on the plan date are dropped;
- classes by average demand interval (ADI = days / non-zero days): `smooth` (ADI <= cut-off)
  get SeasonalNaive(7) with its native intervals, `intermittent` get Croston SBA with conformal
  intervals; `new` items (history shorter than the conformal windows need) get the mean of their
  short history with Poisson quantiles;
- quantiles p10/p50/p90/p95/p99 come from the central intervals 80/90/98 (p50 = point forecast),
  clipped at zero and made monotone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

QUANTILES = ("p10", "p50", "p90", "p95", "p99")
FORECAST_COLUMNS = ["location_id", "sku_id", "date", "horizon", "mean", *QUANTILES, "model", "demand_class"]


@dataclass(frozen=True)
class ForecastConfig:
    horizon_days: int = 30
    history_days: int = 364
    season_length: int = 7
    intermittent_adi: float = 1.32
    conformal_windows: int = 2
    n_jobs: int = 1

    @property
    def min_history(self) -> int:
        """Shortest series the statistical models take (conformal windows need this much)."""
        return self.conformal_windows * self.horizon_days + self.season_length + 1


def forecast_config(policy) -> ForecastConfig:
    """The forecast configuration a versioned decision policy sets (used by the asset and the twin)."""
    f = policy.forecast
    return ForecastConfig(horizon_days=f.horizon_days, history_days=f.history_days, season_length=f.season_length,
                          intermittent_adi=f.intermittent_adi)


def prepare_series(history: pd.DataFrame, plan_date: str, cfg: ForecastConfig) -> pd.DataFrame:
    """`history`: location_id, sku_id, date, units_sold (one row per carried day).

    Returns statsforecast's long format (unique_id, ds, y) plus location_id, sku_id; only series
    still carried on `plan_date`; each series dense from its first carried day to `plan_date`.
    """
    end = pd.Timestamp(plan_date)
    start = end - pd.Timedelta(days=cfg.history_days - 1)
    h = history.loc[(history["date"] >= start) & (history["date"] <= end),
                    ["location_id", "sku_id", "date", "units_sold"]].copy()
    h["date"] = pd.to_datetime(h["date"])
    last = h.groupby(["location_id", "sku_id"])["date"].transform("max")
    h = h[last == end]
    if h.empty:
        return pd.DataFrame(columns=["unique_id", "ds", "y", "location_id", "sku_id"])
    h["unique_id"] = h["location_id"].astype(str) + "|" + h["sku_id"].astype(str)
    first = h.groupby("unique_id")["date"].min()
    # dense grid per series from its first day to the plan date (vectorised)
    lengths = ((end - first).dt.days + 1).to_numpy()
    uid = np.repeat(first.index.to_numpy(), lengths)
    offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    ds = np.repeat(first.to_numpy(), lengths) + offsets.astype("timedelta64[D]")
    grid = pd.DataFrame({"unique_id": uid, "ds": ds})
    out = grid.merge(h.rename(columns={"date": "ds", "units_sold": "y"})[["unique_id", "ds", "y"]],
                     on=["unique_id", "ds"], how="left")
    out["y"] = out["y"].fillna(0).astype(float)
    ids = out["unique_id"].str.split("|", n=1, expand=True)
    out["location_id"], out["sku_id"] = ids[0], ids[1]
    return out


def classify(series: pd.DataFrame, cfg: ForecastConfig) -> pd.DataFrame:
    """Demand class per series: new (too short), intermittent (ADI above cut-off) or smooth."""
    g = series.groupby("unique_id")["y"]
    n = g.size()
    nonzero = (series["y"] > 0).groupby(series["unique_id"]).sum()
    adi = n / nonzero.clip(lower=1)
    cls = np.where(n < cfg.min_history, "new", np.where(adi > cfg.intermittent_adi, "intermittent", "smooth"))
    return pd.DataFrame({"unique_id": n.index, "n_obs": n.to_numpy(), "adi": adi.to_numpy(), "demand_class": cls})


def _quantiles_from_intervals(fc: pd.DataFrame, model: str) -> pd.DataFrame:
    out = pd.DataFrame({"unique_id": fc["unique_id"], "ds": fc["ds"], "mean": fc[model]})
    out["p50"] = fc[model]
    out["p10"] = fc[f"{model}-lo-80"]
    out["p90"] = fc[f"{model}-hi-80"]
    out["p95"] = fc[f"{model}-hi-90"]
    out["p99"] = fc[f"{model}-hi-98"]
    out["model"] = model
    return out


def _statsforecast(series: pd.DataFrame, model, name: str, cfg: ForecastConfig) -> pd.DataFrame:
    from statsforecast import StatsForecast

    sf = StatsForecast(models=[model], freq="D", n_jobs=cfg.n_jobs)
    fc = sf.forecast(h=cfg.horizon_days, df=series[["unique_id", "ds", "y"]], level=[80, 90, 98])
    return _quantiles_from_intervals(fc.reset_index() if "unique_id" not in fc.columns else fc, name)


def _new_item_forecast(series: pd.DataFrame, plan_date: str, cfg: ForecastConfig) -> pd.DataFrame:
    """Short histories: the mean of the days seen so far, Poisson quantiles (documented fallback)."""
    rate = series.groupby("unique_id")["y"].mean()
    days = pd.date_range(pd.Timestamp(plan_date) + pd.Timedelta(days=1), periods=cfg.horizon_days, freq="D")
    uid = np.repeat(rate.index.to_numpy(), len(days))
    lam = np.repeat(rate.to_numpy(), len(days))
    out = pd.DataFrame({"unique_id": uid, "ds": np.tile(days.to_numpy(), len(rate)), "mean": lam})
    for q, p in zip(QUANTILES, (0.10, 0.50, 0.90, 0.95, 0.99)):
        out[q] = stats.poisson.ppf(p, np.maximum(lam, 1e-9)).astype(float)
    out["model"] = "PoissonMean"
    return out


def forecast_demand(history: pd.DataFrame, plan_date: str, cfg: ForecastConfig = ForecastConfig()) -> pd.DataFrame:
    """Forecast days plan_date+1 .. plan_date+horizon for every store x SKU carried on plan_date."""
    from statsforecast.models import CrostonSBA, SeasonalNaive
    from statsforecast.utils import ConformalIntervals

    series = prepare_series(history, plan_date, cfg)
    if series.empty:
        return pd.DataFrame(columns=FORECAST_COLUMNS)
    classes = classify(series, cfg)
    series = series.merge(classes[["unique_id", "demand_class"]], on="unique_id")
    parts = []
    smooth = series[series["demand_class"] == "smooth"]
    if len(smooth):
        parts.append(_statsforecast(smooth, SeasonalNaive(season_length=cfg.season_length), "SeasonalNaive", cfg))
    inter = series[series["demand_class"] == "intermittent"]
    if len(inter):
        ci = ConformalIntervals(n_windows=cfg.conformal_windows, h=cfg.horizon_days)
        parts.append(_statsforecast(inter, CrostonSBA(prediction_intervals=ci), "CrostonSBA", cfg))
    new = series[series["demand_class"] == "new"]
    if len(new):
        parts.append(_new_item_forecast(new, plan_date, cfg))
    fc = pd.concat(parts, ignore_index=True)
    q = fc[list(QUANTILES)].clip(lower=0).to_numpy()
    fc[list(QUANTILES)] = np.maximum.accumulate(q, axis=1)  # monotone quantiles
    fc["mean"] = fc["mean"].clip(lower=0)
    fc = fc.merge(classes[["unique_id", "demand_class"]], on="unique_id")
    ids = fc["unique_id"].str.split("|", n=1, expand=True)
    fc["location_id"], fc["sku_id"] = ids[0], ids[1]
    fc["date"] = pd.to_datetime(fc["ds"])
    fc["horizon"] = (fc["date"] - pd.Timestamp(plan_date)).dt.days.astype(int)
    return fc[FORECAST_COLUMNS].sort_values(["location_id", "sku_id", "horizon"], ignore_index=True)


def wape(actual: np.ndarray, forecast: np.ndarray) -> float:
    """Weighted absolute percentage error: sum|a - f| / sum a (nan when nothing was sold)."""
    a, f = np.asarray(actual, float), np.asarray(forecast, float)
    total = np.abs(a).sum()
    return float(np.abs(a - f).sum() / total) if total > 0 else float("nan")


def backtest(history: pd.DataFrame, plan_date: str, cfg: ForecastConfig, horizon: int = 14) -> dict:
    """Forecast from plan_date - horizon and score the last `horizon` days (sales as actuals).

    A single rolling origin: cheap enough for every run; issue #4 adds full cross-validation.
    """
    origin = (pd.Timestamp(plan_date) - pd.Timedelta(days=horizon)).date().isoformat()
    fc = forecast_demand(history, origin, cfg)
    if fc.empty:
        return {}
    fc = fc[fc["horizon"] <= horizon]
    act = history[["location_id", "sku_id", "date", "units_sold"]].copy()
    act["date"] = pd.to_datetime(act["date"])
    m = fc.merge(act, on=["location_id", "sku_id", "date"], how="left").fillna({"units_sold": 0})
    out = {f"wape_h{horizon}": wape(m["units_sold"], m["mean"])}
    inside = (m["units_sold"] >= m["p10"]) & (m["units_sold"] <= m["p90"])
    out["coverage_p10_p90"] = float(inside.mean())
    for cls, g in m.groupby("demand_class"):
        out[f"wape_h{horizon}_{cls}"] = wape(g["units_sold"], g["mean"])
    return out
