"""Fitted model parameters carried between refits (policy `forecast.refit_every_days`).

Estimating an exponential-smoothing model is an optimisation (AutoETS: ~12 ms per series here,
the largest part of the forecast stage at M5 scale); running a model with known parameters over a
series is a filter (~0.05 ms). On a refit day the stage estimates each chosen model and keeps, per
series, what statsforecast's `forward` needs: the smoothing parameters and the filtered state at the
first `refit_every_days` days of the series. On the days between it does not re-estimate: it
runs the kept parameters over the day's series, starting from the kept state of that series' first
day, so the new days' demand updates the level and the seasonal states (statsforecast's `forward`,
which re-runs the ETS filter with fixed parameters) while alpha, gamma and the model form stay as
estimated. A series whose history window moved by k days starts from the state after the k days
it dropped, which is what the filter over the longer series would have reached: the reused
forecast equals `AutoETS.fit(series of the refit day).forward(that series + the new days)`
(tested).

Only models with a `forward` in statsforecast are carried (`FORWARD_MODELS`); the others are cheap
to fit (window averages, Croston's family, simple exponential smoothing) and are fit every day.
A series without a usable kept fit (new in its class, model changed, fit too old, window moved
further than the kept states reach) is estimated as on a refit day.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .dates import as_dates

FORWARD_MODELS = ("AutoETS",)
FIT_COLUMNS = [
    "location_id",
    "sku_id",
    "model",
    "fitted_on",  # the plan date the parameters were estimated on
    "start",  # the first day of the series they were estimated on
    "components",  # ETS form, e.g. "ANAN" (error, trend, season, damped)
    "m",
    "n_params",
    "nstate",
    "alpha",
    "beta",
    "gamma",
    "phi",
    "states",  # the filtered state at the series' first days, flattened (days x nstate)
]


def empty_fits() -> pd.DataFrame:
    return pd.DataFrame(columns=FIT_COLUMNS)


def series_starts(part: pd.DataFrame) -> pd.DataFrame:
    """unique_id, location_id, sku_id (as str), start: each series' first day in `part`."""
    g = part.groupby("unique_id", observed=True, sort=True)
    first = g[["location_id", "sku_id"]].first()
    return pd.DataFrame(
        {
            "unique_id": first.index.to_numpy(),
            "location_id": first["location_id"].astype(str).to_numpy(),
            "sku_id": first["sku_id"].astype(str).to_numpy(),
            "start": as_dates(g["ds"].min()).to_numpy(),
        }
    )


def usable_fits(
    fits: pd.DataFrame | None, starts: pd.DataFrame, model: str, plan_date: str, every_days: int
) -> pd.DataFrame:
    """The series of `starts` whose kept fit of `model` this plan runs forward: estimated fewer
    than `every_days` days before the plan, on a series that started at most as many days before
    today's as the kept states reach. Returns `starts`' columns, the fit's and `offset` (days the
    series' start moved since the fit)."""
    if fits is None or fits.empty or every_days <= 1 or model not in FORWARD_MODELS:
        return pd.DataFrame(columns=[*starts.columns, *FIT_COLUMNS[2:], "offset"])
    f = fits[fits["model"] == model]
    age = (pd.Timestamp(plan_date) - as_dates(f["fitted_on"])).dt.days
    f = f[(age >= 0) & (age < every_days)]
    j = starts.merge(f.rename(columns={"start": "fit_start"}), on=["location_id", "sku_id"], how="inner")
    j["offset"] = (as_dates(j["start"]) - as_dates(j["fit_start"])).dt.days
    kept = j["states"].map(len).to_numpy() // np.maximum(j["nstate"].to_numpy(int), 1)
    j = j[(j["offset"] >= 0) & (j["offset"].to_numpy() < kept) & _well_formed(j)]
    return j.assign(start=j["fit_start"]).drop(columns="fit_start")


def _well_formed(j: pd.DataFrame) -> np.ndarray:
    """Rows whose state width is the one their ETS form has (level, trend, m seasonal states): the
    filter is compiled code that trusts it, so a damaged table is re-estimated, not run."""
    comp = j["components"].astype(str)
    width = 1 + (comp.str[1] != "N").astype(int) + np.where(comp.str[2] != "N", j["m"].astype(int), 0)
    return (j["nstate"].astype(int) == width).to_numpy() & (j["states"].map(len) % j["nstate"].clip(lower=1) == 0)


def _bounds(uid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ids, first = np.unique(uid, return_index=True)
    return ids, first, np.append(first[1:], len(uid))


def forward(df: pd.DataFrame, carried: pd.DataFrame, h: int, future: pd.DatetimeIndex) -> pd.DataFrame:
    """Each carried series' forecast `h` days ahead: its kept parameters run over its series in
    `df` (unique_id, ds, y; sorted) from the kept state at `offset`. Returns unique_id, ds, mean."""
    from statsforecast.ets import ets_f, forecast_ets

    df = df[df["unique_id"].isin(carried["unique_id"])].sort_values(["unique_id", "ds"])
    ids, lo, hi = _bounds(df["unique_id"].to_numpy())
    y = df["y"].to_numpy(float)
    c = carried.set_index("unique_id").loc[ids]
    means = np.empty((len(ids), h))
    # a compiled filter per series, as statsforecast itself loops over series
    for i, r in enumerate(c.itertuples()):
        state = np.asarray(r.states, float).reshape(-1, int(r.nstate))[int(r.offset)]
        model = {
            "m": int(r.m),
            "components": r.components,
            "par": np.r_[r.alpha, r.beta, r.gamma, r.phi, state],
            "n_params": int(r.n_params),
            "fit": None,
        }
        means[i] = forecast_ets(ets_f(y[lo[i] : hi[i]], m=int(r.m), model=model), h=h)["mean"]
    return pd.DataFrame(
        {"unique_id": np.repeat(ids, h), "ds": np.tile(future.to_numpy(), len(ids)), "mean": means.ravel()}
    )


def kept_fits(sf, starts: pd.DataFrame, model: str, plan_date: str, every_days: int) -> pd.DataFrame:
    """What a refit keeps of `sf` (a fitted StatsForecast of one model): per series the
    parameters and the states of its first `every_days` days (FIT_COLUMNS)."""
    s = starts.set_index("unique_id").loc[np.asarray(sf.uids)]
    rows = []
    for fitted in sf.fitted_[:, 0]:
        p = fitted.model_
        par, states = np.asarray(p["par"], float), np.asarray(p["states"], float)
        # the state vector's width, not p["nstate"] (which counts the seasonal states one short)
        rows.append(
            (p["components"], int(p["m"]), int(p["n_params"]), states.shape[1], *par[:4])
            + (states[:every_days].ravel().tolist(),)
        )
    cols = ["components", "m", "n_params", "nstate", "alpha", "beta", "gamma", "phi", "states"]
    out = pd.DataFrame(rows, columns=cols)
    out.insert(0, "location_id", s["location_id"].to_numpy())
    out.insert(1, "sku_id", s["sku_id"].to_numpy())
    out.insert(2, "model", model)
    out.insert(3, "fitted_on", pd.Timestamp(plan_date))
    out.insert(4, "start", s["start"].to_numpy())
    return out[FIT_COLUMNS]
