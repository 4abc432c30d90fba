"""Forecast accuracy on real M5: a rolling-origin backtest of the pipeline's forecast.

Origins: the last `windows` 28-day windows of the data (the last one ends on d_<last_day>). At
each origin every method sees the sales up to the origin only and forecasts the next `horizon`
days of every store x item series carried at the origin (an item is carried from the first
week it has a shelf price, the M5 convention of not scoring before an item exists):

- **pipeline**: `core.forecasting.run_forecast` exactly as the forecast stage runs it (the policy
  file's configuration: history window, Syntetos-Boylan classes, CV model choice per class,
  event multipliers from the real M5 calendar, categories pooled), horizon = `horizon`;
- **global** and **combined** (`families`): the same stage with `family="mlforecast"` (the
  global LightGBM per category) and `family="combined"` (per demand class, CV chooses among the
  local models, the global one and their mean); every pipeline method gets M5's weekly shelf
  prices (history `unit_price`, and the horizon's `price_path`: M5 publishes its prices ahead)
  and the calendar with SNAP days as regional rows (region CA/TX/WI); M5 has no promotion
  flags, so promotion features stay off;
- **SeasonalNaive(7)**, **WindowAverage(28)** (the 28-day moving average the baseline rule
  uses), **SES** (simple exponential smoothing, alpha fitted per series) and **ETS** (AutoETS
  with model "ANA", season 7: additive error, no trend, additive weekly season), statsforecast
  models on the raw sales of the same window.

Breakdown (`breakdown`: WAPE per method by category, demand class of the pipeline's run,
horizon bucket 1-7 / 8-14 / 15-28 days, price-change days -- a day whose shelf price differs
from the same weekday a week before -- against steady-price days; promotion days are reported
as unknown, M5 has none).

Scores (per store x category, per store, per category and overall):
- WAPE = sum |a - f| / sum a over every series-day of the windows;
- RMSSE per series and window = sqrt(mean_h (a - f)^2 / mean_t (y_t - y_{t-1})^2), the scale
  from the series' own history up to the origin, from its first non-zero sale (M5's definition);
  a group's RMSSE is the mean over its series and windows (series with a zero scale are left out);
- WRMSSE: M5's weighted aggregate -- RMSSE at each of M5's 12 aggregation levels (total, state,
  store, category, department, state x category, state x department, store x category,
  store x department, item, item x state, item x store), each series weighted by its dollar
  sales over the 28 days before the origin, the levels averaged with equal weight, then the
  windows averaged.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse

from .m5 import M5_DAYS, M5_STORES, m5_date, m5_events

BASELINES = ("SeasonalNaive", "WindowAverage", "SES", "ETS")
FAMILY_METHODS = {"mlforecast": "global", "combined": "combined"}  # forecast family -> method name
METHODS = ("pipeline", *FAMILY_METHODS.values(), *BASELINES)  # the default run's methods
HORIZON_BUCKETS = ((1, 7), (8, 14), (15, 28))
# the pipeline's central intervals scored for coverage: name, lower and upper quantile, nominal
COVERAGE_INTERVALS = (("80%", "p10", "p90", 0.80), ("95%", "p025", "p975", 0.95))
LEVELS = {  # M5's 12 levels, as the columns that group the bottom series
    "total": [],
    "state": ["state_id"],
    "store": ["store_id"],
    "category": ["cat_id"],
    "department": ["dept_id"],
    "state_category": ["state_id", "cat_id"],
    "state_department": ["state_id", "dept_id"],
    "store_category": ["store_id", "cat_id"],
    "store_department": ["store_id", "dept_id"],
    "item": ["item_id"],
    "item_state": ["item_id", "state_id"],
    "item_store": ["item_id", "store_id"],
}


@dataclass
class Panel:
    """Bottom-level M5 series as arrays: keys (store_id, item_id, dept_id, cat_id, state_id),
    units (N, D) for days d_1..d_D, price (N, D) (NaN while an item has no price)."""

    keys: pd.DataFrame
    units: np.ndarray
    price: np.ndarray


def m5_panel(stores=M5_STORES, items: int = 0, seed: int = 42) -> Panel:
    """The selected stores (and a seeded sample of items, the same as the importer's) as arrays."""
    from .m5 import M5Config, m5_slice

    cfg = M5Config(stores=tuple(stores), last_day=M5_DAYS, days=M5_DAYS, burn_in_days=0, items=items, seed=seed)
    sl = m5_slice(cfg)
    T, L, S = sl.sales.shape
    keys = pd.DataFrame(
        {
            "store_id": np.repeat(np.array(stores), S),
            "item_id": np.tile(sl.items["item_id"].to_numpy(), L),
            "dept_id": np.tile(sl.items["dept_id"].to_numpy(), L),
            "cat_id": np.tile(sl.items["cat_id"].to_numpy(), L),
        }
    )
    keys["state_id"] = keys["store_id"].str.split("_").str[0]
    units = sl.sales.transpose(1, 2, 0).reshape(L * S, T)
    price = sl.price.transpose(1, 2, 0).reshape(L * S, T)
    return Panel(keys, units, price)


def history_frame(p: Panel, origin: int, days: int) -> pd.DataFrame:
    """The forecast stage's input (`fct_daily_demand` columns) for days (origin - days, origin]:
    one row per carried store x item x day (carried: on or after the item's first priced day)."""
    a = max(origin - days, 0)
    priced = np.isfinite(p.price[:, :origin])
    first = np.where(priced.any(axis=1), priced.argmax(axis=1), origin)
    d = np.arange(a, origin)
    carried = d[None, :] >= first[:, None]
    si, di = np.nonzero(carried)
    return pd.DataFrame(
        {
            "location_id": p.keys["store_id"].to_numpy()[si],
            "sku_id": p.keys["item_id"].to_numpy()[si],
            "date": pd.to_datetime(m5_date(1)) + pd.to_timedelta(d[di], unit="D"),
            "units_sold": p.units[si, d[di]].astype(np.int64),
            "is_stockout": False,
            "on_promo": 0,
            "unit_price": p.price[si, d[di]].astype(float),
        }
    )


def price_path_frame(p: Panel, origin: int, horizon: int) -> pd.DataFrame:
    """M5's shelf prices of the horizon (days origin+1 .. origin+horizon) where the item has one."""
    d = np.arange(origin, min(origin + horizon, p.price.shape[1]))
    pr = p.price[:, d]
    si, di = np.nonzero(np.isfinite(pr))
    return pd.DataFrame(
        {
            "location_id": p.keys["store_id"].to_numpy()[si],
            "sku_id": p.keys["item_id"].to_numpy()[si],
            "date": pd.to_datetime(m5_date(1)) + pd.to_timedelta(d[di], unit="D"),
            "price": pr[si, di],
        }
    )


def m5_calendar() -> pd.DataFrame:
    """M5's events (date, event) plus its SNAP days as regional rows (date, event "SNAP",
    region = the state: CA, TX, WI)."""
    from .m5 import load_m5

    ev = m5_events()[["date", "event"]].assign(region=None)
    cal = load_m5()["calendar"]
    snap = [
        pd.DataFrame({"date": cal.loc[cal[f"snap_{st}"] == 1, "date"].to_numpy(), "event": "SNAP", "region": st})
        for st in ("CA", "TX", "WI")
    ]
    out = pd.concat([ev, *snap], ignore_index=True)
    return out.assign(date=pd.to_datetime(out["date"]))


def baseline_forecasts(hist: pd.DataFrame, horizon: int, n_jobs: int = 1) -> pd.DataFrame:
    """SeasonalNaive(7), WindowAverage(28), SES, ETS(A,N,A) on the raw sales: location_id,
    sku_id, date, <method>."""
    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS, SeasonalNaive, SimpleExponentialSmoothingOptimized, WindowAverage

    df = hist.assign(unique_id=hist["location_id"].astype(str) + "|" + hist["sku_id"].astype(str))
    df = df.rename(columns={"date": "ds", "units_sold": "y"})[["unique_id", "ds", "y"]].astype({"y": float})
    sf = StatsForecast(
        models=[
            SeasonalNaive(season_length=7, alias="SeasonalNaive"),
            WindowAverage(window_size=28, alias="WindowAverage"),
            SimpleExponentialSmoothingOptimized(alias="SES"),
            AutoETS(season_length=7, model="ANA", alias="ETS"),
        ],
        freq="D",
        n_jobs=n_jobs,
        # ETS cannot be fitted on a series shorter than two seasons or without variation: that
        # series gets the 28-day window average (statsforecast's fallback, per series and model)
        fallback_model=WindowAverage(window_size=28),
    )
    fc = sf.forecast(df=df, h=horizon)
    fc = fc.reset_index() if "unique_id" not in fc.columns else fc
    parts = fc["unique_id"].str.split("|", n=1, expand=True)
    return pd.DataFrame(
        {
            "location_id": parts[0],
            "sku_id": parts[1],
            "date": pd.to_datetime(fc["ds"]),
            **{m: fc[m].clip(lower=0).to_numpy() for m in BASELINES},
        }
    )


def _scale(units: np.ndarray, origin: int) -> np.ndarray:
    """M5's RMSSE denominator per series: mean squared one-step difference of the history up to
    the origin, from the first non-zero sale."""
    y = units[:, :origin].astype(float)
    nz = y > 0
    first = np.where(nz.any(axis=1), nz.argmax(axis=1), origin)
    d2 = np.diff(y, axis=1) ** 2
    valid = np.arange(1, origin)[None, :] > first[:, None]
    n = valid.sum(axis=1)
    return np.where(n > 0, (d2 * valid).sum(axis=1) / np.maximum(n, 1), np.nan)


def _indicator(keys: pd.DataFrame, cols: list[str]) -> tuple[sparse.csr_matrix, pd.DataFrame]:
    if not cols:
        return sparse.csr_matrix(np.ones((1, len(keys)))), pd.DataFrame(index=[0])
    codes, uniq = pd.factorize(pd.MultiIndex.from_frame(keys[cols]))
    m = sparse.csr_matrix((np.ones(len(keys)), (codes, np.arange(len(keys)))), shape=(len(uniq), len(keys)))
    return m, uniq.to_frame(index=False)


def wrmsse(
    keys: pd.DataFrame, units: np.ndarray, price: np.ndarray, origin: int, actual: np.ndarray, forecast: np.ndarray
) -> dict:
    """M5's WRMSSE of one origin: `units`/`price` (N, >= origin) history, `actual`/`forecast`
    (N, H) the horizon; series without a forecast carry NaN rows and count as a forecast of 0.
    Returns {"wrmsse": mean over levels, "<level>": that level's WRMSSE}."""
    f = np.nan_to_num(forecast, nan=0.0)
    dollars = (units[:, origin - 28 : origin] * np.nan_to_num(price[:, origin - 28 : origin])).sum(axis=1)
    out = {}
    for level, cols in LEVELS.items():
        m, _ = _indicator(keys, cols)
        hist = m @ units[:, :origin].astype(float)
        a, fc = m @ actual, m @ f
        w = m @ dollars
        sc = _scale(hist, origin)
        with np.errstate(divide="ignore", invalid="ignore"):
            rmsse = np.sqrt(((a - fc) ** 2).mean(axis=1) / sc)
        ok = np.isfinite(rmsse) & (w > 0)
        out[level] = float((rmsse[ok] * w[ok]).sum() / w[ok].sum()) if ok.any() else float("nan")
    out["wrmsse"] = float(np.mean([out[k] for k in LEVELS]))
    return out


def _window_forecasts(hist, hist_read, path, plan_date, horizon, runs, categories, calendar, n_jobs):
    """Every method's forecast of one window side by side (location_id, sku_id, date, one column
    per method), the seconds each took and each run's ForecastResult, in `runs`' order."""
    from ..core.forecasting import run_forecast

    fcs, secs, results = [], {}, {}
    for name, cfg in runs.items():
        ts = time.perf_counter()
        res = run_forecast(hist_read, plan_date, cfg, categories, calendar, price_path=path)
        secs[name] = round(time.perf_counter() - ts, 1)
        results[name] = res
        fcs.append(
            res.forecast[["location_id", "sku_id", "date", "mean"]]
            .rename(columns={"mean": name})
            .set_index(["location_id", "sku_id", "date"])
        )
    ts = time.perf_counter()
    base = baseline_forecasts(hist, horizon, n_jobs)
    secs["baselines"] = round(time.perf_counter() - ts, 1)
    fc = pd.concat(fcs, axis=1).reset_index()
    fc = fc.merge(base, on=["location_id", "sku_id", "date"], how="outer")
    return fc, secs, results


def _window_scores(panel, keys, w, origin, plan_date, fc, idx, h, methods, carried, actual_mat):
    """One window's scores of every method: WRMSSE rows (`wrows`), per-series error rows
    (`rows`), and the forecast matrices (series x horizon) by method."""
    horizon = actual_mat.shape[1]
    scale = _scale(panel.units, origin)
    wrows, rows = [], []
    per = {}
    for m in methods:
        mat = np.full((len(keys), horizon), np.nan)
        mat[idx, h] = fc[m].to_numpy(float)
        per[m] = mat
        wr = wrmsse(
            keys[carried].reset_index(drop=True),
            panel.units[carried],
            panel.price[carried],
            origin,
            actual_mat[carried],
            mat[carried],
        )
        wrows.append({"window": w, "origin": plan_date, "method": m, **wr})
    a = actual_mat[carried]
    for m in methods:
        f = np.nan_to_num(per[m][carried], nan=0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            rmsse = np.sqrt(((a - f) ** 2).mean(axis=1) / scale[carried])
        rows.append(
            pd.DataFrame(
                {
                    "window": w,
                    "origin": plan_date,
                    "method": m,
                    "store_id": keys["store_id"].to_numpy()[carried],
                    "cat_id": keys["cat_id"].to_numpy()[carried],
                    "abs_err": np.abs(a - f).sum(axis=1),
                    "err": (f - a).sum(axis=1),
                    "actual": a.sum(axis=1),
                    "rmsse": rmsse,
                }
            )
        )
    return wrows, rows, per


def _meta(stores, keys, windows, horizon, origins, last_day, pol, fcfg, runs, methods, selections) -> dict:
    """What the backtest ran: the panel, the windows, the policy and each method's configuration."""
    return {
        "stores": list(stores),
        "items": int(keys["item_id"].nunique()),
        "series": int(len(keys)),
        "windows": windows,
        "horizon": horizon,
        "origins": [m5_date(o).isoformat() for o in origins],
        "last_day": last_day,
        "policy_version": pol.tag,
        "forecast_config": fcfg.fingerprint(),
        "methods": list(methods),
        "families": {k: c.family for k, c in runs.items()},
        "configs": {k: c.fingerprint() for k, c in runs.items()},
        "selections": selections,
        "promotions": "none in M5 (promotion breakdown not available)",
    }


def _on_the_grid(fc: pd.DataFrame, pos: pd.Series, plan_date: str, horizon: int, n_series: int):
    """The forecast rows inside the horizon, with each row's series position and zero-based day
    ahead, and which series the forecast carries."""
    idx = pos.reindex((fc["location_id"] + "|" + fc["sku_id"]).to_numpy()).to_numpy()
    h = (fc["date"] - pd.Timestamp(plan_date)).dt.days.to_numpy() - 1
    ok = (h >= 0) & (h < horizon)
    fc, idx, h = fc[ok], idx[ok].astype(int), h[ok]
    carried = np.zeros(n_series, bool)
    carried[np.unique(idx)] = True
    return fc, idx, h, carried


def _forecast_runs(pol, horizon: int, n_jobs: int, families: tuple, variants: dict | None):
    """The policy's forecast configuration at the backtest's horizon, and every method run: the
    policy's ("pipeline"), each other family, each variant."""
    from ..core.forecasting import ForecastSettings

    fcfg = ForecastSettings.of(pol.forecast, n_jobs=n_jobs).model_copy(update=dict(horizon_days=horizon))
    runs = {
        "pipeline": fcfg,
        **{FAMILY_METHODS[f]: fcfg.model_copy(update=dict(family=f)) for f in families if f != fcfg.family},
    }
    runs.update({name: fcfg.model_copy(update=kw) for name, kw in (variants or {}).items()})
    return fcfg, runs


def backtest(
    stores=M5_STORES,
    items: int = 0,
    last_day: int = M5_DAYS,
    windows: int = 4,
    horizon: int = 28,
    policy_path: str | None = None,
    seed: int = 42,
    n_jobs: int = 1,
    progress: Callable[[str], None] | None = None,
    families: tuple = ("mlforecast", "combined"),
    variants: dict | None = None,
) -> dict:
    """Run the rolling-origin backtest (module docstring). `families`: forecast families run
    besides the policy's (as methods "global", "combined"); `variants`: more methods, each the
    policy's configuration with some fields replaced (e.g. {"pipeline_rmsse": {"selection_metric":
    "rmsse"}}). Returns {"scores": frame, "wrmsse":
    frame, "breakdown": frame, "coverage": frame (the pipeline's 80% and 95% intervals), "meta":
    dict, "points": frame of the last window's forecasts}."""
    from ..config import settings
    from ..core.policy import load_policy

    say = progress or (lambda m: None)
    t0 = time.perf_counter()
    panel = m5_panel(stores, items, seed)
    pol = load_policy(policy_path or settings().policy_path)
    fcfg, runs = _forecast_runs(pol, horizon, n_jobs, families, variants)
    methods = (*runs, *BASELINES)
    categories = panel.keys.drop_duplicates("item_id").set_index("item_id")["cat_id"]
    calendar = m5_calendar()
    keys = panel.keys
    label = keys["store_id"] + "|" + keys["item_id"]
    pos = pd.Series(np.arange(len(keys)), index=label.to_numpy())
    rows, wrows, brows, crows, seconds, selections = [], [], [], [], {}, {}
    origins = [last_day - horizon * k for k in range(windows, 0, -1)]
    last_points = None
    for w, origin in enumerate(origins, 1):
        plan_date = m5_date(origin).isoformat()
        # the stage's own window (the baselines fit on it), and what a run reads beyond it (a year
        # for the yearly ramp): run_forecast cuts its series to history_days itself
        hist = history_frame(panel, origin, fcfg.history_days)
        hist_read = history_frame(panel, origin, max(c.history_days_read for c in runs.values()))
        path = price_path_frame(panel, origin, horizon)
        fc, secs, res0 = _window_forecasts(
            hist, hist_read, path, plan_date, horizon, runs, categories, calendar, n_jobs
        )
        for name, r in res0.items():
            selections.setdefault(name, {})[plan_date] = r.selection
        res0 = res0["pipeline"]  # the policy's run: its classes and intervals are reported
        fc, idx, h, carried = _on_the_grid(fc, pos, plan_date, horizon, len(keys))
        actual_mat = panel.units[:, origin : origin + horizon].astype(float)
        ws, rs, per = _window_scores(panel, keys, w, origin, plan_date, fc, idx, h, methods, carried, actual_mat)
        wrows += ws
        rows += rs
        a = actual_mat[carried]
        cls = res0.classes.set_index("series")["demand_class"].reindex(label.to_numpy()).fillna("not carried")
        filled = {m: np.nan_to_num(per[m][carried], nan=0.0) for m in methods}
        brows.append(_breakdown_rows(panel, origin, horizon, carried, cls.to_numpy(), a, filled))
        crows.append(_coverage_rows(res0.forecast, pos, keys, actual_mat, plan_date))
        seconds[plan_date] = secs
        say(
            f"window {w}/{len(origins)}: origin {plan_date} (d_{origin}), {int(carried.sum())} series, "
            + ", ".join(f"{k} {v:.0f} s" for k, v in secs.items())
            + f"; selection {res0.selection}"
        )
        if w == len(origins):
            last_points = fc.assign(actual=actual_mat[idx, h])
    per_series = pd.concat(rows, ignore_index=True)
    breakdown = breakdown_table(pd.concat(brows, ignore_index=True))
    return {
        "coverage": coverage_table(pd.concat(crows, ignore_index=True)),
        "scores": score_table(per_series),
        "wrmsse": pd.DataFrame(wrows),
        "per_series": per_series,
        "points": last_points,
        "breakdown": breakdown,
        "meta": _meta(stores, keys, windows, horizon, origins, last_day, pol, fcfg, runs, methods, selections)
        | {"seconds": seconds, "total_seconds": round(time.perf_counter() - t0, 1)},
    }


def horizon_bucket(h: np.ndarray) -> np.ndarray:
    """The report's horizon bucket ("days 01-07", ...) of zero-based days ahead `h`."""
    h = np.asarray(h)
    out = np.empty(len(h), dtype=object)
    for lo, hi in HORIZON_BUCKETS:
        out[(h >= lo - 1) & (h < hi)] = f"days {lo:02d}-{hi:02d}"
    return out


def _breakdown_rows(
    p: Panel,
    origin: int,
    horizon: int,
    carried: np.ndarray,
    demand_class: np.ndarray,
    actual: np.ndarray,
    forecasts: dict,
) -> pd.DataFrame:
    """Absolute error and actual units of one window summed per method x dimension x group."""
    price = p.price[carried][:, origin - 7 : origin + horizon]
    with np.errstate(invalid="ignore"):
        change = np.isfinite(price[:, 7:]) & np.isfinite(price[:, :-7]) & (np.abs(price[:, 7:] - price[:, :-7]) > 1e-9)
    H = actual.shape[1]
    hb = horizon_bucket(np.arange(H))
    dims = {
        "category": np.repeat(p.keys["cat_id"].to_numpy()[carried][:, None], H, axis=1),
        "demand_class": np.repeat(demand_class[carried][:, None], H, axis=1),
        "horizon": np.repeat(hb[None, :], actual.shape[0], axis=0),
        "price_change": np.where(change[:, :H], "price-change days", "steady-price days"),
    }
    out = []
    for m, f in forecasts.items():
        err = np.abs(actual - f).ravel()
        for dim, g in dims.items():
            t = pd.DataFrame({"group": g.ravel(), "abs_err": err, "actual": actual.ravel()})
            t = t.groupby("group", as_index=False).agg(
                abs_err=("abs_err", "sum"), actual=("actual", "sum"), days=("actual", "size")
            )
            out.append(t.assign(method=m, dimension=dim))
    return pd.concat(out, ignore_index=True)


def breakdown_table(rows: pd.DataFrame) -> pd.DataFrame:
    """WAPE per method x dimension x group over every window."""
    t = rows.groupby(["dimension", "group", "method"], as_index=False, sort=False)[["abs_err", "actual", "days"]].sum()
    t = t.sort_values(["dimension", "group"], kind="stable", ignore_index=True)
    t["wape"] = np.where(t["actual"] > 0, t["abs_err"] / t["actual"].where(t["actual"] > 0, 1), np.nan)
    return t[["dimension", "group", "method", "wape", "actual", "days"]]


def _coverage_rows(
    forecast: pd.DataFrame, pos: pd.Series, keys: pd.DataFrame, actual: np.ndarray, plan_date: str
) -> pd.DataFrame:
    """One window's real units inside the pipeline's central intervals (bounds included: counts
    tie), counted per category x horizon bucket x interval. `actual`: (series, horizon) units."""
    f = forecast
    idx = pos.reindex((f["location_id"] + "|" + f["sku_id"]).to_numpy()).to_numpy()
    h = (f["date"] - pd.Timestamp(plan_date)).dt.days.to_numpy() - 1
    ok = np.isfinite(idx) & (h >= 0) & (h < actual.shape[1])
    f, idx, h = f[ok], idx[ok].astype(int), h[ok]
    a = actual[idx, h]
    bucket = horizon_bucket(h)
    out = []
    for name, lo_q, hi_q, _ in COVERAGE_INTERVALS:
        inside = (a >= f[lo_q].to_numpy(float) - 1e-9) & (a <= f[hi_q].to_numpy(float) + 1e-9)
        t = pd.DataFrame({"category": keys["cat_id"].to_numpy()[idx], "horizon": bucket, "inside": inside})
        out.append(
            t.groupby(["category", "horizon"], as_index=False)
            .agg(inside=("inside", "sum"), days=("inside", "size"))
            .assign(interval=name)
        )
    return pd.concat(out, ignore_index=True)


def coverage_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Coverage of each interval per category (and "all"), per horizon bucket (and "all"), over
    every window, with its nominal level and the gap in points."""
    nominal = {name: p for name, _, _, p in COVERAGE_INTERVALS}
    parts = []
    for by in (["category", "horizon"], ["category"], ["horizon"], []):
        t = rows.groupby(by + ["interval"], as_index=False)[["inside", "days"]].sum()
        for c in ("category", "horizon"):
            if c not in t:
                t[c] = "all"
        parts.append(t)
    t = pd.concat(parts, ignore_index=True)
    t["coverage"] = t["inside"] / t["days"].where(t["days"] > 0)
    t["nominal"] = t["interval"].map(nominal)
    t["gap_points"] = 100 * (t["coverage"] - t["nominal"])
    return t[["interval", "category", "horizon", "coverage", "nominal", "gap_points", "days"]]


def score_table(per_series: pd.DataFrame) -> pd.DataFrame:
    """WAPE, bias (sum(f - a) / sum(a)) and mean RMSSE per (store, category), per store, per
    category and overall, by method."""
    out = []
    ok = per_series.assign(rmsse=per_series["rmsse"].where(np.isfinite(per_series["rmsse"])))
    for by in (["store_id", "cat_id"], ["store_id"], ["cat_id"], []):
        g = ok.groupby(by + ["method"]) if by else ok.groupby("method")
        agg = {"abs_err": ("abs_err", "sum"), "actual": ("actual", "sum"), "rmsse": ("rmsse", "mean")}
        agg |= {"err": ("err", "sum")} if "err" in ok else {}  # per-series files from before the bias
        t = g.agg(**agg, series=("rmsse", "size")).reset_index()
        for c in ("store_id", "cat_id"):
            if c not in t:
                t[c] = "all"
        out.append(t)
    t = pd.concat(out, ignore_index=True)
    t["wape"] = np.where(t["actual"] > 0, t["abs_err"] / t["actual"].where(t["actual"] > 0, 1), np.nan)
    t["bias"] = np.where(t["actual"] > 0, t.get("err", np.nan) / t["actual"].where(t["actual"] > 0, 1), np.nan)
    return t[["store_id", "cat_id", "method", "wape", "bias", "rmsse", "series"]]


def _methods(scores: pd.DataFrame) -> list[str]:
    """The methods of a score table in report order: pipeline families first, then the baselines."""
    order = ["pipeline", *FAMILY_METHODS.values(), *BASELINES]
    present = list(dict.fromkeys(scores["method"]))
    return [m for m in order if m in present] + [m for m in present if m not in order]


def wide_table(scores: pd.DataFrame, wr: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (store, category): WAPE and RMSSE of every method side by side; the overall
    row also carries WRMSSE."""
    methods = _methods(scores)
    w = scores.pivot_table(index=["store_id", "cat_id"], columns="method", values=["wape", "rmsse"], sort=False)
    w.columns = [f"{m} {k.upper()}" for k, m in w.columns]
    cols = [f"{m} {k}" for k in ("WAPE", "RMSSE") for m in methods]
    w = w[cols].reset_index()
    if wr is not None and len(wr):
        mean = wr.groupby("method")["wrmsse"].mean()
        for m in methods:
            w[f"{m} WRMSSE"] = np.where((w["store_id"] == "all") & (w["cat_id"] == "all"), mean.get(m, np.nan), np.nan)
    return w


def markdown(
    scores: pd.DataFrame,
    wr: pd.DataFrame,
    meta: dict,
    breakdown: pd.DataFrame | None = None,
    coverage: pd.DataFrame | None = None,
) -> str:
    """The README / report table: WAPE and RMSSE per store x category, best of each row in bold."""

    def row_fmt(vals: dict[str, float]) -> list[str]:
        finite = [v for v in vals.values() if np.isfinite(v)]
        best = min(finite) if finite else np.nan
        return [
            ("n/a" if not np.isfinite(v) else f"**{v:.3f}**" if np.isclose(v, best) else f"{v:.3f}")
            for v in vals.values()
        ]

    methods = _methods(scores)
    lines = [
        "| store | category | "
        + " | ".join(f"WAPE {m}" for m in methods)
        + " | "
        + " | ".join(f"RMSSE {m}" for m in methods)
        + " |",
        "|---|---|" + "---:|" * (2 * len(methods)),
    ]
    order = {"all": "~"}
    s = scores.assign(
        _s=scores["store_id"].map(lambda x: order.get(x, x)), _c=scores["cat_id"].map(lambda x: order.get(x, x))
    )
    for _, g in s.sort_values(["_s", "_c"]).groupby(["_s", "_c"], sort=False):
        g = g.set_index("method")
        wape = row_fmt({m: g.loc[m, "wape"] for m in methods})
        rm = row_fmt({m: g.loc[m, "rmsse"] for m in methods})
        lines.append(
            f"| {g['store_id'].iloc[0]} | {g['cat_id'].iloc[0]} | " + " | ".join(wape) + " | " + " | ".join(rm) + " |"
        )
    mean = wr.groupby("method")["wrmsse"].mean()
    lines.append("")
    lines.append("| WRMSSE (M5's 12 levels, dollar-weighted) | " + " | ".join(methods) + " |")
    lines.append("|---|" + "---:|" * len(methods))
    lines.append("| mean over the windows | " + " | ".join(row_fmt({m: mean[m] for m in methods})) + " |")
    if breakdown is not None and len(breakdown):
        lines += [
            "",
            "WAPE by category, demand class, horizon bucket and price-change days (all windows; "
            "promotion days: none in M5):",
            "",
            "| dimension | group | days | " + " | ".join(methods) + " |",
            "|---|---|---:|" + "---:|" * len(methods),
        ]
        for (dim, grp), g in breakdown.groupby(["dimension", "group"], sort=False):
            g = g.set_index("method")
            lines.append(
                f"| {dim} | {grp} | {int(g['days'].iloc[0])} | "
                + " | ".join(row_fmt({m: g.loc[m, "wape"] if m in g.index else np.nan for m in methods}))
                + " |"
            )
    if coverage is not None and len(coverage):
        lines += coverage_markdown(coverage)
    return "\n".join(lines)


def coverage_markdown(coverage: pd.DataFrame) -> list[str]:
    """The pipeline's interval coverage per category (rows) and horizon bucket (columns)."""
    buckets = [b for b in dict.fromkeys(coverage["horizon"]) if b != "all"] + ["all"]
    title = (
        "Interval coverage of the pipeline (real units inside its central interval, all windows; "
        "target: within ±3 points of nominal per category):"
    )
    lines = [
        "",
        title,
        "",
        "| interval | category | " + " | ".join(buckets) + " | gap (all days), points |",
        "|---|---|" + "---:|" * (len(buckets) + 1),
    ]
    for (name, cat), g in coverage.groupby(["interval", "category"], sort=True):
        g = g.set_index("horizon")
        cells = [f"{g.loc[b, 'coverage']:.1%}" if b in g.index else "" for b in buckets]
        lines.append(f"| {name} | {cat} | " + " | ".join(cells) + f" | {g.loc['all', 'gap_points']:+.1f} |")
    return lines


def plot_backtest(scores: pd.DataFrame, points: pd.DataFrame | None, path) -> Path:
    """WAPE and RMSSE by method per store x category (bars), and the last window's forecasts of
    the highest-volume store x item series against the real sales."""
    from ..core.plots import headless_pyplot, save_figure

    plt = headless_pyplot()
    methods = _methods(scores)
    bw = 0.8 / len(methods)
    g = scores[(scores["store_id"] != "all") & (scores["cat_id"] != "all")]
    groups = list(dict.fromkeys(g["store_id"] + " " + g["cat_id"]))
    n_top = 3 if points is not None and len(points) else 0
    fig, axes = plt.subplots(2 + n_top, 1, figsize=(11, 3.0 * (2 + n_top)), squeeze=False)
    x = np.arange(len(groups))
    for ax, metric in zip(axes[:2, 0], ("wape", "rmsse"), strict=True):
        for i, m in enumerate(methods):
            v = g[g["method"] == m].assign(k=lambda d: d["store_id"] + " " + d["cat_id"]).set_index("k")[metric]
            ax.bar(x + (i - (len(methods) - 1) / 2) * bw, v.reindex(groups).to_numpy(), width=bw, label=m)
        ax.set_xticks(x, groups, fontsize=8)
        ax.set_ylabel(metric.upper())
        ax.legend(fontsize=7, ncol=4)
        ax.set_title(f"{metric.upper()} at 28 days ahead, all windows (lower is better)", fontsize=9)
    if n_top:
        top = points.groupby(["location_id", "sku_id"])["actual"].sum().nlargest(n_top).index
        for ax, (loc, sku) in zip(axes[2:, 0], top, strict=False):
            s = points[(points["location_id"] == loc) & (points["sku_id"] == sku)].sort_values("date")
            ax.plot(s["date"], s["actual"], color="0.2", lw=1.5, label="real units sold")
            for m in methods:
                ax.plot(s["date"], s[m], lw=1, label=m)
            ax.set_title(f"{loc} / {sku}: last window", fontsize=9)
            ax.legend(fontsize=7, ncol=5)
    fig.tight_layout()
    return save_figure(fig, path)


def write_backtest(result: dict, out) -> dict:
    """backtest.json (scores, WRMSSE by level, meta), backtest.md (the README table), the
    per-series CSV and backtest.png."""
    import json

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out / "backtest.json",
        "md": out / "backtest.md",
        "csv": out / "backtest_series.csv.gz",
        "png": out / "backtest.png",
    }
    doc = {
        "meta": result["meta"],
        "scores": result["scores"].to_dict(orient="records"),
        "wrmsse": result["wrmsse"].to_dict(orient="records"),
    }
    for part in ("breakdown", "coverage"):
        if result.get(part) is not None:
            doc[part] = result[part].to_dict(orient="records")
    paths["json"].write_text(json.dumps(doc, indent=2, default=float) + "\n")
    paths["md"].write_text(
        markdown(result["scores"], result["wrmsse"], result["meta"], result.get("breakdown"), result.get("coverage"))
        + "\n"
    )
    result["per_series"].to_csv(paths["csv"], index=False)
    plot_backtest(result["scores"], result.get("points"), paths["png"])
    return paths
