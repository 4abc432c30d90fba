"""Demand forecast (core): probabilistic daily demand per store x SKU with statsforecast.

The stage, step by step (every step vectorised over series; statsforecast does the fitting):

1. **Series.** Daily units sold per store x SKU from the plan date back `history_days`, dense
   from the first carried day, with the stockout flag and the promotion flag of each day.
2. **Demand, not sales (censoring).** A day that ended with zero on hand sold at most what was
   there: demand D >= sales s. Its demand is replaced by the conditional mean
   E[D | D >= s] = lam * P(D >= s-1) / P(D >= s) under Poisson(lam), where lam is the series'
   local level (centred 29-day mean of its uncensored days, divided by / multiplied back with the
   category's day-of-week index). The share of days and units corrected is reported.
3. **Uplift model (promotions, events).** A documented multiplicative model, pooled by category:
   baseline b = local level x day-of-week index on clean days (no promotion, no event window);
   promotion uplift u_c = sum(demand) / sum(b) over promoted days; event multiplier
   e_{c,event,offset} = sum(demand) / sum(b) over the days `offset` (-7..+2) around each
   calendar event; regional calendar days (M5's SNAP days of the store's state) get their own
   multiplier per category x location, left out of the clean days and divided out of the event
   days' demand before the event multipliers are estimated; all shrunk toward 1 (prior weight
   `uplift_prior_units`). The models are fit
   on demand / (u^promo x e); forecasts are multiplied by the event multipliers of the future days
   (the calendar is known ahead) and by u_c on the days of a planned promotion (`promotions`:
   the landing v1.1 plan known at the plan date; without one no future promotion is applied);
   the price the pricing stage recommends enters downstream as its demand multiplier
   (replenishment plans against forecast x multiplier).
4. **Classes** (Syntetos-Boylan): ADI = days / non-zero days, CV^2 of the non-zero sizes;
   smooth (ADI <= 1.32, CV^2 <= 0.49), erratic (ADI <= 1.32, CV^2 > 0.49), intermittent
   (ADI > 1.32, CV^2 <= 0.49), lumpy (ADI > 1.32, CV^2 > 0.49); `new` = history shorter than the
   statistical models need.
5. **Model choice by rolling-origin cross-validation**, never in-sample fit: per class, every
   candidate of the configuration is cross-validated on (a seeded sample of) the class's series,
   `cv_windows` origins `cv_horizon` days apart, and scored against the corrected demand by WAPE
   (median-optimal) or, with `selection_metric="rmsse"`, by RMSSE (squared error, mean-optimal:
   what replenishment, reading the forecast as a mean, needs); the lowest wins the class. A
   candidate whose measured speed would make the full fit exceed `time_budget_seconds` is
   excluded and the table says so.
6. **Probabilistic output** (split conformal, by class and category). Each class's winner is
   refit on all its series for the point forecast (mean); its quantiles (p025, p10, p50, p90,
   p95, p975, p99) are the point forecast plus the empirical quantiles of the variance-stabilised
   CV residuals z = (a - f) / sqrt(f + 0.25) of its class -- of its class within its category
   where that stratum has MIN_CATEGORY_RESIDUALS per bucket (Mondrian conformal) -- (horizon
   buckets 1-7 and 8+, finite-sample conformal correction) times sqrt(f + 0.25). The same for
   every model, so intermittent models get calibrated intervals too; coverage is measured on the
   last CV origin with a calibration from the earlier ones. New items: their own short-history
   level x the category's day-of-week profile x event multipliers, Poisson quantiles. Quantiles
   are clipped at zero and monotone.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
import scipy  # its submodules load on first use: scipy.stats costs ~1.2 s the code location need not pay
from pydantic import Field

from .dates import as_dates
from .forecast_fits import FIT_COLUMNS, FORWARD_MODELS, empty_fits, forward, kept_fits, series_starts, usable_fits
from .forecast_global_fits import (
    GlobalCarry,
    KeptBooster,
    empty_global_fits,
    global_settings_key,
    model_text,
    recode,
)
from .keys import key_codes
from .policy import ForecastPolicy
from .progress import Progress

QUANTILES = ("p10", "p50", "p90", "p95", "p99")
EXTRA_QUANTILES = ("p025", "p975")  # the 95% central interval
LEVELS = (80, 90, 95, 98)
FORECAST_COLUMNS = [
    "location_id",
    "sku_id",
    "date",
    "horizon",
    "mean",
    *QUANTILES,
    *EXTRA_QUANTILES,
    "model",
    "demand_class",
]
CLASSES = ("smooth", "erratic", "intermittent", "lumpy", "new")
STAT_CLASSES = CLASSES[:-1]
EVENT_OFFSETS = range(-7, 3)  # days around a calendar event whose demand gets its own multiplier

DEFAULT_CANDIDATES = {
    "smooth": ("SeasonalNaive", "SeasonalWindowAverage", "SeasonalESOptimized", "WindowAverage", "AutoETS"),
    "erratic": ("SeasonalWindowAverage", "SeasonalESOptimized", "WindowAverage", "SESOptimized"),
    "intermittent": ("CrostonSBA", "TSB", "IMAPA", "ADIDA", "WindowAverage"),
    "lumpy": ("CrostonSBA", "TSB", "IMAPA", "ADIDA", "WindowAverage"),
}


ENGINE_FIELDS = ("engine", "dask_scheduler", "dask_partitions", "n_jobs")
# the settings that make a forecast model what it is: its identity in the registry (`fingerprint`);
# the section's monitoring settings (drift, promotion tolerance, reported horizons) are not
IDENTITY_FIELDS = (
    "horizon_days",
    "history_days",
    "season_length",
    "intermittent_adi",
    "erratic_cv2",
    "cv_windows",
    "cv_horizon",
    "cv_sample_series",
    "censoring",
    "uplift",
    "uplift_prior_units",
    "time_budget_seconds",
    "candidates",
    "seed",
    "family",
    "selection_metric",
    "flat_weekly_profile",
    "yearly_profile",
)
# "statsforecast": local models per class; "mlforecast": the global LightGBM everywhere;
# "combined": per class, CV chooses among the statsforecast candidates, the global model and the
# mean of the class's best statsforecast model and the global model
FAMILIES = ("statsforecast", "mlforecast", "combined")
# what the CV minimises to choose a class's model: "wape" (absolute error; its optimum is the
# median, which under-forecasts skewed and intermittent demand) or "rmsse" (squared error scaled
# by the series' one-step naive error, M5's measure; its optimum is the mean, what replenishment
# reads the forecast as)
SELECTION_METRICS = ("wape", "rmsse")


class ForecastSettings(ForecastPolicy):
    """The policy file's forecast section (every setting and its one default live there) plus where
    the forecast runs -- settings of the machine, not of the model: the same numbers come out of
    either engine, so they are left out of the model's identity (`fingerprint`).

    engine: "local" (this process, `n_jobs` cores) or "dask" (statsforecast's distributed backend
    through fugue, on the Dask scheduler at `dask_scheduler`, or a default client already
    connected); `dask_partitions` 0 means two per Dask worker."""

    engine: Literal["local", "dask"] = "local"
    dask_scheduler: str | None = None
    dask_partitions: int = Field(0, ge=0)
    n_jobs: int = Field(1, ge=1)

    @classmethod
    def of(cls, section: ForecastPolicy, **where) -> ForecastSettings:
        """The policy's section, run where `where` says (engine, dask_scheduler, dask_partitions, n_jobs)."""
        return cls(**section.model_dump(), **where)

    @property
    def history_days_read(self) -> int:
        """Days of history the stage reads: `history_days`, or the year plus the ramp's windows."""
        return max(self.history_days, YEARLY_HISTORY_DAYS) if self.yearly_profile else self.history_days

    @property
    def min_history(self) -> int:
        """Shortest series the statistical models take: every CV origin needs two seasons before it."""
        return self.cv_windows * self.cv_horizon + 2 * self.season_length

    def candidate_map(self) -> dict[str, tuple[str, ...]]:
        """statsforecast models per demand class: the policy's, else DEFAULT_CANDIDATES."""
        return {k: tuple(v) for k, v in (self.candidates or DEFAULT_CANDIDATES).items()}

    def to_dict(self) -> dict:
        """What the model registry stores with a model version: the model's settings and where it ran."""
        d = {k: getattr(self, k) for k in (*IDENTITY_FIELDS, *ENGINE_FIELDS)}
        d["candidates"] = {k: list(v) for k, v in self.candidate_map().items()}
        return d

    @classmethod
    def from_dict(cls, d: dict, base: ForecastSettings | None = None) -> ForecastSettings:
        """A stored configuration (`to_dict`) over `base` (the policy's other settings, default the
        defaults). An option a stored configuration predates is off: it was built without it."""
        known = {k: v for k, v in d.items() if k in IDENTITY_FIELDS or k in ENGINE_FIELDS}
        for flag in ("flat_weekly_profile", "yearly_profile"):
            known.setdefault(flag, False)
        return cls(**{**(base or cls()).model_dump(), **known})

    def fingerprint(self) -> str:
        """What the configuration computes, not where: the engine settings are left out, and so is
        the default selection metric and weekly profile (a configuration from before the options
        keeps its identity)."""
        d = {k: v for k, v in self.to_dict().items() if k not in ENGINE_FIELDS}
        if d.get("selection_metric") == "wape":
            del d["selection_metric"]
        for flag in ("flat_weekly_profile", "yearly_profile"):
            if not d.get(flag):
                d.pop(flag, None)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


# ---- 1. series ---------------------------------------------------------------------------------


def prepare_series(history: pd.DataFrame, plan_date: str, cfg: ForecastSettings) -> pd.DataFrame:
    """`history`: location_id, sku_id, date, units_sold (+ is_stockout, on_promo when known), one
    row per carried day.

    Returns statsforecast's long format (unique_id, ds, y) plus location_id, sku_id, is_stockout,
    on_promo; only series still carried on `plan_date`; each series dense from its first carried
    day to `plan_date` (a missing day is a day without sales, not a stockout)."""
    end = pd.Timestamp(plan_date)
    start = end - pd.Timedelta(days=cfg.history_days - 1)
    extra = [c for c in ("is_stockout", "on_promo", "unit_price") if c in history]
    out_cols = ["unique_id", "ds", "y", "location_id", "sku_id", "is_stockout", "on_promo"]
    out_cols += ["unit_price"] if "unit_price" in history else []  # the global model's price features
    dates = as_dates(history["date"])
    date = dates.to_numpy().astype("datetime64[D]")
    first_day = np.datetime64(start.date(), "D")
    # integer codes for location and SKU (hashing, then their sorted order): at M5 scale the window
    # has ~11M rows, and sorting or grouping strings per row costs seconds. A row without a key
    # (code -1) belongs to no series, as in a groupby
    loc_codes, locs = key_codes(history["location_id"])
    sku_codes, skus = key_codes(history["sku_id"])
    in_window = (date >= first_day) & (date <= np.datetime64(end.date(), "D"))
    window = np.flatnonzero(in_window & (loc_codes >= 0) & (sku_codes >= 0))
    if not len(window):
        return pd.DataFrame(columns=out_cols)
    pair = loc_codes[window].astype(np.int64) * len(skus) + sku_codes[window]
    day = (date[window] - first_day).astype(np.int64)  # 0 .. history_days - 1
    n_pairs = len(locs) * len(skus)
    last_day = np.full(n_pairs, -1, np.int64)
    np.maximum.at(last_day, pair, day)
    carried = last_day[pair] == (end - start).days  # series still carried on the plan date
    if not carried.any():
        return pd.DataFrame(columns=out_cols)
    rows, pair, day = window[carried], pair[carried], day[carried]
    # series ids in (location, SKU) order; each series dense from its first carried day to the plan date
    uid_of_row, ids = pd.factorize(pair, sort=True)
    first = np.full(len(ids), np.iinfo(np.int64).max)
    np.minimum.at(first, uid_of_row, day)
    lengths = (end - start).days + 1 - first
    offsets = np.r_[0, np.cumsum(lengths)[:-1]]
    n = int(lengths.sum())
    uid = np.repeat(np.arange(len(ids)), lengths)
    within = np.arange(n) - np.repeat(offsets, lengths)
    ds = (first_day + (np.repeat(first, lengths) + within).astype("timedelta64[D]")).astype(dates.dtype)
    at = offsets[uid_of_row] + day - first[uid_of_row]  # each history row's place in the dense grid
    if np.bincount(at, minlength=n).max() > 1:
        raise ValueError(f"history has more than one row for a location x SKU x date before {plan_date}")
    out = pd.DataFrame({"unique_id": uid, "ds": ds})
    y = np.zeros(n)
    units = history["units_sold"].to_numpy(dtype=float, na_value=np.nan)[rows]
    y[at] = np.where(np.isnan(units), 0.0, units)
    out["y"] = y
    # the columns are added in out_cols' order: selecting them at the end copied the ~11 M-row frame
    for col, codes, names in (("location_id", ids // len(skus), locs), ("sku_id", ids % len(skus), skus)):
        used, series_codes = np.unique(codes, return_inverse=True)  # only the categories carried
        # categories in the order of their strings (a key may be a number: "10" before "2")
        by_name, cats = pd.factorize(np.asarray(names, dtype=object)[used].astype(str), sort=True)
        out[col] = pd.Categorical.from_codes(by_name[series_codes][uid], cats)
    stockout = np.zeros(n, bool)  # a missing day: no sales, no stockout
    if "is_stockout" in extra:  # NA is not a stockout
        stockout[at] = history["is_stockout"].eq(True).fillna(False).to_numpy(bool)[rows]
    out["is_stockout"] = stockout
    promo = np.zeros(n, bool)
    if "on_promo" in extra:
        promo[at] = history["on_promo"].fillna(0).astype(bool).to_numpy()[rows]
    out["on_promo"] = promo
    if "unit_price" in extra:
        price = np.full(n, np.nan)
        price[at] = history["unit_price"].to_numpy(dtype=float, na_value=np.nan)[rows]
        out["unit_price"] = price
    return out


def _group_bounds(uid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the index of its series' first and last row (rows sorted by series, then day)."""
    change = np.r_[True, uid[1:] != uid[:-1]]
    starts = np.flatnonzero(change)
    ends = np.r_[starts[1:], len(uid)] - 1
    sizes = ends - starts + 1
    return np.repeat(starts, sizes), np.repeat(ends, sizes)


def _centred_sum(x: np.ndarray, gs: np.ndarray, ge: np.ndarray, half: int) -> np.ndarray:
    """Sum of x over a centred window of +-half rows, clipped to each series (vectorised)."""
    c = np.r_[0.0, np.cumsum(x)]
    i = np.arange(len(x))
    lo = np.maximum(i - half, gs)
    hi = np.minimum(i + half, ge)
    return c[hi + 1] - c[lo]


# ---- 2./3. censoring and uplifts ----------------------------------------------------------------


@dataclass
class Adjustments:
    """What was learnt about the history before fitting, and what the future days get back."""

    censoring: dict = field(default_factory=dict)
    promo_uplift: dict = field(default_factory=dict)  # category -> multiplier
    regional_uplift: dict = field(default_factory=dict)  # (category, location) -> multiplier of its regional days
    event_multipliers: pd.DataFrame | None = None  # category, event, offset, multiplier, days
    category_dow: pd.DataFrame | None = None  # category x dow index


def _global_events(calendar: pd.DataFrame | None) -> pd.DataFrame:
    """The calendar's events that apply everywhere (date, event): rows with a `region` (e.g. M5's
    SNAP days of one state) and rows without an event are left out."""
    if calendar is None or calendar.empty:
        return pd.DataFrame({"date": pd.Series(dtype="datetime64[ns]"), "event": pd.Series(dtype=object)})
    cal = calendar
    if "region" in cal:
        cal = cal[cal["region"].isna() | (cal["region"].astype(str).str.strip().isin(["", "nan", "None"]))]
    cal = cal[cal["event"].notna() & (cal["event"].astype(str) != "")]
    return cal[["date", "event"]].assign(date=as_dates(cal["date"])).drop_duplicates()


def _event_keys(dates: pd.Series, calendar: pd.DataFrame | None) -> pd.Series:
    """For each date: 'event@offset' when it lies in an event's window (offset -7..+2 days), else
    ''. The nearest event wins when windows overlap."""
    if calendar is None or calendar.empty or len(dates) == 0:
        return pd.Series(pd.Categorical.from_codes(np.zeros(len(dates), dtype=np.int8), [""]), index=dates.index)
    cal = _global_events(calendar)
    if cal.empty:
        return pd.Series(pd.Categorical.from_codes(np.zeros(len(dates), dtype=np.int8), [""]), index=dates.index)
    offs = np.array(list(EVENT_OFFSETS))
    win = pd.DataFrame(
        {
            "day": np.repeat(cal["date"].to_numpy(), len(offs)) + np.tile(offs, len(cal)).astype("timedelta64[D]"),
            "event": np.repeat(cal["event"].to_numpy(), len(offs)),
            "offset": np.tile(offs, len(cal)),
        }
    )
    win["dist"] = win["offset"].abs()
    win = win.sort_values(["day", "dist"], kind="stable").drop_duplicates("day")
    lookup = pd.Series((win["event"] + "@" + win["offset"].astype(str)).to_numpy(), index=win["day"].to_numpy())
    inv, uniq = pd.factorize(as_dates(dates).to_numpy(), use_na_sentinel=False)  # hashing: ~11M rows
    keys = pd.Categorical(pd.Series(uniq).map(lookup).fillna("").to_numpy(dtype=object))
    return pd.Series(pd.Categorical.from_codes(keys.codes[inv], keys.categories), index=dates.index)


def _regional_days(locations: pd.Series, dates: pd.Series, calendar: pd.DataFrame | None) -> np.ndarray:
    """Per row: whether the day is a regional calendar day (e.g. M5's SNAP days) of its location
    (a region applies to the locations named like it: CA -> CA_1, CA_2)."""
    reg = _regional_events(calendar)
    if reg.empty or len(dates) == 0:
        return np.zeros(len(dates), dtype=bool)
    locs = pd.Series(pd.unique(np.asarray(locations).astype(str)))
    pairs = [(lc, r) for lc in locs for r in reg["region"].unique() if lc == r or lc.startswith(f"{r}_")]
    if not pairs:
        return np.zeros(len(dates), dtype=bool)
    lr = pd.DataFrame(pairs, columns=["location_id", "region"]).merge(reg, on="region")
    key = pd.MultiIndex.from_frame(lr[["location_id", "date"]].drop_duplicates())
    return pd.MultiIndex.from_arrays([np.asarray(locations).astype(str), as_dates(dates).to_numpy()]).isin(key)


def _regional_multiplier(category, location, regional: np.ndarray, ru: dict) -> np.ndarray:
    """The (category, location) regional uplift on regional days, 1 elsewhere."""
    if not ru or not regional.any():
        return np.ones(len(regional))
    keys = pd.MultiIndex.from_arrays([np.asarray(category).astype(str), np.asarray(location).astype(str)])
    m = pd.Series(ru).reindex(keys).fillna(1.0).to_numpy(float)
    return np.where(regional, m, 1.0)


def _uncensored(y: np.ndarray, base: np.ndarray, censored: np.ndarray):
    """Demand on stock-out days as E[D | D >= sales] under Poisson(base); which days it corrected
    and the correction's counts."""
    demand = y.copy()
    if censored.any():
        lam = np.maximum(base[censored], 1e-9)
        sv = y[censored]
        p_ge_s = scipy.stats.poisson.sf(sv - 1, lam)
        p_ge_s1 = scipy.stats.poisson.sf(sv - 2, lam)
        cond = np.where(p_ge_s > 1e-12, lam * p_ge_s1 / np.maximum(p_ge_s, 1e-300), sv + lam)
        demand[censored] = np.maximum(sv, cond)
    corrected = censored & (demand > y + 1e-9)
    counts = {
        "days": int(len(y)),
        "stockout_days": int(censored.sum()),
        "corrected_days": int(corrected.sum()),
        "corrected_share": float(corrected.mean()) if len(y) else 0.0,
        "units_added": float((demand - y).sum()),
        "units_sold": float(y.sum()),
    }
    return demand, corrected, counts


def _fit_uplifts(s: pd.DataFrame, promo, event, regional, a: float, adj: Adjustments):
    """The uplift model (module docstring, step 3): promotion uplift per category, regional-day
    uplift per category x location, event multipliers per category x event day, each pooled and
    shrunk toward 1 with `a` units of prior weight (into `adj`). Returns each day's multiplier and
    its regional part."""
    rmul = np.ones(len(s))
    pm = s.loc[promo & ~event, ["category", "demand", "_base"]].groupby("category", observed=True).sum()
    up = ((pm["demand"] + a) / (pm["_base"] + a)).clip(0.5, 5.0)
    adj.promo_uplift = {k: float(v) for k, v in up.items()}
    if regional.any():
        on = regional & ~promo & ~event
        rg = (
            s.loc[on, ["demand", "_base"]]
            .assign(cat=s["category"].to_numpy()[on].astype(str), location=s["location_id"].to_numpy()[on].astype(str))
            .groupby(["cat", "location"])[["demand", "_base"]]
            .sum()
        )
        ru = ((rg["demand"] + a) / (rg["_base"] + a)).clip(0.5, 5.0)
        adj.regional_uplift = {k: float(v) for k, v in ru.items()}
        rmul = _regional_multiplier(s["category"], s["location_id"], regional, adj.regional_uplift)
    s["_dev"] = s["demand"] / rmul  # event multipliers net of the regional days' uplift
    ev = (
        s.loc[event & ~promo, ["category", "event_key", "_dev", "_base"]]
        .groupby(["category", "event_key"], observed=True)[["_dev", "_base"]]
        .agg(["sum", "size"])
    )
    em = pd.DataFrame(
        {
            "multiplier": ((ev[("_dev", "sum")] + a) / (ev[("_base", "sum")] + a)).clip(0.05, 10.0),
            "days": ev[("_dev", "size")],
        }
    ).reset_index()
    em.columns = ["category", "event_key", "multiplier", "days"]
    adj.event_multipliers = em
    cats = s["category"].cat
    pmul = np.array([up.get(c, 1.0) for c in cats.categories] + [1.0])[cats.codes.to_numpy()]
    emul = event_multiplier(s[["category", "event_key"]], em)
    mult = np.where(promo, pmul, 1.0) * emul * rmul
    return mult, rmul


def _by_series_and_day(series: pd.DataFrame) -> pd.DataFrame:
    """`series` sorted by unique_id, then ds, on a fresh index (a copy). prepare_series already
    gives that order; checking it is cheaper than sorting ~11M rows again."""
    uid, ds = series["unique_id"].to_numpy(), series["ds"].to_numpy()
    step = (uid[1:] > uid[:-1]) | ((uid[1:] == uid[:-1]) & (ds[1:] > ds[:-1]))
    if step.all():
        return series.reset_index(drop=True).copy()
    return series.sort_values(["unique_id", "ds"], ignore_index=True).copy()


def adjust_history(
    series: pd.DataFrame,
    cfg: ForecastSettings,
    categories: pd.Series | None = None,
    calendar: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, Adjustments]:
    """Censoring correction and the uplift model (module docstring, steps 2-3).

    Adds `demand` (corrected), `corrected` (bool), `category`, `event_key`, `mult` (promotion x
    event multiplier of the day) and `y_adj` (demand / mult, what the models are fit on)."""
    s = _by_series_and_day(series)
    adj = Adjustments()
    sku = s["sku_id"].astype("category")
    per_sku = (
        pd.Series(sku.cat.categories).map(categories)
        if categories is not None
        else pd.Series(index=range(len(sku.cat.categories)), dtype=object)
    )
    cat = pd.Categorical(per_sku.fillna("_all").astype(str).to_numpy())
    s["category"] = pd.Categorical.from_codes(cat.codes[sku.cat.codes.to_numpy()], cat.categories)
    s["event_key"] = _event_keys(s["ds"], calendar if cfg.uplift else None)
    s["dow"] = as_dates(s["ds"]).dt.dayofweek
    uid = s["unique_id"].to_numpy()
    gs, ge = _group_bounds(uid)
    y = s["y"].to_numpy(float)
    promo = s["on_promo"].to_numpy(bool) & cfg.uplift
    event = (s["event_key"] != "").to_numpy()
    censored = s["is_stockout"].to_numpy(bool) & cfg.censoring
    # regional calendar days (M5: SNAP days of the store's state) get their own uplift: left in the
    # clean days, they lift the base wherever events leave few clean days, and event windows that
    # happen to fall on them take their lift as an event effect (divided out of the history, never
    # put back on the future's regional days: an under-forecast)
    regional = _regional_days(s["location_id"], s["ds"], calendar) if cfg.uplift else np.zeros(len(s), bool)
    clean = ~censored & ~promo & ~event & ~regional
    # category day-of-week index from clean days
    on_clean = s.loc[clean, ["category", "dow", "y"]]  # narrow before filtering: ~11M rows at M5 scale
    cd = on_clean.groupby(["category", "dow"], observed=True)["y"].mean()
    cm = on_clean.groupby("category", observed=True)["y"].mean()
    dow_idx = (cd / cd.index.get_level_values(0).map(cm).to_numpy()).rename("dow_index")
    dow_idx = dow_idx.replace([np.inf, -np.inf], np.nan).fillna(1.0).clip(0.2, 5.0)
    adj.category_dow = dow_idx.reset_index()
    idx = pd.MultiIndex.from_arrays([s["category"], s["dow"]])
    di = dow_idx.reindex(idx).fillna(1.0).to_numpy()
    s["dow_idx"] = di
    # local level from clean days (deseasonalised), centred 29-day window, widened where sparse
    num = _centred_sum(np.where(clean, y / di, 0.0), gs, ge, 14)
    den = _centred_sum(clean.astype(float), gs, ge, 14)
    num_w = _centred_sum(np.where(clean, y / di, 0.0), gs, ge, 56)
    den_w = _centred_sum(clean.astype(float), gs, ge, 56)
    level = np.where(den >= 7, num / np.maximum(den, 1), num_w / np.maximum(den_w, 1))
    base = level * di
    # 2. censoring: E[D | D >= s] under Poisson(base)
    demand, corrected, adj.censoring = _uncensored(y, base, censored)
    s["demand"], s["corrected"] = demand, corrected
    # 3. uplifts, pooled by category, shrunk toward 1
    a = cfg.uplift_prior_units
    s["_base"] = base
    mult = np.ones(len(s))
    rmul = np.ones(len(s))
    if cfg.uplift:
        mult, rmul = _fit_uplifts(s, promo, event, regional, a, adj)
    s["mult"] = mult
    s["rmult"] = rmul
    s["y_adj"] = s["demand"] / mult
    for scratch in ("_base", "_dev"):  # in place: drop() copied the ~11 M-row frame (2.3 s at M5 scale)
        if scratch in s:
            del s[scratch]
    return s, adj


def event_multiplier(keys: pd.DataFrame, em: pd.DataFrame | None) -> np.ndarray:
    """Multiplier per row of (category, event_key); 1 where unknown."""
    if em is None or em.empty:
        return np.ones(len(keys))
    cat, ev = keys["category"], keys["event_key"]
    if isinstance(cat.dtype, pd.CategoricalDtype) and isinstance(ev.dtype, pd.CategoricalDtype):
        # a (category x event) table indexed by the codes: ~11M rows at M5 scale, no MultiIndex
        table = np.ones((len(cat.cat.categories) + 1, len(ev.cat.categories) + 1))  # code -1: the last row
        ci = cat.cat.categories.get_indexer(em["category"].astype(cat.cat.categories.dtype))
        ei = ev.cat.categories.get_indexer(em["event_key"].astype(ev.cat.categories.dtype))
        ok = (ci >= 0) & (ei >= 0)
        table[ci[ok], ei[ok]] = em["multiplier"].to_numpy(float)[ok]
        return table[cat.cat.codes.to_numpy(), ev.cat.codes.to_numpy()]
    m = em.set_index(["category", "event_key"])["multiplier"]
    idx = pd.MultiIndex.from_arrays([keys["category"], keys["event_key"]])
    return m.reindex(idx).fillna(1.0).to_numpy()


# ---- 3b. seasons from short histories -------------------------------------------------------------

YEAR_DAYS = 364  # 52 weeks: last year's same weekday
RAMP_REFERENCE_DAYS = 14  # the recent weeks a fitted level reflects (two of each weekday)
RAMP_HALF_WINDOW = 7  # last year's level around a horizon day: 14 days, two of each weekday
YEARLY_HISTORY_DAYS = YEAR_DAYS + RAMP_REFERENCE_DAYS
RAMP_LIMIT = 10.0  # a ramp is kept inside [1 / limit, limit]


def _clean_rates(history: pd.DataFrame, plan_date: str, calendar: pd.DataFrame | None):
    """Per SKU over the chain and day of the year before the plan date: units sold and store-days
    on clean days (no stockout, no promotion, outside a calendar event's window). Returns (skus, units,
    days) with units and days as (SKUs x YEARLY_HISTORY_DAYS) arrays, column 0 the oldest day."""
    end = pd.Timestamp(plan_date)
    first = end - pd.Timedelta(days=YEARLY_HISTORY_DAYS - 1)
    d = as_dates(history["date"])
    clean = (d >= first) & (d <= end)
    for col in ("is_stockout", "on_promo"):
        if col in history:
            clean &= ~history[col].fillna(False).astype(bool)
    if calendar is not None and len(calendar) and "event" in calendar:
        # an event's whole window (-7..+2 days), as the uplift model's clean days: the future's event
        # days get their multipliers in `with_events`, so last year's must not enter the ramp too
        span = pd.Series(pd.date_range(first, end))
        in_window = span[(_event_keys(span, calendar) != "").to_numpy()]
        clean &= ~d.isin(in_window)
    rows = np.flatnonzero(clean.to_numpy())
    # SKU codes by hashing, in sorted order (np.unique would sort ~11M strings at M5 scale)
    si, skus = key_codes(history["sku_id"], rows, as_str=True)
    ti = ((d.to_numpy()[rows] - first.to_datetime64()) // np.timedelta64(1, "D")).astype(np.int64)
    cell = si.astype(np.int64) * YEARLY_HISTORY_DAYS + ti
    size = len(skus) * YEARLY_HISTORY_DAYS
    units = np.bincount(cell, weights=history["units_sold"].to_numpy(float)[rows], minlength=size)
    days = np.bincount(cell, minlength=size).astype(float)
    shape = (len(skus), YEARLY_HISTORY_DAYS)
    return np.asarray(skus, dtype=object).astype(str), units.reshape(shape), days.reshape(shape)


def _rate_log_ratio(a_units, a_days, b_units, b_days):
    """log of (rate in window A) / (rate in window B), half a unit of prior in each; NaN where
    either window has no clean day."""
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.log((a_units + 0.5) / a_days) - np.log((b_units + 0.5) / b_days)
    return np.where((a_days <= 0) | (b_days <= 0), np.nan, x)


def _ramp_windows(cu: np.ndarray, cd: np.ndarray, ref_end, k):
    """Units and clean store-days in the 14-day window centred on day `ref_end - 1 + k` (A) and in
    the RAMP_REFERENCE_DAYS before `ref_end` (B), from cumulative sums with a leading zero column;
    `ref_end` and `k` broadcast (a column per pair)."""
    n = cu.shape[1] - 1
    ref_end = np.asarray(ref_end) + 0 * np.asarray(k)  # one column per (origin, horizon) pair
    lo = np.clip(ref_end - 1 + k - RAMP_HALF_WINDOW, 0, n)
    hi = np.clip(ref_end - 1 + k + RAMP_HALF_WINDOW, 0, n)
    start = np.clip(ref_end - RAMP_REFERENCE_DAYS, 0, n)
    return (cu[:, hi] - cu[:, lo], cd[:, hi] - cd[:, lo], cu[:, ref_end] - cu[:, start], cd[:, ref_end] - cd[:, start])


def _james_stein(x: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Positive-part James-Stein factor per row: max(0, 1 - background / mean square of x over
    its columns), the share of x that stands out from what such ratios look like anyway."""
    ms = np.nanmean(np.where(np.isfinite(x), x, np.nan) ** 2, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        f = 1.0 - background / ms
    return np.clip(np.nan_to_num(f, nan=0.0), 0.0, 1.0)


def yearly_ramp(
    history: pd.DataFrame,
    plan_date: str,
    horizon_days: int,
    categories: pd.Series | None = None,
    calendar: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, dict]:
    """Last year's ramp from the recent weeks to each horizon day, per category: sku_id, date, ramp.

    A forecast fitted on the last weeks carries their level flat into the horizon; a season that
    is about to start is not in it. One year of history shows what happened next last year: per
    category (its SKUs pooled over the chain), the rate in the 14 days around each horizon day's
    date 364 days earlier (same weekdays) against the rate in the 14 days before the plan date 364
    days earlier, on clean days (`_clean_rates`). Pooled by category, not per series: a SKU's own
    year-ago ratio is mostly its own noise and history (on M5 it made the forecast worse).

    Whether last year's ramp is a season or the drift any month shows is measured, not assumed:
    the same statistic (two weeks ahead against the two weeks before) at every weekly origin of
    the past year is the background of changes that happen anyway, and the category's log ramp is
    shrunk toward 0 by the positive-part James-Stein factor max(0, 1 - background / its mean
    square over the horizon). A sharp season, several times any month's drift, is kept almost
    whole; a mild or irregular one (every M5 category) is shrunk to nothing, so the forecast is
    what it was. Returns the ramp (1 without a year of history) and what it did."""
    end = pd.Timestamp(plan_date)
    need = end - pd.Timedelta(days=YEARLY_HISTORY_DAYS - 1)
    if history.empty or as_dates(history["date"]).min() > need:
        return pd.DataFrame(columns=["sku_id", "date", "ramp"]), {"yearly_ramp_skus": 0.0}
    skus, units, days = _clean_rates(history, plan_date, calendar)
    cat = (
        pd.Series(skus).map(categories).fillna("").astype(str).to_numpy()
        if categories is not None
        else np.full(len(skus), "")
    )
    cats, ci = np.unique(cat, return_inverse=True)
    member = np.zeros((len(cats), len(skus)))
    member[ci, np.arange(len(skus))] = 1.0
    # the categories' cumulative units and clean store-days (a leading zero column); column j + 1
    # closes day first + j, and last year's plan date is day RAMP_REFERENCE_DAYS - 1
    cu = np.c_[np.zeros(len(cats)), np.cumsum(member @ units, 1)]
    cd = np.c_[np.zeros(len(cats)), np.cumsum(member @ days, 1)]
    k = np.arange(1, horizon_days + 1)
    x = _rate_log_ratio(*_ramp_windows(cu, cd, RAMP_REFERENCE_DAYS, k))
    # the background: two weeks ahead against the two weeks before, at every weekly origin
    origins = np.arange(RAMP_REFERENCE_DAYS, YEARLY_HISTORY_DAYS - 2 * RAMP_HALF_WINDOW - 6 + 1, 7)
    bx = _rate_log_ratio(*_ramp_windows(cu, cd, origins, 2 * RAMP_HALF_WINDOW))
    kept = _james_stein(x, np.nanmean(bx**2, axis=1))
    log_ramp = np.clip(np.nan_to_num(x * kept[:, None]), -np.log(RAMP_LIMIT), np.log(RAMP_LIMIT))[ci]
    out = pd.DataFrame(
        {
            "sku_id": np.repeat(skus, horizon_days),
            "date": np.tile(end + pd.to_timedelta(k, unit="D"), len(skus)),
            "ramp": np.exp(log_ramp).ravel(),
        }
    )
    info = {
        "yearly_ramp_skus": float(len(skus)),
        "yearly_ramp_categories_kept": float((kept > 0).sum()),
        "yearly_ramp_max_abs_log": float(np.abs(log_ramp).max()) if log_ramp.size else 0.0,
    }
    return out, info


# ---- 4. classes ---------------------------------------------------------------------------------


def classify(series: pd.DataFrame, cfg: ForecastSettings, col: str = "y") -> pd.DataFrame:
    """Demand class per series (Syntetos-Boylan on ADI and CV^2 of the non-zero sizes; `new`
    when the history is shorter than `cfg.min_history`)."""
    v = series[col].to_numpy(float)
    g = pd.DataFrame(
        {"unique_id": series["unique_id"].to_numpy(), "v": v, "nz": v > 0, "vnz": np.where(v > 0, v, np.nan)}
    ).groupby("unique_id")
    n = g.size()
    nonzero = g["nz"].sum()
    adi = n / nonzero.clip(lower=1)
    mean_nz, std_nz = g["vnz"].mean(), g["vnz"].std(ddof=0)
    cv2 = ((std_nz / mean_nz) ** 2).fillna(0.0)
    inter = adi > cfg.intermittent_adi
    err = cv2 > cfg.erratic_cv2
    cls = np.select(
        [n < cfg.min_history, inter & err, inter, err], ["new", "lumpy", "intermittent", "erratic"], "smooth"
    )
    return pd.DataFrame(
        {"unique_id": n.index, "n_obs": n.to_numpy(), "adi": adi.to_numpy(), "cv2": cv2.to_numpy(), "demand_class": cls}
    )


# ---- 5. candidates and cross-validation ---------------------------------------------------------


def reusable_selection(last_run: dict | None, plan_date: str, cfg: ForecastSettings) -> tuple[dict | None, str]:
    """Model choice by cadence: the per-class models a plan reuses and the day they were chosen,
    or (None, plan_date): choose afresh (the CV over every candidate) on this plan.

    `last_run` is the forecast_run row of the latest plan before `plan_date`: its `selection`
    (JSON, class -> model), `selected_on` and `config_fingerprint`. Its choice is reused when it was
    made under the same configuration fewer than `reselect_every_days` days before the plan. A
    class the choice does not name (new since) is chosen among its candidates as always."""
    fresh = (None, plan_date)
    if last_run is None or cfg.reselect_every_days <= 1 or last_run.get("config_fingerprint") != cfg.fingerprint():
        return fresh
    chosen, on = last_run.get("selection"), last_run.get("selected_on")
    if not isinstance(chosen, str) or not chosen or on is None or pd.isna(on):
        return fresh
    age = (pd.Timestamp(plan_date) - pd.Timestamp(on)).days
    if not 0 < age < cfg.reselect_every_days:
        return fresh
    return json.loads(chosen), pd.Timestamp(on).date().isoformat()


# statsforecast models by name: (models module, season length, alias) -> model
_MAKERS = {
    "SeasonalNaive": lambda m, sl, a: m.SeasonalNaive(season_length=sl, alias=a),
    "SeasonalWindowAverage": lambda m, sl, a: m.SeasonalWindowAverage(season_length=sl, window_size=4, alias=a),
    "SeasonalESOptimized": lambda m, sl, a: m.SeasonalExponentialSmoothingOptimized(season_length=sl, alias=a),
    "WindowAverage": lambda m, sl, a: m.WindowAverage(window_size=28, alias=a),
    "SESOptimized": lambda m, sl, a: m.SimpleExponentialSmoothingOptimized(alias=a),
    "AutoETS": lambda m, sl, a: m.AutoETS(season_length=sl, model="ANA", alias=a),
    "OptimizedTheta": lambda m, sl, a: m.OptimizedTheta(season_length=sl, alias=a),
    "CrostonSBA": lambda m, sl, a: m.CrostonSBA(alias=a),
    "TSB": lambda m, sl, a: m.TSB(alpha_d=0.1, alpha_p=0.1, alias=a),
    "IMAPA": lambda m, sl, a: m.IMAPA(alias=a),
    "ADIDA": lambda m, sl, a: m.ADIDA(alias=a),
}
KNOWN_MODELS = tuple(_MAKERS)
# models without a weekly season: with `flat_weekly_profile` they take the category's day-of-week profile
FLAT_MODELS = ("WindowAverage", "SESOptimized", "CrostonSBA", "TSB", "IMAPA", "ADIDA")


def _profiled(model: str, cfg: ForecastSettings) -> bool:
    return cfg.flat_weekly_profile and model in FLAT_MODELS


def weekly_index(category, ds, table: pd.DataFrame | None) -> np.ndarray:
    """The category's day-of-week index (`Adjustments.category_dow`) of each (category, date); 1
    where the category has none."""
    if table is None or table.empty:
        return np.ones(len(ds))
    di = table.assign(category=table["category"].astype(str)).set_index(["category", "dow"])["dow_index"]
    keys = pd.MultiIndex.from_arrays([np.asarray(category).astype(str), as_dates(pd.Series(ds)).dt.dayofweek])
    return di.reindex(keys).fillna(1.0).to_numpy(float)


def make_model(name: str, cfg: ForecastSettings):
    """A statsforecast model by name (aliased to the name, so result columns carry it)."""
    from statsforecast import models as m

    if name not in _MAKERS:
        raise ValueError(f"unknown forecast model {name!r}; known: {sorted(_MAKERS)}")
    return _MAKERS[name](m, cfg.season_length, name)


def _sf(models, cfg: ForecastSettings):
    from statsforecast import StatsForecast

    return StatsForecast(models=models, freq="D", n_jobs=cfg.n_jobs)


def _run_sf(method: str, models, df: pd.DataFrame, cfg: ForecastSettings, **kw) -> pd.DataFrame:
    """`StatsForecast.<method>` on the configured engine. On Dask the frame is partitioned by
    series and statsforecast's fugue backend fits each partition on a worker; the result comes
    back as pandas with the local engine's dtypes, so both engines give the same frame."""
    sf = _sf(models, cfg)
    if cfg.engine == "local":
        out = getattr(sf, method)(df=df, **kw)
        return out.reset_index() if "unique_id" not in out.columns else out
    with _dask_client(cfg) as client:
        out = getattr(sf, method)(df=_dask_frame(df, cfg, client), **kw)
        out = out.compute() if hasattr(out, "compute") else out
    return _as_local_frame(out, df)


@contextlib.contextmanager
def _dask_client(cfg: ForecastSettings):
    """The Dask client the distributed engines run on: the caller's default client if there is
    one, else a client of the scheduler at `cfg.dask_scheduler`, else an in-process cluster (closed
    on exit; the caller's client is left open)."""
    from distributed import Client, default_client

    try:
        client, own = default_client(), None
    except ValueError:
        client = own = (
            Client(cfg.dask_scheduler) if cfg.dask_scheduler else Client(processes=False, dashboard_address=None)
        )
    try:
        yield client
    finally:
        if own is not None:
            own.close()


def _dask_frame(df: pd.DataFrame, cfg: ForecastSettings, client):
    """`df` (sorted by series and date) as a Dask frame of `cfg.dask_partitions` partitions, or two
    per worker. The engines repartition by series themselves (fugue's partition by unique_id)."""
    import dask.dataframe as dd

    return dd.from_pandas(df.sort_values(["unique_id", "ds"]), npartitions=_dask_partitions(cfg, client), sort=False)


def _dask_partitions(cfg: ForecastSettings, client) -> int:
    return cfg.dask_partitions or 2 * max(len(client.scheduler_info().get("workers", {})), 1)


def _as_local_frame(out, like: pd.DataFrame) -> pd.DataFrame:
    """A distributed engine's result with the local engine's dtypes and order."""
    out = pd.DataFrame(out).reset_index(drop=True)
    out["unique_id"] = out["unique_id"].astype(like["unique_id"].dtype)  # as the local engine returns it
    for c in ("ds", "cutoff"):
        if c in out:
            out[c] = as_dates(out[c]).astype("datetime64[ns]")
    for c in out.columns:
        if c not in ("unique_id", "ds", "cutoff"):
            out[c] = out[c].astype(float)
    return out.sort_values([c for c in ("unique_id", "cutoff", "ds") if c in out], ignore_index=True)


def _sample_size(count: int, n: int) -> int:
    """How many of `count` series a CV sample of size `n` keeps (all when n <= 0)."""
    return count if n <= 0 or count <= n else n


def _sample_ids(ids: np.ndarray, n: int, seed: int) -> np.ndarray:
    if _sample_size(len(ids), n) == len(ids):
        return ids
    return np.sort(np.random.default_rng(seed).choice(ids, n, replace=False))


def _scale(adj: pd.DataFrame, cutoffs: pd.DataFrame, season: int) -> pd.DataFrame:
    """Error scales per (series, cutoff) from the demand up to the cutoff: `scale` (MASE's), the
    mean |d_t - d_{t-season}|; `sq_scale` (RMSSE's, M5's definition), the mean (d_t - d_{t-1})^2
    from the series' first non-zero demand on."""
    d = adj[["unique_id", "ds", "demand"]].copy()
    g = d.groupby("unique_id")["demand"]
    d["ae"] = (d["demand"] - g.shift(season)).abs()
    started = (d["demand"] > 0).groupby(d["unique_id"]).cummax()
    after_first = started.groupby(d["unique_id"]).shift(1, fill_value=False).astype(bool)  # d_{t-1} on or after it
    d["se"] = ((d["demand"] - g.shift(1)) ** 2).where(after_first)
    out = []
    for c in cutoffs["cutoff"].unique():
        part = d[d["ds"] <= c].groupby("unique_id")[["ae", "se"]].mean()
        part = part.rename(columns={"ae": "scale", "se": "sq_scale"}).reset_index()
        part["cutoff"] = c
        out.append(part)
    return pd.concat(out, ignore_index=True)


# quantiles the stage outputs, in increasing order, and their probabilities
QUANTILE_PROBS = {"p025": 0.025, "p10": 0.10, "p50": 0.50, "p90": 0.90, "p95": 0.95, "p975": 0.975, "p99": 0.99}
STABILISER = 0.25  # residuals are scaled by sqrt(forecast + this): count noise grows like sqrt(mean)


def score(cv: pd.DataFrame, model: str, scale: pd.DataFrame | None = None) -> dict:
    """WAPE, bias and, given the scales of `_scale`, MASE (mean over series x origin of MAE /
    seasonal-naive MAE up to the origin) and RMSSE (mean over series x origin of
    sqrt(MSE / mean squared one-step difference up to the origin); series x origins with a zero
    scale are left out). A model with a missing CV forecast scores NaN WAPE, bias and RMSSE
    (MASE leaves those points out)."""
    a, f = cv["demand"].to_numpy(float), cv[model].to_numpy(float)
    tot = a.sum()
    out = {
        "wape": float(np.abs(a - f).sum() / tot) if tot > 0 else float("nan"),
        "bias": float((f - a).sum() / tot) if tot > 0 else float("nan"),
        "points": int(len(a)),
    }
    if scale is not None:
        e = cv[["unique_id", "cutoff"]].assign(ae=np.abs(a - f), se=(a - f) ** 2)
        m = e.groupby(["unique_id", "cutoff"])[["ae", "se"]].mean().rename(columns={"ae": "mae", "se": "mse"})
        m = m.reset_index().merge(scale, on=["unique_id", "cutoff"], how="left")
        ok = m["scale"] > 0
        out["mase"] = float((m.loc[ok, "mae"] / m.loc[ok, "scale"]).mean()) if ok.any() else float("nan")
        if "sq_scale" in m:
            ok = m["sq_scale"] > 0
            rmsse = np.sqrt(m.loc[ok, "mse"] / m.loc[ok, "sq_scale"])
            out["rmsse"] = float(rmsse.mean()) if ok.any() and np.isfinite(f).all() else float("nan")
    return out


def cross_validate(
    adj: pd.DataFrame, models: list[str], cfg: ForecastSettings, em: pd.DataFrame | None
) -> tuple[pd.DataFrame, dict]:
    """Rolling-origin CV of `models` on the adjusted series: `cv_windows` origins `cv_horizon`
    days apart, each model refit at every origin on the data before it only; forecasts are
    multiplied back by the event multipliers of their target days (known ahead; promotions are
    not) and compared with the corrected demand. Returns the CV frame (with `horizon`) and the
    seconds each model took."""
    df = adj[["unique_id", "ds", "y_adj"]].rename(columns={"y_adj": "y"})
    profiled = [n for n in models if _profiled(n, cfg)] if "dow_idx" in adj else []
    # the flat models see the series without its weekly pattern (and get it back below)
    flat_df = df.assign(y=df["y"].to_numpy(float) / adj["dow_idx"].to_numpy(float)) if profiled else df
    frames, seconds = [], {}
    for name in models:
        t0 = time.perf_counter()
        cv = _run_sf(
            "cross_validation",
            [make_model(name, cfg)],
            flat_df if name in profiled else df,
            cfg,
            h=cfg.cv_horizon,
            n_windows=cfg.cv_windows,
            step_size=cfg.cv_horizon,
        )
        seconds[name] = time.perf_counter() - t0
        frames.append(cv.drop(columns=["y"]).set_index(["unique_id", "ds", "cutoff"]))
    out = pd.concat(frames, axis=1).reset_index()
    extra = [c for c in ("rmult", "dow_idx") if c in adj]
    out = out.merge(
        adj[["unique_id", "ds", "demand", "category", "event_key", *extra]], on=["unique_id", "ds"], how="left"
    )
    mult = event_multiplier(out[["category", "event_key"]], em)
    if "rmult" in out:
        mult = mult * out["rmult"].fillna(1.0).to_numpy(float)
    weekly = out["dow_idx"].fillna(1.0).to_numpy(float) if profiled else 1.0
    for n in models:
        out[n] = np.clip(out[n].to_numpy(float) * mult * (weekly if n in profiled else 1.0), 0, None)
    out["horizon"] = (as_dates(out["ds"]) - as_dates(out["cutoff"])).dt.days
    return out, seconds


def calibrate(cv: pd.DataFrame, model: str) -> pd.DataFrame:
    """Split-conformal quantiles of the variance-stabilised CV residuals z = (a - f) / sqrt(f + c),
    pooled over the class's series, per horizon bucket (days 1-7, 8+). Rows: bucket; columns:
    the stage's quantile names."""
    f = cv[model].to_numpy(float)
    z = (cv["demand"].to_numpy(float) - f) / np.sqrt(f + STABILISER)
    # a model without a forecast for some CV points (e.g. a 28-day window average on a series
    # with a shorter history) leaves NaN residuals: calibrate on the finite ones; none at all
    # gives the unit-normal quantiles of a Poisson-like count (the stabilised residual's scale)
    ok = np.isfinite(z)
    bucket = np.where(cv["horizon"].to_numpy() <= 7, 1, 2)[ok]
    z = z[ok]
    rows = {}
    for b in (1, 2):
        if len(z) == 0:
            rows[b] = {q: float(scipy.stats.norm.ppf(p)) for q, p in QUANTILE_PROBS.items()}
            continue
        zb = z[bucket == b] if (bucket == b).sum() >= 20 else z
        # finite-sample conformal correction: the ceil((n + 1) p) / n empirical quantile
        n = max(len(zb), 1)
        rows[b] = {
            q: float(
                np.quantile(zb, min(1.0, np.ceil((n + 1) * p) / n) if p > 0.5 else max(0.0, np.floor((n + 1) * p) / n))
            )
            for q, p in QUANTILE_PROBS.items()
        }
    return pd.DataFrame.from_dict(rows, orient="index")


# a category's own interval calibration needs this many finite CV residuals in every horizon bucket
MIN_CATEGORY_RESIDUALS = 200


@dataclass
class Calibration:
    """A class's interval calibration: its pooled conformal table and, Mondrian-style, one per
    category with at least MIN_CATEGORY_RESIDUALS residuals in each horizon bucket. Pooled over a
    class, fast movers of a noisy category are under-covered and a quiet category's over-covered
    (M5: FOODS 74.7% in the 80% interval, HOBBIES 82.9%); conditioning the conformal quantiles
    on the category restores coverage per category where the sample can say so."""

    overall: pd.DataFrame
    by_category: dict = field(default_factory=dict)  # category -> table like `overall`

    def quantiles(self, point: np.ndarray, horizon: np.ndarray, category: np.ndarray | None = None) -> dict:
        out = apply_quantiles(point, horizon, self.overall)
        if category is None or not self.by_category:
            return out
        category = np.asarray(category).astype(str)
        for cat, table in self.by_category.items():
            m = category == cat
            if m.any():
                part = apply_quantiles(np.asarray(point)[m], np.asarray(horizon)[m], table)
                for q in out:
                    out[q][m] = part[q]
        return out


CALIBRATION_COLUMNS = ["demand_class", "category", "bucket"]  # + the quantile columns; category "" = the class


@dataclass
class CvState:
    """What a plan's cross-validation leaves for the plans that carry its fits (policy
    `refit_every_days`): the model choice, each class's interval calibration, the CV metrics, the
    candidates' table and the CV points, and the day it ran (`on`). A carrying plan forecasts
    with the kept parameters and these intervals instead of cross-validating again."""

    on: str
    selection: dict
    calibration: dict  # class -> Calibration
    metrics: dict
    cv: pd.DataFrame
    points: pd.DataFrame

    def calibration_table(self) -> pd.DataFrame:
        """The calibrations as one long table (CALIBRATION_COLUMNS + the quantiles)."""
        rows = [
            t.rename_axis("bucket").reset_index().assign(demand_class=cls, category=cat)
            for cls, cal in self.calibration.items()
            for cat, t in [("", cal.overall), *cal.by_category.items()]
        ]
        if not rows:
            return pd.DataFrame(columns=[*CALIBRATION_COLUMNS, *QUANTILE_PROBS])
        return pd.concat(rows, ignore_index=True)[[*CALIBRATION_COLUMNS, *QUANTILE_PROBS]]

    @staticmethod
    def calibrations_from(table: pd.DataFrame) -> dict:
        """`calibration_table`'s inverse."""
        out = {}
        for cls, g in table.groupby("demand_class"):
            tabs = {
                str(cat): t.set_index(t["bucket"].astype(int))[list(QUANTILE_PROBS)].rename_axis(None)
                for cat, t in g.groupby("category")
            }
            out[str(cls)] = Calibration(tabs.pop(""), tabs)
        return out

    def covers(self, classes: pd.DataFrame) -> bool:
        """Whether every statistical class of today's series has a model and a calibration here."""
        present = set(classes["demand_class"]) - {"new"}
        return present <= set(self.selection) and present <= set(self.calibration)


def reusable_cv(last_run: dict | None, plan_date: str, cfg: ForecastSettings, choice_reused: bool) -> str | None:
    """The day of the cross-validation a plan reuses (`CvState`), or None to cross-validate: only
    a plan that reuses the model choice, under the same configuration, fewer than
    `refit_every_days` days after that CV ran."""
    if not choice_reused or last_run is None or cfg.refit_every_days <= 1:
        return None
    on = last_run.get("cv_on")
    if last_run.get("config_fingerprint") != cfg.fingerprint() or on is None or pd.isna(on):
        return None
    age = (pd.Timestamp(plan_date) - pd.Timestamp(on)).days
    return pd.Timestamp(on).date().isoformat() if 0 < age < cfg.refit_every_days else None


def calibrate_strata(cv: pd.DataFrame, model: str) -> Calibration:
    """`calibrate` over the class, and per category where the residuals suffice."""
    cal = Calibration(calibrate(cv, model))
    if "category" not in cv or cv["category"].nunique() < 2:
        return cal
    finite = cv[np.isfinite(cv[model].to_numpy(float)) & np.isfinite(cv["demand"].to_numpy(float))]
    for cat, g in finite.groupby(finite["category"].astype(str)):
        per_bucket = np.bincount(np.where(g["horizon"].to_numpy() <= 7, 0, 1), minlength=2)
        if per_bucket.min() >= MIN_CATEGORY_RESIDUALS:
            cal.by_category[cat] = calibrate(g, model)
    return cal


def apply_quantiles(point: np.ndarray, horizon: np.ndarray, cal: pd.DataFrame) -> dict[str, np.ndarray]:
    """Quantiles from a point forecast and a calibration table (monotone, clipped at zero). The
    median is the point forecast shifted by the median residual."""
    f = np.clip(np.asarray(point, float), 0, None)
    b = np.where(np.asarray(horizon) <= 7, 1, 2)
    sd = np.sqrt(f + STABILISER)
    out = {q: np.clip(f + cal[q].reindex(b).to_numpy() * sd, 0, None) for q in QUANTILE_PROBS}
    stacked = np.maximum.accumulate(np.column_stack([out[q] for q in QUANTILE_PROBS]), axis=1)
    return {q: stacked[:, i] for i, q in enumerate(QUANTILE_PROBS)}


def coverage(cv: pd.DataFrame, model: str, cal: Calibration) -> dict:
    """Share of actuals inside the central 80% (p10-p90) and 95% (p025-p975) intervals."""
    cat = cv["category"].to_numpy() if "category" in cv else None
    q = cal.quantiles(cv[model].to_numpy(float), cv["horizon"].to_numpy(), cat)
    a = cv["demand"].to_numpy(float)
    return {
        "coverage_80": float(((a >= q["p10"]) & (a <= q["p90"])).mean()),
        "coverage_95": float(((a >= q["p025"]) & (a <= q["p975"])).mean()),
    }


@dataclass
class ForecastResult:
    forecast: pd.DataFrame
    selection: dict  # class -> model
    cv: pd.DataFrame  # one row per class x candidate: wape, bias, mase, seconds, excluded, selected
    metrics: dict  # CV metrics of the selected models, per class and overall
    adjustments: Adjustments
    classes: pd.DataFrame
    config: ForecastSettings
    calibration: dict = field(default_factory=dict)  # class -> Calibration
    cv_points: pd.DataFrame | None = None  # the selected models' CV forecasts (for plots)
    # the fitted parameters this plan keeps for the next (core.forecast_fits) and how it got them:
    # {"forwarded": series run forward with kept parameters, "estimated": series fit}
    fits: pd.DataFrame = field(default_factory=empty_fits)
    fitting: dict = field(default_factory=dict)
    # the global models this plan keeps for the next (core.forecast_global_fits; families with it)
    global_fits: pd.DataFrame = field(default_factory=empty_global_fits)
    cv_on: str | None = None  # the day the cross-validation behind the intervals and metrics ran

    def cv_state(self) -> CvState:
        """What the plans carrying this plan's fits reuse of its cross-validation."""
        points = self.cv_points if self.cv_points is not None else pd.DataFrame()
        return CvState(self.cv_on or "", self.selection, self.calibration, self.metrics, self.cv, points)


class _Winners:
    """What each class's selected model leaves behind: interval calibration, honest coverage
    (calibrated on the earlier origins, scored on the last), CV metrics and plot points; the
    same bookkeeping for every model family."""

    def __init__(self) -> None:
        self.chosen, self.calib, self.metrics = {}, {}, {}
        self.pooled, self.covs, self.points = [], [], []

    def add(self, cls: str, cv: pd.DataFrame, model: str, sc: dict, n_series: int, n_sample: int) -> None:
        self.chosen[cls] = model
        self.calib[cls] = calibrate_strata(cv, model)
        last = cv["cutoff"] == cv["cutoff"].max()
        cov = coverage(cv[last], model, calibrate_strata(cv[~last], model)) if (~last).any() else {}
        self.metrics.update({f"cv_{k}_{cls}": v for k, v in {**sc, **cov}.items()})
        self.pooled.append(pd.DataFrame({"a": cv["demand"], "f": cv[model], "w": n_series / max(n_sample, 1)}))
        self.covs.append((cov, n_series))
        self.points.append(
            cv[["unique_id", "ds", "cutoff", "horizon", "demand", model]]
            .rename(columns={model: "forecast"})
            .assign(demand_class=cls, model=model)
        )

    def result(self, table: pd.DataFrame) -> tuple[dict, pd.DataFrame, dict, dict, pd.DataFrame]:
        _pool_metrics(self.metrics, self.pooled, self.covs, self.chosen)
        points = pd.concat(self.points, ignore_index=True) if self.points else pd.DataFrame()
        return self.chosen, table, self.calib, self.metrics, points


def _score_candidates(part, names, cfg: ForecastSettings, em, cls: str, n_series: int, n_sample: int, selection, rows):
    """Cross-validate a class's candidates on its sample: the CV frame, the RMSSE scale, each
    model's scores, and the models inside the time budget (a fixed selection is never excluded);
    one row per model into `rows`."""
    cv, secs = cross_validate(part, names, cfg, em)
    scale = _scale(part, cv[["cutoff"]].drop_duplicates(), cfg.season_length)
    scores, allowed = {}, []
    for n in names:
        scores[n] = score(cv, n, scale)
        per_fit = secs[n] / max(cfg.cv_windows * n_sample, 1)
        est = per_fit * n_series * 2  # final fit + CV of the winner for its intervals
        excluded = selection is None and est > cfg.time_budget_seconds
        rows.append(
            {
                "demand_class": cls,
                "model": n,
                **scores[n],
                "series": n_series,
                "cv_series": n_sample,
                "cv_seconds": round(secs[n], 3),
                "est_fit_seconds": round(est, 2),
                "excluded": "over time budget" if excluded else "",
            }
        )
        if not excluded:
            allowed.append(n)
    return cv, scale, scores, allowed


def _global_contest(extra, cv, best, scale, scores, by, cls, n_series, n_sample, selection, rows):
    """The combined family: the global model and its mean with the class's best local model
    compete with it on the same CV (a fixed selection takes its own). Returns the CV frame with
    their columns and the class's model."""
    cv, more = extra.columns(cv, best)
    for n in more:
        scores[n] = score(cv, n, scale)
        rows.append(
            {
                "demand_class": cls,
                "model": n,
                **scores[n],
                "series": n_series,
                "cv_series": n_sample,
                "cv_seconds": round(extra.seconds, 3),
                "est_fit_seconds": float("nan"),
                "excluded": "",
            }
        )
    pool = [best] + [n for n in more if np.isfinite(scores[n].get(by, np.nan))]
    if selection is not None and selection.get(cls) in scores:
        pool = [selection[cls]]
    best = min(pool, key=lambda n: scores[n].get(by, np.nan))  # ties: the local model
    return cv, best


def _select_and_calibrate(
    adj: pd.DataFrame,
    classes: pd.DataFrame,
    cfg: ForecastSettings,
    em,
    selection: dict | None,
    report=None,
    extra: _GlobalCandidate | None = None,
) -> tuple[dict, pd.DataFrame, dict, dict, pd.DataFrame]:
    """Per class: cross-validate the candidates (or the fixed selection) on a seeded sample, keep
    the lowest `cfg.selection_metric` (WAPE or RMSSE) among those inside the time budget,
    calibrate its intervals on the CV residuals, and measure coverage honestly (calibrated on the
    earlier origins, scored on the last)."""
    metric = cfg.selection_metric
    cand = cfg.candidate_map()
    if selection is not None:  # a fixed model per class: its statsforecast part (if any) is cross-validated;
        # a class the selection does not name (its first series appeared since) chooses among the
        # candidates as usual, instead of stopping the forecast
        fixed = {c: ((_components(m)[0],) if _components(m)[0] else cand.get(c, ())) for c, m in selection.items()}
        cand = {**cand, **fixed}
    rows, won, selected_by = [], _Winners(), {}
    counts = classes["demand_class"].value_counts()
    if extra is not None:  # the global model: one CV over the same samples as the local models
        extra.prepare(
            np.concatenate(
                [
                    _sample_ids(
                        classes.loc[classes["demand_class"] == c, "unique_id"].to_numpy(),
                        cfg.cv_sample_series,
                        cfg.seed,
                    )
                    for c in STAT_CLASSES
                ]
            )
        )
    prog = Progress(
        sum(_sample_size(int(counts.get(c, 0)), cfg.cv_sample_series) for c in STAT_CLASSES),
        unit="series",
        label="cross-validation",
        report=report,
    )
    for cls in STAT_CLASSES:
        ids = classes.loc[classes["demand_class"] == cls, "unique_id"].to_numpy()
        if len(ids) == 0:
            continue
        names = [n for n in cand.get(cls, ()) if n in KNOWN_MODELS]
        if not names:
            raise ValueError(f"no forecast candidates configured for class {cls!r} (known: {KNOWN_MODELS})")
        sample = _sample_ids(ids, cfg.cv_sample_series, cfg.seed)
        part = adj[adj["unique_id"].isin(sample)]
        cv, scale, scores, allowed = _score_candidates(
            part, names, cfg, em, cls, len(ids), len(sample), selection, rows
        )
        # a class whose sample has no RMSSE scale (no demand change anywhere) is chosen by WAPE
        by = metric if any(np.isfinite(scores[n].get(metric, np.nan)) for n in allowed) else "wape"
        finite = [n for n in allowed if np.isfinite(scores[n].get(by, np.nan))]
        best = min(finite, key=lambda n: scores[n][by]) if finite else names[0]  # ties: the first listed
        if extra is not None:  # the global model and its mean with the best local model compete too
            cv, best = _global_contest(extra, cv, best, scale, scores, by, cls, len(ids), len(sample), selection, rows)
        selected_by[cls] = by
        won.add(cls, cv, best, scores[best], len(ids), len(sample))
        prog.advance(len(sample), note=f"class {cls}: {len(names)} candidate(s), {best} chosen")
    table = pd.DataFrame(rows)
    if len(table):
        table["selected"] = [won.chosen.get(c) == m for c, m in zip(table["demand_class"], table["model"], strict=True)]
        table["selected_by"] = table["demand_class"].map(selected_by)  # the CV score that chose the class's model
    return won.result(table)


# ---- 6. forecasts -------------------------------------------------------------------------------


def _future_frame(ids: np.ndarray, plan_date: str, cfg: ForecastSettings) -> pd.DataFrame:
    days = pd.date_range(pd.Timestamp(plan_date) + pd.Timedelta(days=1), periods=cfg.horizon_days, freq="D")
    return pd.DataFrame({"unique_id": np.repeat(ids, len(days)), "ds": np.tile(days.to_numpy(), len(ids))})


def _fit_class(
    part: pd.DataFrame,
    model: str,
    cfg: ForecastSettings,
    weekly: pd.DataFrame | None = None,
    carry: _Carry | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The class's model fit on every series of `part` (adjusted demand), `horizon_days` ahead; a
    flat model with `flat_weekly_profile` on the series over its category's weekly index
    (`weekly`, the category_dow table), multiplied back on the forecast days. With `carry` (a
    model statsforecast can run forward, on the local engine) the series with a usable kept fit
    are run forward instead of re-estimated (core.forecast_fits), and the fits this plan keeps
    are returned with the forecast (else an empty table)."""
    df = part[["unique_id", "ds", "y_adj"]].rename(columns={"y_adj": "y"})
    profiled = _profiled(model, cfg) and "dow_idx" in part
    if profiled:
        df = df.assign(y=df["y"].to_numpy(float) / part["dow_idx"].to_numpy(float))
    if carry is not None and model in FORWARD_MODELS and cfg.engine == "local":
        fc, kept = carry.fit(df, series_starts(part), model, cfg)
    else:
        fc, kept = _run_sf("forecast", [make_model(model, cfg)], df, cfg, h=cfg.horizon_days), empty_fits()
    mean = fc[model].to_numpy(float)
    if profiled:
        cat = part.groupby("unique_id", observed=True)["category"].first()
        mean = mean * weekly_index(fc["unique_id"].map(cat), fc["ds"], weekly)
    return pd.DataFrame({"unique_id": fc["unique_id"], "ds": fc["ds"], "mean": mean, "model": model}), kept


@dataclass
class _Carry:
    """Fits carried between refits (policy `refit_every_days`): the kept fits of the last plan,
    what this plan keeps, and how many series were run forward / estimated."""

    plan_date: str
    every_days: int
    fits: pd.DataFrame | None = None
    forwarded: int = 0
    estimated: int = 0

    def fit(self, df: pd.DataFrame, starts: pd.DataFrame, model: str, cfg: ForecastSettings):
        """The forecast (unique_id, ds, <model>) and the fits to keep: usable kept fits run
        forward, the other series estimated (and their fits kept)."""
        use = usable_fits(self.fits, starts, model, self.plan_date, self.every_days)
        fresh = df[~df["unique_id"].isin(use["unique_id"])]
        parts, kept = [], [use[FIT_COLUMNS]] if len(use) else []
        if len(use):
            future = pd.date_range(pd.Timestamp(self.plan_date) + pd.Timedelta(days=1), periods=cfg.horizon_days)
            parts.append(forward(df, use, cfg.horizon_days, future).rename(columns={"mean": model}))
        if len(fresh):
            sf = _sf([make_model(model, cfg)], cfg).fit(df=fresh)
            out = sf.predict(h=cfg.horizon_days)
            parts.append(out.reset_index() if "unique_id" not in out.columns else out)
            kept.append(kept_fits(sf, starts, model, self.plan_date, self.every_days))
        self.forwarded += len(use)
        self.estimated += fresh["unique_id"].nunique()
        fc = pd.concat(parts, ignore_index=True).sort_values(["unique_id", "ds"], ignore_index=True)
        return fc, (pd.concat(kept, ignore_index=True) if kept else empty_fits())


def _new_item_forecast(part: pd.DataFrame, plan_date: str, cfg: ForecastSettings, adj: Adjustments) -> pd.DataFrame:
    """Short histories: their own (corrected, de-promoted) level x the category's day-of-week
    index (a pooled category profile); Poisson quantiles."""
    f = weekly_index(part["category"], part["ds"], adj.category_dow)
    level = (part["y_adj"] / f).groupby(part["unique_id"]).mean()
    fut = _future_frame(level.index.to_numpy(), plan_date, cfg)
    cat = part.groupby("unique_id")["category"].first()
    fd = weekly_index(fut["unique_id"].map(cat), fut["ds"], adj.category_dow)
    return pd.DataFrame(
        {
            "unique_id": fut["unique_id"],
            "ds": fut["ds"],
            "mean": fut["unique_id"].map(level).to_numpy() * fd,
            "model": "CategoryProfile",
        }
    )


GLOBAL_MODEL = "LightGBM"
GLOBAL_LAGS = (1, 2, 3, 7, 14, 21, 28)
PROMO_COLUMNS = ["location_id", "sku_id", "date", "discount_pct", "display", "promo_id"]
PRICE_COLUMNS = ["location_id", "sku_id", "date", "price"]
EVENT_REACH = 15  # days to the next / since the last event, capped (15 = no event near)


GLOBAL_MODE = {
    "lags": "direct",
    "scale": True,
    "objective": "tweedie",
    "power": 1.65,
    "trees": 250,
    "lr": 0.05,
    "leaves": 255,
    "min_child": 10,
    "debias": False,  # the CV model (trained on the sample) is not the served one: see the results
}  # settings measured on M5 (docs/results/2026-12-05-forecast-global.md)


def _mean_scaler():
    """A target transform dividing each series by the mean of its training history (at least
    0.1): one global model then learns shapes and responses, not 4,000 levels. Fit at every CV
    origin on the data before it, like every mlforecast target transform."""
    from mlforecast.grouped_array import GroupedArray
    from mlforecast.target_transforms import _BaseGroupedArrayTargetTransform

    class MeanScaler(_BaseGroupedArrayTargetTransform):
        def _apply(self, ga, op):
            sizes = np.diff(ga.indptr)
            return GroupedArray(op(ga.data, np.repeat(self.scale_, sizes)), ga.indptr)

        def fit_transform(self, ga):
            sizes = np.diff(ga.indptr)
            sums = np.add.reduceat(np.r_[ga.data, 0.0], ga.indptr[:-1]) * (sizes > 0)
            self.scale_ = np.maximum(sums / np.maximum(sizes, 1), 0.1)
            return self._apply(ga, np.divide)

        def update(self, ga):
            return self._apply(ga, np.divide)

        def inverse_transform(self, ga):
            return self._apply(ga, np.multiply)

        def take(self, idxs):
            out = copy.deepcopy(self)
            out.scale_ = self.scale_[idxs]
            return out

    return MeanScaler()


def _mlforecast(cfg: ForecastSettings, horizon: int | None = None, partitions: int | None = None):
    """The global model: LightGBM with a Tweedie (count) objective on each series divided by its
    mean level. Horizon-safe lags, two ways (`GLOBAL_MODE["lags"]`): "recursive" -- lags
    1-3/7/14/21/28 predicted one day ahead and applied recursively by mlforecast (each step's
    lags and rolling statistics come from the previous steps' predictions, never from actuals
    past the origin); "direct" -- only lags >= the horizon (every feature of every horizon day is
    an observed value before the origin). Plus rolling means and spread, the same weekday over 4
    weeks, calendar (day of week, day of month, month) and the exogenous columns of
    `_global_frames` (events with leads and lags, regional events, price, promotions, statics).
    On the Dask engine the same features and settings go through mlforecast's
    `DistributedMLForecast` (features per partition of series, LightGBM trained by its Dask
    estimator over the workers): the scale-out path past one machine."""
    kw = dict(
        freq="D",
        date_features=["dayofweek", "day", "month"],
        target_transforms=[_mean_scaler()] if GLOBAL_MODE["scale"] else None,
        **_global_lags(cfg, horizon),
    )
    if cfg.engine == "dask":
        from mlforecast.distributed import DistributedMLForecast
        from mlforecast.distributed.models.dask.lgb import DaskLGBMForecast

        # LightGBM's own Dask estimator: one training over the workers' partitions
        # (data-parallel), the features built where the series live
        return DistributedMLForecast(
            models={GLOBAL_MODEL: DaskLGBMForecast(**_lgb_params(cfg))}, num_partitions=partitions, **kw
        )
    import lightgbm as lgb
    from mlforecast import MLForecast

    return MLForecast(models={GLOBAL_MODEL: lgb.LGBMRegressor(**_lgb_params(cfg))}, **kw)


def _lgb_params(cfg: ForecastSettings) -> dict:
    """LightGBM's settings, the same on both engines."""
    objective = GLOBAL_MODE.get("objective", "tweedie")
    return dict(
        objective=objective,
        **({"tweedie_variance_power": GLOBAL_MODE["power"]} if objective == "tweedie" else {}),
        n_estimators=GLOBAL_MODE["trees"],
        learning_rate=GLOBAL_MODE["lr"],
        num_leaves=GLOBAL_MODE["leaves"],
        min_child_samples=GLOBAL_MODE["min_child"],
        subsample=0.8,
        subsample_freq=1,
        colsample_bytree=0.8,
        reg_lambda=1.0,
        random_state=cfg.seed,
        n_jobs=max(cfg.n_jobs, 1),
        verbose=-1,
        deterministic=True,
        force_row_wise=True,
    )


def _global_lags(cfg: ForecastSettings, horizon: int | None) -> dict:
    """The lags and rolling statistics (`GLOBAL_MODE["lags"]`, see `_mlforecast`)."""
    from mlforecast.lag_transforms import RollingMean, RollingStd, SeasonalRollingMean

    if GLOBAL_MODE["lags"] == "direct":
        h = int(horizon or cfg.horizon_days)
        return {
            "lags": [h, h + 7, h + 14, h + 21],
            "lag_transforms": {
                h: [
                    RollingMean(window_size=7),
                    RollingMean(window_size=28),
                    RollingMean(window_size=91),
                    RollingStd(window_size=28),
                    SeasonalRollingMean(season_length=7, window_size=8),
                ]
            },
        }
    return {
        "lags": list(GLOBAL_LAGS),
        "lag_transforms": {
            1: [RollingMean(window_size=7), RollingMean(window_size=28), RollingStd(window_size=28)],
            7: [SeasonalRollingMean(season_length=7, window_size=4)],
        },
    }


def _feature_reach(cfg: ForecastSettings) -> int:
    """Days of history before a training row that its lag and rolling features read."""
    return cfg.horizon_days + 91 if GLOBAL_MODE["lags"] == "direct" else 28 + 28


@dataclass
class GlobalInputs:
    """The global model's frames: `train` (history: unique_id, ds, y = corrected demand, statics,
    exogenous columns), `future` (unique_id, ds, exogenous columns for the horizon), `chunk`
    (unique_id -> category: one model per category) and what was assumed (`info`)."""

    train: pd.DataFrame
    future: pd.DataFrame
    chunk: pd.Series
    info: dict
    factor: dict = field(default_factory=dict)  # category -> level correction from the CV
    vocab: dict = field(default_factory=dict)  # static code column -> its labels, by code


def _regional_events(calendar: pd.DataFrame | None) -> pd.DataFrame:
    if calendar is None or calendar.empty or "region" not in calendar:
        return pd.DataFrame(columns=["region", "date"])
    r = calendar[calendar["region"].notna() & ~calendar["region"].astype(str).str.strip().isin(["", "nan", "None"])]
    return pd.DataFrame({"region": r["region"].astype(str).to_numpy(), "date": as_dates(r["date"]).to_numpy()})


def _add_event_features(g: pd.DataFrame, calendar: pd.DataFrame | None) -> None:
    """Calendar features of the global model's grid, in place."""
    # events: which event and offset (-7..+2), days to the next and since the last event
    ds = as_dates(g["ds"])
    g["event"] = _event_keys(ds, calendar).cat.codes.astype("int16").to_numpy()
    ev = np.sort(_global_events(calendar)["date"].unique()).astype("datetime64[D]")
    uniq, inv = np.unique(ds.to_numpy().astype("datetime64[D]"), return_inverse=True)
    if len(ev):
        i = np.searchsorted(ev, uniq, side="left")
        nxt = np.where(i < len(ev), (ev[np.minimum(i, len(ev) - 1)] - uniq).astype(int), EVENT_REACH)
        j = np.searchsorted(ev, uniq, side="right") - 1
        prv = np.where(j >= 0, (uniq - ev[np.maximum(j, 0)]).astype(int), EVENT_REACH)
    else:
        nxt = prv = np.full(len(uniq), EVENT_REACH)
    g["event_lead"] = np.minimum(nxt, EVENT_REACH)[inv].astype("int16")
    g["event_lag"] = np.minimum(prv, EVENT_REACH)[inv].astype("int16")
    reg = _regional_events(calendar)
    if len(reg):  # a regional row applies to the locations named like the region (CA -> CA_1, CA_2)
        locs = pd.Series(g["location_id"].unique())
        pairs = [(loc, r) for loc in locs for r in reg["region"].unique() if loc == r or loc.startswith(f"{r}_")]
        if pairs:
            lr = pd.DataFrame(pairs, columns=["location_id", "region"]).merge(reg, on="region")
            key = pd.MultiIndex.from_frame(lr[["location_id", "date"]].drop_duplicates())
            g["regional_event"] = pd.MultiIndex.from_arrays([g["location_id"], ds]).isin(key).astype("int8")


def _add_promotion_features(g: pd.DataFrame, promotions: pd.DataFrame | None, info: dict) -> None:
    """Promotion features of the grid, in place (`info` counts the planned future days)."""
    # promotions: the history's flag, and the plan (past and future days) when given
    promo = g["on_promo"].fillna(False).astype(bool).to_numpy()
    if promotions is not None:
        p = promotions[PROMO_COLUMNS].copy()
        p["date"] = as_dates(p["date"])
        p[["location_id", "sku_id"]] = p[["location_id", "sku_id"]].astype(str)
        p = p.groupby(["location_id", "sku_id", "date"], as_index=False).agg(
            discount_pct=("discount_pct", "max"), display=("display", "max")
        )
        m = (
            g[["location_id", "sku_id", "ds"]]
            .rename(columns={"ds": "date"})
            .merge(p, on=["location_id", "sku_id", "date"], how="left")
        )
        planned = m["discount_pct"].notna().to_numpy()
        g["discount_pct"] = m["discount_pct"].fillna(0.0).astype(float).to_numpy()
        g["display"] = m["display"].fillna(0).astype(float).to_numpy()
        promo = promo | planned
        info["promotions_future_days"] = int((planned & g["_future"].to_numpy()).sum())
    if promotions is not None or promo.any():
        g["promo"] = promo.astype("int8")


def _add_price_features(g: pd.DataFrame, price_path: pd.DataFrame | None, has_price: bool, info: dict) -> None:
    """Price features of the grid, in place: the price relative to the series' reference (median
    shelf price of its history), week on week, and whether it changed; future days take the price
    path (missing: the last known price; `info` says how many were missing)."""
    if price_path is not None:
        pp = price_path[PRICE_COLUMNS].copy()
        pp["date"] = as_dates(pp["date"])
        pp[["location_id", "sku_id"]] = pp[["location_id", "sku_id"]].astype(str)
        pp = pp.drop_duplicates(["location_id", "sku_id", "date"], keep="last")
        m = (
            g[["location_id", "sku_id", "ds"]]
            .rename(columns={"ds": "date"})
            .merge(pp, on=["location_id", "sku_id", "date"], how="left")
        )
        given = m["price"].to_numpy(float)
    else:
        given = np.full(len(g), np.nan)
    hist_price = g["unit_price"].to_numpy(float) if has_price else np.full(len(g), np.nan)
    price = np.where(g["_future"].to_numpy() & np.isfinite(given), given, hist_price)
    fut_mask = g["_future"].to_numpy()
    info["price_path_missing_share"] = float(np.mean(~np.isfinite(given[fut_mask]))) if fut_mask.any() else 0.0
    price = pd.Series(price).groupby(g["unique_id"]).ffill()  # missing: the last known price
    price = price.groupby(g["unique_id"]).bfill()
    ref = price.where(~g["_future"]).groupby(g["unique_id"]).transform("median")
    ref = ref.fillna(price.groupby(g["unique_id"]).transform("median"))
    prev = price.groupby(g["unique_id"]).shift(7)
    with np.errstate(divide="ignore", invalid="ignore"):
        g["price_rel"] = (price / ref).astype(float).to_numpy()
        g["price_wow"] = (price / prev).astype(float).to_numpy()
    g["price_change"] = (np.isfinite(g["price_wow"]) & (np.abs(g["price_wow"] - 1) > 1e-9)).astype("int8")
    g["price"] = price.to_numpy()


def _global_frames(
    adj: pd.DataFrame,
    plan_date: str,
    cfg: ForecastSettings,
    calendar: pd.DataFrame | None,
    promotions: pd.DataFrame | None,
    price_path: pd.DataFrame | None,
) -> GlobalInputs:
    """History and horizon of the non-new series with the global model's features, built on one
    grid (so codes agree between training and prediction). Only exogenous values are read for
    future days: the calendar, the promotion plan and the price path, never demand."""
    stat = adj[adj["demand_class"] != "new"]
    ids = np.sort(stat["unique_id"].unique())
    fut = _future_frame(ids, plan_date, cfg)
    first = stat.drop_duplicates("unique_id").set_index("unique_id")
    for c in ("location_id", "sku_id", "category", "demand_class"):
        fut[c] = fut["unique_id"].map(first[c].astype(object)).to_numpy()
    fut["on_promo"] = False
    cols = ["unique_id", "ds", "demand", "location_id", "sku_id", "category", "demand_class", "on_promo"]
    has_price = "unit_price" in stat
    if has_price:
        cols.append("unit_price")
        fut["unit_price"] = np.nan
    g = pd.concat(
        [
            stat[cols].assign(demand=stat["demand"].astype(float), _future=False),
            fut.assign(demand=np.nan, _future=True),
        ],
        ignore_index=True,
    )
    for c in ("location_id", "sku_id", "category"):
        g[c] = g[c].astype(str)
    g = g.sort_values(["unique_id", "ds"], ignore_index=True)
    info: dict = {}
    # statics (integer codes; LightGBM splits on them): each label's place among this frame's
    # sorted labels, kept with a trained model (a later frame is re-coded by it: forecast_global_fits)
    vocab = {}
    coded = (("item", "sku_id", "int32"), ("store", "location_id", "int16"), ("category_code", "category", "int16"))
    for code, label, dtype in coded:
        labels = pd.Categorical(g[label])
        g[code], vocab[code] = labels.codes.astype(dtype), labels.categories.to_numpy()
    g["class_code"] = pd.Categorical(g["demand_class"], categories=list(CLASSES)).codes.astype("int16")
    _add_event_features(g, calendar)
    _add_promotion_features(g, promotions, info)
    if has_price or price_path is not None:
        _add_price_features(g, price_path, has_price, info)
    statics = ["category_code", "class_code", "item", "store"]
    dynamic = [
        c
        for c in (
            "event",
            "event_lead",
            "event_lag",
            "regional_event",
            "promo",
            "discount_pct",
            "display",
            "price",
            "price_rel",
            "price_wow",
            "price_change",
        )
        if c in g
    ]
    train = g[~g["_future"]][["unique_id", "ds", "demand", *statics, *dynamic]].rename(columns={"demand": "y"})
    future = g[g["_future"]][["unique_id", "ds", *dynamic]]
    chunk = g.drop_duplicates("unique_id").set_index("unique_id")["category"]
    info["features"] = [*statics, *dynamic]
    # training rows whose lag / rolling features reach before the series' start are dropped when
    # the history is long enough to train on the rest (M5: 364 days); a short history (the demo
    # network) keeps them, with missing features, so the CV's earliest origin still has rows
    span = (as_dates(train["ds"]).max() - as_dates(train["ds"]).min()).days + 1 if len(train) else 0
    info["dropna"] = bool(span > _feature_reach(cfg) + cfg.cv_windows * cfg.cv_horizon + 28)
    return GlobalInputs(train.reset_index(drop=True), future.reset_index(drop=True), chunk, info, vocab=vocab)


GLOBAL_STATIC_COLUMNS = ["category_code", "class_code", "item", "store"]


@contextlib.contextmanager
def _global_engine(cfg: ForecastSettings):
    """Where the global model runs: yields (to the engine's frame, partitions, back to a local
    frame). Local: pandas in and out. Dask: the frames go to the cluster of `_dask_client`,
    partitioned by series, and the results come back as pandas with the local engine's dtypes."""
    if cfg.engine != "dask":
        yield (lambda df: df), None, (lambda out, like: out)
        return
    with _dask_client(cfg) as client:
        yield (
            (lambda df: _dask_frame(df, cfg, client)),
            _dask_partitions(cfg, client),
            (lambda out, like: _as_local_frame(out.compute() if hasattr(out, "compute") else out, like)),
        )


def _global_cv(gi: GlobalInputs, ids, cfg: ForecastSettings) -> tuple[pd.DataFrame, float]:
    """Rolling-origin CV of the global model on the series `ids`, one model per category chunk,
    refit at every origin on the data before it (mlforecast's cross_validation: the validation
    window's exogenous values are read, its demand never). Returns unique_id, ds, cutoff,
    LightGBM (demand scale) and the seconds it took."""
    t0 = time.perf_counter()
    ids = np.asarray(ids)
    out = []
    with _global_engine(cfg) as (on_engine, partitions, local):
        for cat in sorted(gi.chunk.loc[ids].unique()):
            cids = ids[gi.chunk.loc[ids].to_numpy() == cat]
            df = gi.train[gi.train["unique_id"].isin(cids)]
            cv = _mlforecast(cfg, partitions=partitions).cross_validation(
                on_engine(df),
                dropna=gi.info["dropna"],
                n_windows=cfg.cv_windows,
                h=cfg.cv_horizon,
                step_size=cfg.cv_horizon,
                static_features=GLOBAL_STATIC_COLUMNS,
            )
            cv = local(cv, df)
            cv[GLOBAL_MODEL] = cv[GLOBAL_MODEL].clip(lower=0)
            if GLOBAL_MODE.get("debias"):
                cv[GLOBAL_MODEL] *= _level_factors(cv, gi, cat)
            out.append(cv[["unique_id", "ds", "cutoff", GLOBAL_MODEL]])
    cv = pd.concat(out, ignore_index=True)
    return cv, time.perf_counter() - t0


def _level_factors(cv: pd.DataFrame, gi: GlobalInputs, cat) -> np.ndarray:
    """Level correction of a category's global model, from its CV: at each origin, sum(demand) /
    sum(forecast) over the earlier origins (1 at the first; clipped to 0.67-1.5), so the CV
    scores stay out of sample; the final fit gets the ratio over every origin (`gi.factor`)."""
    g = cv.groupby("cutoff")[["y", GLOBAL_MODEL]].sum().sort_index()
    cy, cf = g["y"].cumsum().shift(1), g[GLOBAL_MODEL].cumsum().shift(1)
    f = (cy / cf.where(cf > 0)).fillna(1.0).clip(0.67, 1.5)
    tot = g[GLOBAL_MODEL].sum()
    gi.factor[cat] = float(np.clip(g["y"].sum() / tot, 0.67, 1.5)) if tot > 0 else 1.0
    return cv["cutoff"].map(f).to_numpy(float)


def _global_select_and_calibrate(adj: pd.DataFrame, classes: pd.DataFrame, cfg: ForecastSettings, gi: GlobalInputs):
    """The mlforecast family's CV: the global model, refit at every origin on the data before it,
    over the same seeded sample of each class's series as the statsforecast family; scored,
    calibrated and covered per class exactly like it (so the gate compares like with like). The
    global model learns events and promotions itself: it is scored on demand, not multiplied
    by the uplift model's multipliers."""
    ids = []
    for cls in STAT_CLASSES:
        cls_ids = classes.loc[classes["demand_class"] == cls, "unique_id"].to_numpy()
        ids.extend(_sample_ids(cls_ids, cfg.cv_sample_series, cfg.seed))
    cv, secs = _global_cv(gi, ids, cfg)
    cv = cv.merge(adj[["unique_id", "ds", "demand", "demand_class"]], on=["unique_id", "ds"], how="left")
    cv["horizon"] = (as_dates(cv["ds"]) - as_dates(cv["cutoff"])).dt.days
    part = adj[adj["unique_id"].isin(ids)]
    rows, won = [], _Winners()
    for cls in STAT_CLASSES:
        n_cls = int((classes["demand_class"] == cls).sum())
        c = cv[cv["demand_class"] == cls]
        if n_cls == 0 or c.empty:
            continue
        scale = _scale(part[part["demand_class"] == cls], c[["cutoff"]].drop_duplicates(), cfg.season_length)
        sc = score(c, GLOBAL_MODEL, scale)
        n_s = c["unique_id"].nunique()
        won.add(cls, c, GLOBAL_MODEL, sc, n_cls, n_s)
        rows.append(
            {
                "demand_class": cls,
                "model": GLOBAL_MODEL,
                **sc,
                "series": n_cls,
                "cv_series": n_s,
                "cv_seconds": round(secs, 3),
                "est_fit_seconds": float("nan"),
                "excluded": "",
                "selected": True,
            }
        )
    return won.result(pd.DataFrame(rows))


def combo_name(model: str) -> str:
    """The name of the mean of a statsforecast model and the global model."""
    return f"{model}+{GLOBAL_MODEL}"


def _components(name: str) -> tuple[str | None, bool]:
    """(statsforecast model or None, whether the global model is in it) of a selected name."""
    if name == GLOBAL_MODEL:
        return None, True
    if name.endswith(f"+{GLOBAL_MODEL}"):
        return name[: -len(GLOBAL_MODEL) - 1], True
    return name, False


def _pool_metrics(metrics: dict, pooled: list, covs: list, chosen: dict) -> None:
    """Overall CV metrics: each class's sample weighted up to its share of the series."""
    if not pooled:
        return
    p = pd.concat(pooled, ignore_index=True)
    wa = (p["w"] * p["a"]).sum()
    metrics["cv_wape"] = float((p["w"] * (p["a"] - p["f"]).abs()).sum() / wa) if wa > 0 else float("nan")
    metrics["cv_bias"] = float((p["w"] * (p["f"] - p["a"])).sum() / wa) if wa > 0 else float("nan")
    for k in ("mase", "rmsse"):  # per-series measures: the mean of the classes'
        vals = [metrics[f"cv_{k}_{c}"] for c in chosen if np.isfinite(metrics.get(f"cv_{k}_{c}", np.nan))]
        metrics[f"cv_{k}"] = float(np.mean(vals)) if vals else float("nan")
    for k in ("coverage_80", "coverage_95"):
        vals = [(c[k], n) for c, n in covs if k in c]
        if vals:
            metrics[f"cv_{k}"] = float(sum(v * n for v, n in vals) / sum(n for _, n in vals))


def _global_fit(gi: GlobalInputs, cfg: ForecastSettings, carry: GlobalCarry | None = None) -> pd.DataFrame:
    """The global model fit on every non-new series (one model per category chunk, so memory
    stays bounded at M5 scale) and predicted recursively over the horizon with the future's
    exogenous values. Returns unique_id, ds, LightGBM (demand scale). With `carry` (policy
    refit_every_days) a category's kept model predicts instead of a new one where it
    is usable (core.forecast_global_fits), and the models this plan serves are kept in it."""
    out = []
    with _global_engine(cfg) as engine:
        on_engine, partitions, local = engine
        for cat in sorted(gi.chunk.unique()):
            cids = gi.chunk.index[gi.chunk == cat].to_numpy()
            tr = gi.train[gi.train["unique_id"].isin(cids)]
            x = gi.future[gi.future["unique_id"].isin(cids)]
            fc = _kept_global_forecast(gi, cat, tr, x, cfg, carry, engine) if carry is not None else None
            if fc is None:
                mlf = _mlforecast(cfg, partitions=partitions).fit(
                    on_engine(tr), static_features=GLOBAL_STATIC_COLUMNS, dropna=gi.info["dropna"]
                )
                fc = local(mlf.predict(h=cfg.horizon_days, X_df=on_engine(x)), tr)
                if carry is not None:
                    text = model_text(mlf.models_[GLOBAL_MODEL])
                    carry.keep(cat, gi.info["features"], gi.vocab, gi.factor.get(cat, 1.0), text)
            out.append(fc[["unique_id", "ds", GLOBAL_MODEL]])
    if not out:
        return pd.DataFrame(columns=["unique_id", "ds", GLOBAL_MODEL])
    fc = pd.concat(out, ignore_index=True)
    fc[GLOBAL_MODEL] = fc[GLOBAL_MODEL].clip(lower=0)
    if GLOBAL_MODE.get("debias"):
        fc[GLOBAL_MODEL] *= fc["unique_id"].map(gi.chunk).map(gi.factor).fillna(1.0).to_numpy(float)
    return fc


def _kept_global_forecast(gi: GlobalInputs, cat, tr, x, cfg: ForecastSettings, carry: GlobalCarry, engine):
    """The category's forecast by its kept model, or None when it has no usable one: the day's
    series re-coded by the model's vocabulary, their features computed as for training
    (mlforecast's `preprocess`, which `fit` runs before training) and predicted with the kept trees.
    On the Dask engine the features are built and predicted where the series' partitions live, as
    a fit's are (`DistributedMLForecast.preprocess`, then its `predict` ships the kept trees to the
    workers)."""
    on_engine, partitions, local = engine
    row = carry.usable(cat, gi.info["features"])
    coded = recode(tr, gi.vocab, json.loads(row["vocabulary"])) if row is not None else None
    if coded is None:
        return None
    mlf = _mlforecast(cfg, partitions=partitions)
    kw = dict(static_features=GLOBAL_STATIC_COLUMNS, dropna=gi.info["dropna"])
    # local: the features as arrays only (no feature frame is copied); Dask: kept on the workers
    if cfg.engine == "dask":
        mlf.preprocess(on_engine(coded), **kw)
    else:
        mlf.preprocess(coded, **kw, return_X_y=True)
    mlf.models_ = {GLOBAL_MODEL: KeptBooster(row["model"])}
    carry.carry(row)
    gi.factor.setdefault(cat, float(row["factor"]))
    return local(mlf.predict(h=cfg.horizon_days, X_df=on_engine(x)), tr)


def global_settings(cfg: ForecastSettings) -> str:
    """What a kept global model must have been trained under (`global_settings_key`)."""
    return global_settings_key(cfg.fingerprint(), GLOBAL_MODE, _lgb_params(cfg))


def _breakdown_metrics(points: pd.DataFrame, adj: pd.DataFrame) -> dict:
    """Where the selected models' CV accuracy is won and lost (MLflow metrics, unweighted over the
    CV sample): WAPE by horizon bucket, category, promoted vs other days, price-change days."""
    if points is None or points.empty:
        return {}
    cols = ["unique_id", "ds", "category", "on_promo"] + (["unit_price"] if "unit_price" in adj else [])
    a = adj[cols].copy()
    if "unit_price" in a:
        prev = a.groupby("unique_id")["unit_price"].shift(7)
        a["price_change"] = prev.notna() & a["unit_price"].notna() & ((a["unit_price"] - prev).abs() > 1e-9)
        a = a.drop(columns="unit_price")
    p = points.merge(a, on=["unique_id", "ds"], how="left")
    err = (p["demand"] - p["forecast"]).abs()

    def w(m) -> float:
        tot = p.loc[m, "demand"].sum()
        return float(err[m].sum() / tot) if tot > 0 else float("nan")

    out = {}
    for lo, hi in ((1, 7), (8, 14), (15, 28)):
        m = (p["horizon"] >= lo) & (p["horizon"] <= hi)
        if m.any():
            out[f"cv_wape_h{lo}_{hi}"] = w(m)
    for cat in p["category"].dropna().unique():
        out[f"cv_wape_cat_{''.join(ch if ch.isalnum() else '_' for ch in str(cat))}"] = w(p["category"] == cat)
    promo = p["on_promo"].fillna(False).astype(bool)
    if promo.any():
        out["cv_wape_promo"], out["cv_wape_nonpromo"] = w(promo), w(~promo)
    if "price_change" in p and p["price_change"].fillna(False).any():
        pc = p["price_change"].fillna(False).astype(bool)
        out["cv_wape_price_change"], out["cv_wape_price_steady"] = w(pc), w(~pc)
    return out


@dataclass(frozen=True)
class _DemandScale:
    """What turns a forecast on the adjusted scale back into demand (`_with_events`)."""

    cat: pd.Series  # unique_id -> category
    calendar: pd.DataFrame | None
    em: pd.DataFrame  # event multipliers per category x event day
    info: Adjustments
    series_ids: pd.DataFrame  # unique_id -> location_id, sku_id
    planned: pd.DataFrame | None  # the promotion plan, when the uplift model applies it
    cfg: ForecastSettings


def _planned_promotion_rows(part: pd.DataFrame, series_ids: pd.DataFrame, planned: pd.DataFrame) -> np.ndarray:
    """`promotions.planned_promotion_days` for `part`'s rows (unique_id, ds), matched as (series,
    day) integers: the plan's rows are mapped to series once, where joining the class's ~1 M rows
    on string keys took 0.8 s of an M5 forecast. Plan rows of series not forecast match nothing."""
    series = pd.Series(
        np.arange(len(series_ids)),
        index=pd.MultiIndex.from_arrays([series_ids["location_id"].astype(str), series_ids["sku_id"].astype(str)]),
    )
    at = pd.MultiIndex.from_arrays([planned["location_id"].astype(str), planned["sku_id"].astype(str)])
    plan_series = series.reindex(at).to_numpy()
    plan_dates = as_dates(planned["date"]).dt.normalize()
    known = ~np.isnan(plan_series) & plan_dates.notna().to_numpy()  # a day-less plan row matches nothing
    if not known.any() or not len(part):
        return np.zeros(len(part), dtype=bool)
    plan_day = plan_dates.to_numpy()[known].astype("datetime64[D]").astype(np.int64)
    row_series = series_ids.index.get_indexer(part["unique_id"].to_numpy())  # -1: not a series (no plan)
    row_day = as_dates(part["ds"]).dt.normalize().to_numpy().astype("datetime64[D]").astype(np.int64)
    first = min(plan_day.min(), row_day.min())
    span = max(plan_day.max(), row_day.max()) - first + 1
    plan_key = plan_series[known].astype(np.int64) * span + (plan_day - first)
    row_key = np.where(row_series >= 0, row_series * span + (row_day - first), -1)
    return np.isin(row_key, plan_key)


def _with_events(part: pd.DataFrame, ctx: _DemandScale) -> pd.DataFrame:
    """adjusted scale -> demand scale: the event multipliers of the future days, and the
    category's promotion uplift on the days of a planned promotion (landing v1.1): the
    statistical models were fit on de-promoted demand, so a promotion the plan announces
    comes back here, before it starts; a cancelled one is no longer in the plan"""
    keys = pd.DataFrame(
        {
            "category": part["unique_id"].map(ctx.cat).to_numpy(),
            "event_key": _event_keys(pd.Series(as_dates(part["ds"]).to_numpy()), ctx.calendar).to_numpy()
            if ctx.cfg.uplift
            else "",
        }
    )
    mult = event_multiplier(keys, ctx.em)
    if ctx.info.regional_uplift:
        loc = part["unique_id"].map(ctx.series_ids["location_id"]).astype(str).to_numpy()
        reg = _regional_days(loc, pd.Series(as_dates(part["ds"]).to_numpy()), ctx.calendar)
        mult = mult * _regional_multiplier(keys["category"], loc, reg, ctx.info.regional_uplift)
    if ctx.planned is not None:
        on = _planned_promotion_rows(part, ctx.series_ids, ctx.planned)
        up = part["unique_id"].map(ctx.cat).astype(str).map(ctx.info.promo_uplift).astype(float).fillna(1.0).to_numpy()
        mult = mult * np.where(on, up, 1.0)
    return part.assign(mean=np.clip(part["mean"].to_numpy(float) * mult, 0, None))


def _run_codes(uid: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`pd.factorize(values)` for values constant over each run of equal `uid` (a series' rows
    together): only each run's first value is hashed, its code repeated over the run. The same codes
    (in order of first appearance); hashing the ~11 M class strings of an M5 plan took 0.3 s."""
    starts = np.flatnonzero(np.r_[True, uid[1:] != uid[:-1]]) if len(uid) else np.array([], dtype=np.int64)
    codes, labels = pd.factorize(values[starts])
    return np.repeat(codes, np.diff(np.r_[starts, len(uid)])), labels


def _fit_chosen(
    adj: pd.DataFrame,
    chosen: dict,
    gi,
    ctx: _DemandScale,
    fit: Progress,
    carry: _Carry | None = None,
    global_carry: GlobalCarry | None = None,
) -> tuple[list[pd.DataFrame], pd.DataFrame]:
    """Each class's forecast by its chosen model: a statistical model (back on the demand scale),
    the global model, or the mean of both (the combined family); and the fits kept (`carry`,
    `global_carry`)."""
    cfg, parts, kept = ctx.cfg, [], []
    g = _global_fit(gi, cfg, global_carry) if any(_components(m)[1] for m in chosen.values()) else None
    # the class labels compared once, and only the columns the fits read taken: filtering the whole
    # ~11 M-row frame by a string comparison per class was 2.8 s at M5 scale
    codes, labels = _run_codes(adj["unique_id"].to_numpy(), adj["demand_class"].to_numpy())
    code_of = {label: i for i, label in enumerate(labels)}
    read = ["unique_id", "ds", "y_adj", "dow_idx", "category", "location_id", "sku_id"]
    read = [c for c in read if c in adj]
    for cls, model in chosen.items():
        part = adj.loc[codes == code_of.get(cls, -2), read]
        sf_name, uses_global = _components(model)
        f = None
        if sf_name:
            f, k = _fit_class(part, sf_name, cfg, ctx.info.category_dow, carry)
            f = _with_events(f, ctx)
            kept.append(k)
        if uses_global:
            gp = g[g["unique_id"].isin(part["unique_id"].unique())].rename(columns={GLOBAL_MODEL: "gm"})
            if f is None:
                f = gp.rename(columns={"gm": "mean"})
            else:
                f = f.merge(gp, on=["unique_id", "ds"], how="left")
                f["mean"] = 0.5 * (f["mean"] + f["gm"].fillna(f["mean"]))
                f = f.drop(columns="gm")
        parts.append(f[["unique_id", "ds", "mean"]].assign(model=model, demand_class=cls))
        fit.advance(part["unique_id"].nunique(), note=f"class {cls} with {model}")
    kept = [k for k in kept if len(k)]
    return parts, (pd.concat(kept, ignore_index=True) if kept else empty_fits())


def _apply_yearly_ramp(fc, history, plan_date, cfg, categories, calendar, adj) -> dict:
    """With a year of history, `fc`'s means times last year's category ramps (1 where held back),
    in place; returns the ramp's metrics."""
    ramp, ramp_info = (
        yearly_ramp(history, plan_date, cfg.horizon_days, categories, calendar)
        if cfg.yearly_profile
        else (pd.DataFrame(), {})
    )
    if len(ramp):  # a year of history: last year's category ramps (1 where held back)
        sku_of = adj.groupby("unique_id")["sku_id"].first().astype(str)
        r = ramp.set_index(["sku_id", "date"])["ramp"]
        at = pd.MultiIndex.from_arrays([fc["unique_id"].map(sku_of).to_numpy(), as_dates(fc["ds"]).to_numpy()])
        fc["mean"] = fc["mean"].to_numpy(float) * r.reindex(at).to_numpy(float, na_value=1.0)
    return ramp_info


def _demand_frame(fc, calib, adj, classes, points, plan_date):
    """The forecast as the demand_forecast table: dates and horizons, each class's calibrated
    quantiles (new items: Poisson around their level), location and SKU ids; the classes and CV
    points labelled by series."""
    fc["date"] = as_dates(fc["ds"])
    fc["horizon"] = (fc["date"] - pd.Timestamp(plan_date)).dt.days.astype(int)
    for q in QUANTILE_PROBS:
        fc[q] = np.nan
    series_category = adj.groupby("unique_id", observed=True)["category"].first().astype(str)
    for cls in fc["demand_class"].unique():
        m = (fc["demand_class"] == cls).to_numpy()
        if cls in calib:
            qs = calib[cls].quantiles(
                fc.loc[m, "mean"].to_numpy(),
                fc.loc[m, "horizon"].to_numpy(),
                fc.loc[m, "unique_id"].map(series_category).to_numpy(),
            )
        else:  # new items: Poisson around their level
            lam = np.maximum(fc.loc[m, "mean"].to_numpy(float), 1e-9)
            qs = {q: scipy.stats.poisson.ppf(p, lam).astype(float) for q, p in QUANTILE_PROBS.items()}
        for q, v in qs.items():
            fc.loc[m, q] = v
    ids = adj.groupby("unique_id")[["location_id", "sku_id"]].first()
    fc["location_id"] = fc["unique_id"].map(ids["location_id"]).astype(str)
    fc["sku_id"] = fc["unique_id"].map(ids["sku_id"]).astype(str)
    fc = fc[FORECAST_COLUMNS].sort_values(["location_id", "sku_id", "horizon"], ignore_index=True)
    label = ids["location_id"].astype(str) + "|" + ids["sku_id"].astype(str)
    classes = classes.assign(series=classes["unique_id"].map(label))
    if len(points):
        points = points.assign(unique_id=points["unique_id"].map(label))
    return fc, classes, points


def _global_forecast(gi, adj: pd.DataFrame, cfg: ForecastSettings, carry: GlobalCarry | None = None) -> pd.DataFrame:
    """The mlforecast family: the global model's forecast of every non-new series."""
    g = _global_fit(gi, cfg, carry)
    cls_of = adj.groupby("unique_id")["demand_class"].first()
    return pd.DataFrame(
        {
            "unique_id": g["unique_id"],
            "ds": g["ds"],
            "mean": g[GLOBAL_MODEL],
            "model": GLOBAL_MODEL,
            "demand_class": g["unique_id"].map(cls_of),
        }
    )


def run_forecast(
    history: pd.DataFrame,
    plan_date: str,
    cfg: ForecastSettings = ForecastSettings(),
    categories: pd.Series | None = None,
    calendar: pd.DataFrame | None = None,
    selection: dict | None = None,
    progress: Callable[[str], None] | None = None,
    *,
    promotions: pd.DataFrame | None = None,
    price_path: pd.DataFrame | None = None,
    fits: pd.DataFrame | None = None,
    cv_state: CvState | None = None,
    global_fits: pd.DataFrame | None = None,
) -> ForecastResult:
    """The whole stage (module docstring). `categories`: sku_id -> category (pooling); `calendar`:
    date, event [, region] (past and future; a row with a region applies to the locations named
    like it, e.g. SNAP days of CA to CA_1: the uplift model gives them a multiplier per category x
    location, the global model a feature). `selection` fixes
    the model per class (e.g. a champion's): only those models are cross-validated (for their
    intervals and metrics). `progress` receives one line per finished class of the
    cross-validation and of the final fit (series done / total, rate, ETA).

    `promotions` (location_id, sku_id, date, discount_pct, display, promo_id: one row per
    promoted store x SKU x day, past and planned future days) and `price_path` (location_id,
    sku_id, date, price for the horizon; a missing price is the last known one, and
    `price_path_missing_share` says how many) are read by the global model only (families
    "mlforecast" and "combined"); left None, the stage is what it was without them.

    `fits`: the fitted parameters an earlier plan kept (its result's `fits`); the chosen models'
    series whose fit is younger than `refit_every_days` are run forward with them instead of
    re-estimated (core.forecast_fits). The result's `fits` are what the next plan can carry.
    `cv_state` (an earlier plan's `ForecastResult.cv_state()`, `reusable_cv`): its model choice,
    intervals and CV metrics serve instead of a cross-validation, when it covers every class.
    `global_fits`: the global models an earlier plan kept (its result's `global_fits`, model texts
    resolved); a category's model younger than `refit_every_days` predicts instead of a new one
    (core.forecast_global_fits)."""
    series = prepare_series(history, plan_date, cfg)
    if series.empty:
        return ForecastResult(
            pd.DataFrame(columns=FORECAST_COLUMNS), {}, pd.DataFrame(), {}, Adjustments(), pd.DataFrame(), cfg
        )
    adj, info = adjust_history(series, cfg, categories, calendar)
    classes = classify(adj, cfg, col="demand")
    # every series has its class: a lookup, where a merge re-built the ~11 M-row frame (1.8 s at M5)
    adj["demand_class"] = adj["unique_id"].map(classes.set_index("unique_id")["demand_class"])
    em = info.event_multipliers
    cat = adj.groupby("unique_id")["category"].first()
    planned = promotions if cfg.uplift and promotions is not None and len(promotions) else None
    series_ids = adj.groupby("unique_id")[["location_id", "sku_id"]].first()

    ctx = _DemandScale(cat, calendar, em, info, series_ids, planned, cfg)
    carry, cv_on = None, plan_date
    parts = []
    has_stat = (classes["demand_class"] != "new").any()
    gi = (
        _global_frames(adj, plan_date, cfg, calendar, promotions, price_path)
        if cfg.family != "statsforecast" and has_stat
        else None
    )
    gcarry = _global_carry(plan_date, cfg, global_fits)
    reuse_cv = cv_state is not None and cv_state.covers(classes)
    if reuse_cv:
        chosen, table, calib = dict(cv_state.selection), cv_state.cv, cv_state.calibration
        metrics, points, cv_on = dict(cv_state.metrics), None, cv_state.on
    if cfg.family == "mlforecast":
        if not reuse_cv:
            chosen, table, calib, metrics, points = _global_select_and_calibrate(adj, classes, cfg, gi)
        if gi is not None:
            parts.append(_global_forecast(gi, adj, cfg, gcarry))
    else:
        if not reuse_cv:
            extra = _GlobalCandidate(gi, cfg) if cfg.family == "combined" and gi is not None else None
            chosen, table, calib, metrics, points = _select_and_calibrate(
                adj, classes, cfg, em, selection, progress, extra=extra
            )
        fit = Progress(len(classes), unit="series", label="fit", report=progress)
        carry = _Carry(plan_date, cfg.refit_every_days, fits) if cfg.refit_every_days > 1 else None
        fitted, kept = _fit_chosen(adj, chosen, gi, ctx, fit, carry, gcarry)
        parts += fitted
    new = adj[adj["demand_class"] == "new"]
    if len(new):
        parts.append(_with_events(_new_item_forecast(new, plan_date, cfg, info).assign(demand_class="new"), ctx))
        if cfg.family != "mlforecast":
            fit.advance(new["unique_id"].nunique(), note="new items with CategoryProfile")
    fc = pd.concat(parts, ignore_index=True)
    metrics.update(_apply_yearly_ramp(fc, history, plan_date, cfg, categories, calendar, adj))
    if gi is not None:  # what the global model's features saw
        metrics.update({k: float(v) for k, v in gi.info.items() if k != "features"})
        metrics["global_features"] = float(len(gi.info["features"]))
    if points is not None:  # else the reused CV's metrics, breakdown included
        metrics.update(_breakdown_metrics(points, adj))
    own_points = points if points is not None else pd.DataFrame()
    fc, classes, points = _demand_frame(fc, calib, adj, classes, own_points, plan_date)
    if cv_on != plan_date:
        points = cv_state.points  # labelled by series already
    res = ForecastResult(fc, chosen, table, metrics, info, classes, cfg, calib, points, cv_on=cv_on)
    if cfg.family != "mlforecast" and carry is not None:
        res.fits, res.fitting = kept, {"forwarded": carry.forwarded, "estimated": carry.estimated}
    if gcarry is not None and (gcarry.reused or gcarry.trained):
        res.global_fits = gcarry.table()
        res.fitting = {**res.fitting, "global_reused": gcarry.reused, "global_trained": gcarry.trained}
    return res


def _global_carry(plan_date: str, cfg: ForecastSettings, kept: pd.DataFrame | None) -> GlobalCarry | None:
    """Where the global model is kept between refits: families with it, on either engine, with a
    refit cadence (`refit_every_days` > 1)."""
    if cfg.family == "statsforecast" or cfg.refit_every_days <= 1:
        return None
    return GlobalCarry(plan_date, cfg.refit_every_days, global_settings(cfg), kept)


class _GlobalCandidate:
    """The combined family's extra candidates for `_select_and_calibrate`: the global model's CV
    (computed once, over every class's sample, on first use) and, per class, its mean with the
    class's best statsforecast model."""

    def __init__(self, gi: GlobalInputs, cfg: ForecastSettings) -> None:
        self.gi, self.cfg, self.cv, self.seconds = gi, cfg, None, 0.0

    def prepare(self, ids: np.ndarray) -> None:
        self.cv, self.seconds = _global_cv(self.gi, ids, self.cfg)

    def columns(self, cv: pd.DataFrame, best: str) -> tuple[pd.DataFrame, list[str]]:
        g = self.cv.set_index(["unique_id", "ds", "cutoff"])[GLOBAL_MODEL]
        idx = pd.MultiIndex.from_arrays([cv["unique_id"], cv["ds"], cv["cutoff"]])
        gm = g.reindex(idx).to_numpy(float)
        sf = cv[best].to_numpy(float)
        gm = np.where(np.isfinite(gm), gm, sf)  # a series the global model could not forecast: the local one
        combo = combo_name(best)
        return cv.assign(**{GLOBAL_MODEL: gm, combo: 0.5 * (sf + gm)}), [GLOBAL_MODEL, combo]


def forecast_demand(history: pd.DataFrame, plan_date: str, *args, **kwargs) -> pd.DataFrame:
    """Forecast days plan_date+1 .. plan_date+horizon for every store x SKU carried on plan_date:
    `run_forecast`'s forecast frame (same arguments)."""
    return run_forecast(history, plan_date, *args, **kwargs).forecast


def drift_statistics(
    forecast: pd.DataFrame, actual: pd.DataFrame, warn: float = 0.15, fail: float = 0.30, ts_limit: float = 4.0
) -> pd.DataFrame:
    """Forecast drift per demand class: realised demand against what an earlier forecast said
    for the same days.

    `forecast`: location_id, sku_id, date, mean, demand_class (made on an earlier plan date);
    `actual`: location_id, sku_id, date, units_sold, is_stockout. Stockout days are left out
    (their sales understate demand). Per class: series-days compared, bias = sum(f - a) / sum(a)
    (status `warn` past `warn`, `fail` past `fail`, in absolute value), and the classic tracking
    signal per series, TS = sum(a - f) / mean|a - f| over the window: the share of series with
    |TS| > `ts_limit` (a forecast without drift keeps TS near zero)."""
    a = actual.copy()
    a["date"] = as_dates(a["date"])
    if "is_stockout" in a:
        a = a[~a["is_stockout"].astype(bool)]
    m = forecast.assign(date=as_dates(forecast["date"])).merge(
        a[["location_id", "sku_id", "date", "units_sold"]], on=["location_id", "sku_id", "date"], how="inner"
    )
    m["e"] = m["units_sold"] - m["mean"]
    m["ae"] = m["e"].abs()
    per = m.groupby(["location_id", "sku_id", "demand_class"]).agg(se=("e", "sum"), mad=("ae", "mean")).reset_index()
    per["ts"] = np.where(per["mad"] > 0, per["se"] / per["mad"].where(per["mad"] > 0, 1), 0.0)
    rows = []
    for cls, g in [("all", m), *m.groupby("demand_class")]:
        tot = g["units_sold"].sum()
        bias = float(-g["e"].sum() / tot) if tot > 0 else float("nan")
        p = per if cls == "all" else per[per["demand_class"] == cls]
        status = (
            "ok" if not np.isfinite(bias) else ("fail" if abs(bias) > fail else ("warn" if abs(bias) > warn else "ok"))
        )
        rows.append(
            {
                "demand_class": cls,
                "days": int(len(g)),
                "series": int(len(p)),
                "bias": bias,
                "share_ts_beyond": float((p["ts"].abs() > ts_limit).mean()) if len(p) else 0.0,
                "median_abs_ts": float(p["ts"].abs().median()) if len(p) else 0.0,
                "status": status,
            }
        )
    return pd.DataFrame(rows)


def wape(actual: np.ndarray, forecast: np.ndarray) -> float:
    """Weighted absolute percentage error: sum|a - f| / sum a (nan when nothing was sold)."""
    a, f = np.asarray(actual, float), np.asarray(forecast, float)
    total = np.abs(a).sum()
    return float(np.abs(a - f).sum() / total) if total > 0 else float("nan")
