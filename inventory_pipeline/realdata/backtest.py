"""Forecast accuracy on real M5: a rolling-origin backtest of the pipeline's forecast.

Origins: the last `windows` 28-day windows of the data (the last one ends on d_<last_day>). At
each origin every method sees the sales up to the origin only and forecasts the next `horizon`
days of every store x item series carried at the origin (an item is carried from the first
week it has a shelf price, the M5 convention of not scoring before an item exists):

- **pipeline**: `core.forecasting.run_forecast` exactly as the forecast stage runs it (the policy
  file's configuration: history window, Syntetos-Boylan classes, CV model choice per class,
  event multipliers from the real M5 calendar, categories pooled), horizon = `horizon`;
- **SeasonalNaive(7)**, **WindowAverage(28)** (the 28-day moving average the baseline rule
  uses) and **SES** (simple exponential smoothing, alpha fitted per series), statsforecast
  models on the raw sales of the same window.

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
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
import pandas as pd
from scipy import sparse

from .m5 import M5_DAYS, M5_STORES, m5_date, m5_events

BASELINES = ("SeasonalNaive", "WindowAverage", "SES")
METHODS = ("pipeline", *BASELINES)
LEVELS = {  # M5's 12 levels, as the columns that group the bottom series
    "total": [], "state": ["state_id"], "store": ["store_id"], "category": ["cat_id"], "department": ["dept_id"],
    "state_category": ["state_id", "cat_id"], "state_department": ["state_id", "dept_id"],
    "store_category": ["store_id", "cat_id"], "store_department": ["store_id", "dept_id"], "item": ["item_id"],
    "item_state": ["item_id", "state_id"], "item_store": ["item_id", "store_id"],
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
    keys = pd.DataFrame({"store_id": np.repeat(np.array(stores), S),
                         "item_id": np.tile(sl.items["item_id"].to_numpy(), L),
                         "dept_id": np.tile(sl.items["dept_id"].to_numpy(), L),
                         "cat_id": np.tile(sl.items["cat_id"].to_numpy(), L)})
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
    return pd.DataFrame({
        "location_id": p.keys["store_id"].to_numpy()[si], "sku_id": p.keys["item_id"].to_numpy()[si],
        "date": pd.to_datetime(m5_date(1)) + pd.to_timedelta(d[di], unit="D"),
        "units_sold": p.units[si, d[di]].astype(np.int64), "is_stockout": False, "on_promo": 0,
    })


def baseline_forecasts(hist: pd.DataFrame, horizon: int, n_jobs: int = 1) -> pd.DataFrame:
    """SeasonalNaive(7), WindowAverage(28), SES on the raw sales: location_id, sku_id, date, <method>."""
    from statsforecast import StatsForecast
    from statsforecast.models import SeasonalNaive, SimpleExponentialSmoothingOptimized, WindowAverage

    df = hist.assign(unique_id=hist["location_id"].astype(str) + "|" + hist["sku_id"].astype(str))
    df = df.rename(columns={"date": "ds", "units_sold": "y"})[["unique_id", "ds", "y"]].astype({"y": float})
    sf = StatsForecast(models=[SeasonalNaive(season_length=7, alias="SeasonalNaive"),
                               WindowAverage(window_size=28, alias="WindowAverage"),
                               SimpleExponentialSmoothingOptimized(alias="SES")], freq="D", n_jobs=n_jobs)
    fc = sf.forecast(df=df, h=horizon)
    fc = fc.reset_index() if "unique_id" not in fc.columns else fc
    parts = fc["unique_id"].str.split("|", n=1, expand=True)
    return pd.DataFrame({"location_id": parts[0], "sku_id": parts[1], "date": pd.to_datetime(fc["ds"]),
                         **{m: fc[m].clip(lower=0).to_numpy() for m in BASELINES}})


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


def wrmsse(keys: pd.DataFrame, units: np.ndarray, price: np.ndarray, origin: int, actual: np.ndarray,
           forecast: np.ndarray) -> dict:
    """M5's WRMSSE of one origin: `units`/`price` (N, >= origin) history, `actual`/`forecast`
    (N, H) the horizon; series without a forecast carry NaN rows and count as a forecast of 0.
    Returns {"wrmsse": mean over levels, "<level>": that level's WRMSSE}."""
    f = np.nan_to_num(forecast, nan=0.0)
    dollars = (units[:, origin - 28:origin] * np.nan_to_num(price[:, origin - 28:origin])).sum(axis=1)
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


def backtest(stores=M5_STORES, items: int = 0, last_day: int = M5_DAYS, windows: int = 4, horizon: int = 28,
             policy_path: str | None = None, seed: int = 42, n_jobs: int = 1,
             progress: Callable[[str], None] | None = None) -> dict:
    """Run the rolling-origin backtest (module docstring). Returns {"scores": frame, "wrmsse":
    frame, "meta": dict, "points": frame of the last window's forecasts}."""
    from ..config import settings
    from ..core.forecasting import forecast_config, run_forecast
    from ..core.policy import load_policy

    say = progress or (lambda m: None)
    t0 = time.perf_counter()
    panel = m5_panel(stores, items, seed)
    pol = load_policy(policy_path or settings().policy_path)
    fcfg = replace(forecast_config(pol), horizon_days=horizon, n_jobs=n_jobs)
    categories = panel.keys.drop_duplicates("item_id").set_index("item_id")["cat_id"]
    calendar = m5_events()[["date", "event"]].assign(date=lambda x: pd.to_datetime(x["date"]))
    keys = panel.keys
    label = keys["store_id"] + "|" + keys["item_id"]
    pos = pd.Series(np.arange(len(keys)), index=label.to_numpy())
    rows, wrows, seconds = [], [], {}
    origins = [last_day - horizon * k for k in range(windows, 0, -1)]
    last_points = None
    for w, origin in enumerate(origins, 1):
        plan_date = m5_date(origin).isoformat()
        hist = history_frame(panel, origin, fcfg.history_days)
        ts = time.perf_counter()
        res = run_forecast(hist, plan_date, fcfg, categories, calendar)
        t_pipe = time.perf_counter() - ts
        ts = time.perf_counter()
        base = baseline_forecasts(hist, horizon, n_jobs)
        t_base = time.perf_counter() - ts
        fc = res.forecast[["location_id", "sku_id", "date", "mean"]].rename(columns={"mean": "pipeline"})
        fc = fc.merge(base, on=["location_id", "sku_id", "date"], how="outer")
        idx = pos.reindex((fc["location_id"] + "|" + fc["sku_id"]).to_numpy()).to_numpy()
        h = (fc["date"] - pd.Timestamp(plan_date)).dt.days.to_numpy() - 1
        ok = (h >= 0) & (h < horizon)
        fc, idx, h = fc[ok], idx[ok].astype(int), h[ok]
        actual_mat = panel.units[:, origin:origin + horizon].astype(float)
        scale = _scale(panel.units, origin)
        carried = np.zeros(len(keys), bool)
        carried[np.unique(idx)] = True
        per = {}
        for m in METHODS:
            mat = np.full((len(keys), horizon), np.nan)
            mat[idx, h] = fc[m].to_numpy(float)
            per[m] = mat
            wr = wrmsse(keys[carried].reset_index(drop=True), panel.units[carried], panel.price[carried], origin,
                        actual_mat[carried], mat[carried])
            wrows.append({"window": w, "origin": plan_date, "method": m, **wr})
        a = actual_mat[carried]
        for m in METHODS:
            f = np.nan_to_num(per[m][carried], nan=0.0)
            with np.errstate(divide="ignore", invalid="ignore"):
                rmsse = np.sqrt(((a - f) ** 2).mean(axis=1) / scale[carried])
            rows.append(pd.DataFrame({"window": w, "origin": plan_date, "method": m,
                                      "store_id": keys["store_id"].to_numpy()[carried],
                                      "cat_id": keys["cat_id"].to_numpy()[carried],
                                      "abs_err": np.abs(a - f).sum(axis=1), "actual": a.sum(axis=1), "rmsse": rmsse}))
        seconds[plan_date] = {"pipeline": round(t_pipe, 1), "baselines": round(t_base, 1)}
        say(f"window {w}/{len(origins)}: origin {plan_date} (d_{origin}), {int(carried.sum())} series, "
            f"pipeline {t_pipe:.0f} s, baselines {t_base:.0f} s; selection {res.selection}")
        if w == len(origins):
            last_points = fc.assign(actual=actual_mat[idx, h])
    per_series = pd.concat(rows, ignore_index=True)
    return {"scores": score_table(per_series), "wrmsse": pd.DataFrame(wrows), "per_series": per_series,
            "points": last_points,
            "meta": {"stores": list(stores), "items": int(keys["item_id"].nunique()), "series": int(len(keys)),
                     "windows": windows, "horizon": horizon, "origins": [m5_date(o).isoformat() for o in origins],
                     "last_day": last_day, "policy_version": pol.tag, "forecast_config": fcfg.fingerprint(),
                     "seconds": seconds, "total_seconds": round(time.perf_counter() - t0, 1)}}


def score_table(per_series: pd.DataFrame) -> pd.DataFrame:
    """WAPE and mean RMSSE per (store, category), per store, per category and overall, by method."""
    out = []
    ok = per_series.assign(rmsse=per_series["rmsse"].where(np.isfinite(per_series["rmsse"])))
    for by, name in ((["store_id", "cat_id"], None), (["store_id"], "all"), (["cat_id"], "all"), ([], "all")):
        g = ok.groupby(by + ["method"]) if by else ok.groupby("method")
        t = g.agg(abs_err=("abs_err", "sum"), actual=("actual", "sum"), rmsse=("rmsse", "mean"),
                  series=("rmsse", "size")).reset_index()
        for c in ("store_id", "cat_id"):
            if c not in t:
                t[c] = "all"
        out.append(t)
    t = pd.concat(out, ignore_index=True)
    t["wape"] = np.where(t["actual"] > 0, t["abs_err"] / t["actual"].where(t["actual"] > 0, 1), np.nan)
    return t[["store_id", "cat_id", "method", "wape", "rmsse", "series"]]


def wide_table(scores: pd.DataFrame, wr: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (store, category): WAPE and RMSSE of every method side by side; the overall
    row also carries WRMSSE."""
    w = scores.pivot_table(index=["store_id", "cat_id"], columns="method", values=["wape", "rmsse"], sort=False)
    w.columns = [f"{m} {k.upper()}" for k, m in w.columns]
    cols = [f"{m} {k}" for k in ("WAPE", "RMSSE") for m in METHODS]
    w = w[cols].reset_index()
    if wr is not None and len(wr):
        mean = wr.groupby("method")["wrmsse"].mean()
        for m in METHODS:
            w[f"{m} WRMSSE"] = np.where((w["store_id"] == "all") & (w["cat_id"] == "all"), mean.get(m, np.nan), np.nan)
    return w


def markdown(scores: pd.DataFrame, wr: pd.DataFrame, meta: dict) -> str:
    """The README / report table: WAPE and RMSSE per store x category, best of each row in bold."""
    def row_fmt(vals: dict[str, float]) -> list[str]:
        finite = [v for v in vals.values() if np.isfinite(v)]
        best = min(finite) if finite else np.nan
        return [("n/a" if not np.isfinite(v) else f"**{v:.3f}**" if np.isclose(v, best) else f"{v:.3f}")
                for v in vals.values()]

    lines = [f"| store | category | " + " | ".join(f"WAPE {m}" for m in METHODS) + " | "
             + " | ".join(f"RMSSE {m}" for m in METHODS) + " |",
             "|---|---|" + "---:|" * (2 * len(METHODS))]
    order = {"all": "~"}
    s = scores.assign(_s=scores["store_id"].map(lambda x: order.get(x, x)), _c=scores["cat_id"].map(lambda x: order.get(x, x)))
    for (st, cat), g in s.sort_values(["_s", "_c"]).groupby(["_s", "_c"], sort=False):
        g = g.set_index("method")
        wape = row_fmt({m: g.loc[m, "wape"] for m in METHODS})
        rm = row_fmt({m: g.loc[m, "rmsse"] for m in METHODS})
        lines.append(f"| {g['store_id'].iloc[0]} | {g['cat_id'].iloc[0]} | " + " | ".join(wape) + " | " + " | ".join(rm) + " |")
    mean = wr.groupby("method")["wrmsse"].mean()
    lines.append("")
    lines.append("| WRMSSE (M5's 12 levels, dollar-weighted) | " + " | ".join(METHODS) + " |")
    lines.append("|---|" + "---:|" * len(METHODS))
    lines.append("| mean over the windows | " + " | ".join(row_fmt({m: mean[m] for m in METHODS})) + " |")
    return "\n".join(lines)


def plot_backtest(scores: pd.DataFrame, points: pd.DataFrame | None, path) -> "Path":
    """WAPE and RMSSE by method per store x category (bars), and the last window's forecasts of
    the highest-volume store x item series against the real sales."""
    from ..core.plots import _plt, _save

    plt = _plt()
    g = scores[(scores["store_id"] != "all") & (scores["cat_id"] != "all")]
    groups = list(dict.fromkeys(g["store_id"] + " " + g["cat_id"]))
    n_top = 3 if points is not None and len(points) else 0
    fig, axes = plt.subplots(2 + n_top, 1, figsize=(11, 3.0 * (2 + n_top)), squeeze=False)
    x = np.arange(len(groups))
    for ax, metric in zip(axes[:2, 0], ("wape", "rmsse")):
        for i, m in enumerate(METHODS):
            v = g[g["method"] == m].assign(k=lambda d: d["store_id"] + " " + d["cat_id"]).set_index("k")[metric]
            ax.bar(x + (i - 1.5) * 0.2, v.reindex(groups).to_numpy(), width=0.2, label=m)
        ax.set_xticks(x, groups, fontsize=8)
        ax.set_ylabel(metric.upper())
        ax.legend(fontsize=7, ncol=4)
        ax.set_title(f"{metric.upper()} at 28 days ahead, all windows (lower is better)", fontsize=9)
    if n_top:
        top = points.groupby(["location_id", "sku_id"])["actual"].sum().nlargest(n_top).index
        for ax, (loc, sku) in zip(axes[2:, 0], top):
            s = points[(points["location_id"] == loc) & (points["sku_id"] == sku)].sort_values("date")
            ax.plot(s["date"], s["actual"], color="0.2", lw=1.5, label="real units sold")
            for m in METHODS:
                ax.plot(s["date"], s[m], lw=1, label=m)
            ax.set_title(f"{loc} / {sku}: last window", fontsize=9)
            ax.legend(fontsize=7, ncol=5)
    fig.tight_layout()
    return _save(fig, path)


def write_backtest(result: dict, out) -> dict:
    """backtest.json (scores, WRMSSE by level, meta), backtest.md (the README table), the
    per-series CSV and backtest.png."""
    import json
    from pathlib import Path

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "backtest.json", "md": out / "backtest.md", "csv": out / "backtest_series.csv.gz",
             "png": out / "backtest.png"}
    doc = {"meta": result["meta"], "scores": result["scores"].to_dict(orient="records"),
           "wrmsse": result["wrmsse"].to_dict(orient="records")}
    paths["json"].write_text(json.dumps(doc, indent=2, default=float) + "\n")
    paths["md"].write_text(markdown(result["scores"], result["wrmsse"], result["meta"]) + "\n")
    result["per_series"].to_csv(paths["csv"], index=False)
    plot_backtest(result["scores"], result.get("points"), paths["png"])
    return paths
