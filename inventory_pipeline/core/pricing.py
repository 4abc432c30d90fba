"""Price recommendations (core): elasticity-aware, margin-maximising, inside guardrails.

1. **Elasticity per SKU** (`estimate_elasticities`) from the pricing window of fct_daily_demand,
   as dense store x SKU x day arrays (`_panel`). Days without a sale take the chain's price and
   promotion flag that day; stockout days are left out (their sales are not demand); every
   comparison is against the *exposure* -- a series' mean on clean regular days times its
   category's day index -- so weekday, events and season cancel.
   (a) own: every regular-price change is a before/after comparison of units over exposure in
       the 14 clean regular days on each side (pooled over the stores that changed together):
       log ratio r against the log price step x; per SKU the weighted slope through the origin,
       with variance Poisson + the drift variance measured on placebo days without any change,
       its standard error widened by sqrt(chi^2 / dof) when the SKU's events scatter more than
       that (overdispersion; measured on Dominick's orange juice, docs/realdata.md).
   (b) category: promotions of different depth. A promotion's log lift is log(non-price lift) +
       e log(price / regular); across the category's SKUs (one point each, weighted) the slope on
       depth is e. Assumes the non-price lift (display, feature) is unrelated to depth.
   The category mean combines (a) and (b) by precision; each SKU's own estimate is shrunk toward
   it (normal-normal empirical Bayes, between-SKU sd from the policy); a SKU with no price change
   takes the category's value and says so, a category with nothing to learn from the chain's,
   a chain with no price variation at all the policy default. Clipped to the policy's range.
   Confidence = P(|true - estimate| < 0.5) under the posterior.
2. **Prices** (`optimise_prices`): the candidates of an item are the prices on its ladder (the
   allowed endings) inside its guardrails -- min margin over cost, max change per step, no change
   within `min_days_between_changes`, a markdown cap for items above `overstock_weeks` of supply
   whose stock is at risk (`overstocked`: end of life or season, or the salvage policy),
   and no cut that stimulates demand beyond what the network can supply within lead time -- plus
   the current price. Each candidate's value is its expected margin over the horizon under the
   constant-elasticity response (p - c) q0 (p / p0)^e; a change must gain `min_gain`. The
   category average-change cap couples the items: one price per item maximising total margin
   inside the cap is a multiple-choice knapsack, solved as a MILP by HiGHS through cvxpy, only
   for categories where the items' own best choices would break the cap.
3. **Output** per store x SKU: current and recommended price, expected units and margin at both,
   elasticity, its standard error, confidence and source, the guardrail range and the guardrail
   that bound, a rationale, and the demand multiplier (p / p0)^e that replenishment plans against.
   `guardrail_violations` re-checks every recommendation against the policy, independently of
   the optimiser (the blocking asset check).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass, replace
from types import SimpleNamespace

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .choice import ChoiceInfeasible, best_per_item, choose_one_per_item
from .dates import as_dates
from .keys import key_codes
from .policy import CostPolicy, PricingPolicy
from .price_response import price_response

MILP_MAX_VARIABLES = 60_000  # above this many candidates in capped categories: LP relaxation + rounding
FORECAST_PRICE_DAYS = 28  # the recent window whose price level the demand forecast reflects
PRICING_HISTORY_DAYS = 182  # days of fct_daily_demand the stage reads (elasticities, current prices)
PRICE_TOLERANCE = 0.005  # currency units: prices are compared at cent precision (half a cent apart)


def price_changed(new, old) -> np.ndarray:
    """Whether a price differs from another at cent precision: the one rule for "the price changed"
    (decisions, the price book, the twin's counts, the optimiser's holds)."""
    return np.abs(np.asarray(new, dtype=float) - np.asarray(old, dtype=float)) > PRICE_TOLERANCE


PRICE_COLUMNS = [
    "location_id",
    "sku_id",
    "current_price",
    "recommended_price",
    "unit_cost",
    "elasticity",
    "elasticity_se",
    "elasticity_confidence",
    "elasticity_source",
    "demand_multiplier",
    "expected_units_current",
    "expected_units_recommended",
    "expected_margin_current",
    "expected_margin_recommended",
    "weeks_of_supply",
    "end_of_life",
    "supply",
    "days_since_price_change",
    "price_floor",
    "price_ceiling",
    "binding_guardrail",
    "rationale",
    "change_reason",  # hold | margin_raise | margin_cut | markdown (the twin reports margin by it)
    # the estimate behind the elasticity: its degrees of freedom, the plan date it was made on and
    # the settings it was made under (what a later plan needs to reuse it, reestimate_every_days)
    "elasticity_df",
    "elasticity_estimated_on",
    "elasticity_settings",
]


class PricingInfeasible(ValueError):
    """The guardrails leave no allowed price for some items (e.g. min margin above max price)."""


# ---- 1. elasticities -----------------------------------------------------------------------------


def price_book(decisions: pd.DataFrame, plan_date: str) -> pd.DataFrame:
    """The prices this pipeline set: per store x SKU the latest price change of an earlier plan
    that was sent to the ERP (exportable status), effective the day after its plan date. Sales
    only reveal a shelf price when something sells, so without the book a slow mover's new price
    would stay unseen and the next plan would apply the same step again."""
    from .decisions import EXPORTABLE

    cols = ["location_id", "sku_id", "price", "effective_date"]
    if decisions is None or not len(decisions):
        return pd.DataFrame(columns=cols)
    d = decisions[
        (decisions["decision_type"] == "price_change")
        & decisions["status"].isin(EXPORTABLE)
        & (as_dates(decisions["plan_date"]) < pd.Timestamp(plan_date))
    ]
    d = d.assign(effective_date=as_dates(d["plan_date"]) + pd.Timedelta(days=1), price=d["new_price"].astype(float))
    d = d.sort_values("effective_date").drop_duplicates(["location_id", "sku_id"], keep="last")
    return d[cols].reset_index(drop=True)


def current_prices(
    history: pd.DataFrame, products: pd.DataFrame, plan_date: str, book: pd.DataFrame | None = None
) -> pd.DataFrame:
    """The regular shelf price on the plan date: the last observed non-promotional price of each
    store x SKU, or the `price_book` price where the pipeline set one after that observation; and
    the last day a different price was in force (for the minimum days between changes)."""
    h = history[(history["date"] <= pd.Timestamp(plan_date)) & (history["on_promo"] == 0)]
    h = h[h["price_observed"]] if "price_observed" in h else h
    out = _shelf_prices(h)
    if book is not None and len(book):
        b = book[as_dates(book["effective_date"]) <= pd.Timestamp(plan_date) + pd.Timedelta(days=1)]
        out = out.merge(b, on=["location_id", "sku_id"], how="outer")
        eff = as_dates(out["effective_date"])
        newer = eff.notna() & (out["date"].isna() | (eff > as_dates(out["date"])))
        out["unit_price"] = np.where(newer, out["price"], out["unit_price"])
        out["last_other_price_date"] = pd.concat(
            [as_dates(out["last_other_price_date"]), eff - pd.Timedelta(days=1)], axis=1
        ).max(axis=1)
    return out[["location_id", "sku_id", "unit_price", "last_other_price_date"]]


_NO_DAY = np.iinfo(np.int64).min


def _shelf_prices(h: pd.DataFrame) -> pd.DataFrame:
    """Per store x SKU of `h` (regular-price days; groups in key order): `unit_price`, the last
    known price; `date`, its last day; `last_other_price_date`, the day before the current price
    was first seen after the last day another price was (NaT when it never was). Vectorised over
    the rows (at M5 scale a half-year is ~5 M of them): one sort, then per-group reductions."""
    keys = ["location_id", "sku_id"]
    if h.empty:
        return pd.DataFrame(columns=[*keys, "unit_price", "date", "last_other_price_date"])
    g = h.groupby(keys, observed=True, sort=True)
    gid = g.ngroup().to_numpy()
    day = h["date"].to_numpy("datetime64[ns]").view(np.int64)
    order = np.lexsort((day, gid))
    gid, day, price = gid[order], day[order], h["unit_price"].to_numpy(float)[order]
    starts = np.flatnonzero(np.r_[True, gid[1:] != gid[:-1]])
    counts = np.diff(np.r_[starts, len(gid)])
    # the last known price (a day without one keeps the one before it)
    known = np.maximum.reduceat(np.where(np.isnan(price), -1, np.arange(len(price))), starts)
    cur = np.where(known >= starts, price[np.maximum(known, 0)], np.nan)
    differs = price_changed(price, np.repeat(cur, counts))
    other = np.maximum.reduceat(np.where(differs, day, _NO_DAY), starts)  # the last day of another price
    seen_after = ~differs & (day > np.repeat(other, counts)) & np.repeat(other > _NO_DAY, counts)
    first = np.minimum.reduceat(np.where(seen_after, day, np.iinfo(np.int64).max), starts)
    found = (other > _NO_DAY) & (first < np.iinfo(np.int64).max)
    last_other = np.where(found, first - pd.Timedelta(days=1).value, np.iinfo(np.int64).min)
    out = g.size().index.to_frame(index=False)
    for k in keys:  # string keys out, as the price book and the other inputs have them
        if isinstance(out[k].dtype, pd.CategoricalDtype):
            out[k] = out[k].astype(object)
    out["unit_price"] = cur
    out["date"] = day[starts + counts - 1].view("datetime64[ns]")
    out["last_other_price_date"] = last_other.view("datetime64[ns]")  # int64 min is NaT
    return out


MIN_EVENT_DAYS = 7  # days a price change must have on each side before it is measured (`_events`)
EVENT_WINDOW_DAYS = 14  # days compared on each side of a price change or promotion


@dataclass
class _Panel:
    """History as dense (store, SKU, day) arrays: what every estimator below reads."""

    locs: np.ndarray  # (L,) store order
    skus: np.ndarray  # (S,) product order
    category: np.ndarray  # (S,) category of each SKU
    units: np.ndarray  # (L, S, T)
    clean: np.ndarray  # (L, S, T) carried, not stocked out (sales = demand)
    price: np.ndarray  # (L, S, T) shelf price (observed, else inferred)
    regular: np.ndarray  # (L, S, T) regular (non-promotional) price
    promo: np.ndarray  # (L, S, T) bool
    exposure: np.ndarray  # (L, S, T) expected units at the regular price: series mean x category-day index
    seen: np.ndarray  # (L, S, T) bool: the series' own regular price was observed on or before day t
    on_hand: np.ndarray | None = None  # (L, S, T) closing stock where the history has it (nan: unknown)


def _ffill_bfill(a: np.ndarray) -> np.ndarray:
    """Forward then backward fill of nan along the last axis (vectorised)."""

    def ff(x):
        idx = np.where(np.isnan(x), 0, np.arange(x.shape[-1]))
        np.maximum.accumulate(idx, axis=-1, out=idx)
        return np.take_along_axis(x, idx, axis=-1)

    a = ff(a)
    return ff(a[..., ::-1])[..., ::-1]


def _nanmedian_first_axis(a: np.ndarray) -> np.ndarray:
    """np.nanmedian(a, axis=0), equal to it, by one sort (NaN sorts last): numpy's own goes
    through masked arrays for a short axis, 5x slower on the (stores x SKUs x days) panel."""
    s = np.sort(a, axis=0)
    n = (~np.isnan(a)).sum(axis=0)
    lo = np.take_along_axis(s, np.maximum((n - 1) // 2, 0)[None], 0)[0]
    hi = np.take_along_axis(s, np.maximum(n // 2 - (n == 0), 0)[None], 0)[0]
    with np.errstate(invalid="ignore"):
        return np.where(n > 0, (lo + hi) / 2, np.nan)


def _codes_in(keys: pd.Series, names: np.ndarray) -> np.ndarray:
    """Each key's position in `names` as strings (-1: not there), coding the rows once and
    converting only the distinct keys to strings (millions of rows, thousands of keys)."""
    codes, found = key_codes(keys, as_str=True)
    return pd.Index(names).get_indexer(found)[codes]


def _panel(history: pd.DataFrame, products: pd.DataFrame, book: pd.DataFrame | None = None) -> _Panel:
    h = history
    prod = products.drop_duplicates("sku_id").reset_index(drop=True)
    skus = prod["sku_id"].astype(str).to_numpy()
    cats = (
        (prod["category"] if "category" in prod else pd.Series("_all", index=prod.index))
        .fillna("_none")
        .astype(str)
        .to_numpy()
    )
    locs = np.sort(np.asarray(pd.unique(h["location_id"]), dtype=object).astype(str))
    dates = as_dates(h["date"])
    d0 = dates.min()
    T = int((dates.max() - d0).days) + 1 if len(h) else 0
    L, S = len(locs), len(skus)
    li = _codes_in(h["location_id"], locs)
    si = _codes_in(h["sku_id"], skus)
    keep = si >= 0  # history of SKUs not in the product master is ignored (ingestion quarantines them)
    li, si, ti = li[keep], si[keep], (dates[keep] - d0).dt.days.to_numpy()
    hk = h[keep] if not keep.all() else h
    units = np.zeros((L, S, T))
    present = np.zeros((L, S, T), dtype=bool)
    units[li, si, ti] = hk["units_sold"].to_numpy(float)
    present[li, si, ti] = True
    stock = np.zeros((L, S, T), dtype=bool)
    if "is_stockout" in hk:
        stock[li, si, ti] = hk["is_stockout"].fillna(False).to_numpy(bool)
    on_hand = None
    if "on_hand" in hk:
        on_hand = np.full((L, S, T), np.nan)
        on_hand[li, si, ti] = pd.to_numeric(hk["on_hand"], errors="coerce").to_numpy(float)
    obs_price = np.full((L, S, T), np.nan)
    obs_promo = np.full((L, S, T), np.nan)
    observed = hk["price_observed"].to_numpy(bool) if "price_observed" in hk else np.ones(len(hk), bool)
    obs_price[li[observed], si[observed], ti[observed]] = hk["unit_price"].to_numpy(float)[observed]
    obs_promo[li[observed], si[observed], ti[observed]] = hk["on_promo"].to_numpy(float)[observed]
    base = prod["base_price"].to_numpy(float) if "base_price" in prod else np.full(S, np.nan)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        # the regular price: observed off promotion; else the store's last seen (stores may price
        # differently, so another store's price would fake a change); before the first sale the
        # chain's that day; else the base price
        reg_obs = np.where(obs_promo == 0, obs_price, np.nan)
        chain_reg = _nanmedian_first_axis(reg_obs)  # (S, T)
        if book is not None and len(book):
            # the prices this pipeline set are known from their effective day on, sold or not
            bl = pd.Index(locs).get_indexer(book["location_id"].astype(str))
            bs = pd.Index(skus).get_indexer(book["sku_id"].astype(str))
            bt = (as_dates(book["effective_date"]) - d0).dt.days.to_numpy()
            ok = (bl >= 0) & (bs >= 0) & (bt >= 0) & (bt < T)
            bl, bs, bt = bl[ok], bs[ok], bt[ok]
            known = ~np.isnan(reg_obs[bl, bs, bt])
            reg_obs[bl[~known], bs[~known], bt[~known]] = book["price"].to_numpy(float)[ok][~known]
        # a series' own prices, carried forward and (before its first one) back; only a series
        # never seen at its regular price takes the chain's (then base price)
        regular = _ffill_bfill(reg_obs)
        never = np.isnan(regular)
        regular = np.where(never, np.broadcast_to(_ffill_bfill(chain_reg)[None], regular.shape), regular)
        regular = np.where(np.isnan(regular), base[None, :, None], regular)
        seen = np.maximum.accumulate(~np.isnan(reg_obs), axis=-1)  # an own regular price seen by day t
        # promotions on days without a sale: the chain's promotion flag and depth that day
        chain_promo = np.nanmax(obs_promo, axis=0)  # (S, T), nan where no store sold
        depth = _nanmedian_first_axis(np.where(obs_promo == 1, obs_price / regular, np.nan))
    promo = np.where(np.isnan(obs_promo), np.nan_to_num(chain_promo) > 0, obs_promo > 0)
    price = np.where(
        np.isnan(obs_price), regular * np.where(promo, np.nan_to_num(depth, nan=1.0)[None], 1.0), obs_price
    )
    clean = present & ~stock
    p = _Panel(locs, skus, cats, units, clean, price, regular, promo, np.zeros_like(units), seen, on_hand)
    return _with_controls(p, 0.0)


def _with_controls(p: _Panel, prior_elasticity: float) -> _Panel:
    """The panel with its exposure: a series' mean on clean regular days x its category's day index
    (weekday, events, season), left one out so a SKU's own change never moves its own control.
    The controls' units are taken net of their own regular-price level at `prior_elasticity`
    (0: as sold): other SKUs repriced over the window -- a pipeline raising a category in turns --
    would otherwise read as a common shock and cancel the response being measured."""
    units, regular = p.units, p.regular
    base_days = p.clean & ~p.promo
    n = base_days.sum(axis=2)
    mean = np.where(n > 0, (units * base_days).sum(axis=2) / np.maximum(n, 1), 0.0)  # (L, S)
    cat_codes, cat_idx = np.unique(p.category, return_inverse=True)
    with np.errstate(all="ignore"):
        avg_regular = (regular * base_days).sum(axis=2, keepdims=True) / np.maximum(n, 1)[:, :, None]
        level = np.where(n[:, :, None] > 0, regular / np.maximum(avg_regular, 1e-9), 1.0)
    level = np.where(np.isfinite(level) & (level > 0), level, 1.0)
    ctrl = units / level**prior_elasticity
    cmean = np.where(n > 0, (ctrl * base_days).sum(axis=2) / np.maximum(n, 1), 0.0)
    own_num = (ctrl * base_days).sum(axis=0)  # (S, T)
    own_den = (cmean[:, :, None] * base_days).sum(axis=0)
    T = units.shape[2]
    num, den = np.zeros((len(cat_codes), T)), np.zeros((len(cat_codes), T))
    np.add.at(num, cat_idx, own_num)
    np.add.at(den, cat_idx, own_den)
    loo_num, loo_den = num[cat_idx] - own_num, den[cat_idx] - own_den
    day_index = np.clip(np.where(loo_den > 1e-9, loo_num / np.maximum(loo_den, 1e-12), 1.0), 0.05, 20)
    return replace(p, exposure=mean[:, :, None] * day_index[None])


def _window_sums(c: np.ndarray, flat_idx: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Sum of a series over days [lo, hi) given its cumulative sum `c` (rows x T+1)."""
    return c[flat_idx, hi] - c[flat_idx, lo]


def _events(p: _Panel, W: int, overstock_weeks: float | None = None) -> pd.DataFrame:
    """Regular-price changes, one row per SKU x day x size of change, pooled over the stores that
    changed together: units and exposure on clean regular days in the W days before and after.
    A cut made while the store held more than `overstock_weeks` of its before-window sales is
    left out: a markdown is chosen because sales were low, and demand that drifts back after a
    dip would read as a price response (traced in the twin: such cuts read e = -4 to -10 where
    the true elasticities were -0.9 to -2.1)."""
    L, S, T = p.units.shape
    lr = np.log(p.regular)
    step = np.zeros_like(lr)
    step[:, :, 1:] = lr[:, :, 1:] - lr[:, :, :-1]
    real = np.zeros_like(p.seen)
    real[:, :, 1:] = p.seen[:, :, :-1]  # the old price was the series' own, not a fill
    l, s, t = np.nonzero((np.abs(step) > 0.01) & real)
    if len(t) == 0:
        return pd.DataFrame(columns=["sku", "x", "a", "ea", "b", "eb"])
    flat = l * S + s
    order = np.lexsort((t, flat))
    l, s, t, flat = l[order], s[order], t[order], flat[order]
    same = np.r_[False, flat[1:] == flat[:-1]]
    prev_t = np.where(same, np.r_[0, t[:-1]], 0)
    nxt_same = np.r_[flat[1:] == flat[:-1], False]
    next_t = np.where(nxt_same, np.r_[t[1:], T], T)
    lo, hi = np.maximum(t - W, prev_t), np.minimum(t + W, next_t)
    # a change is measured once a week has passed on both sides: a day or two after it, the
    # count is a few units against a day index from a handful of series, noise the Poisson
    # variance does not carry (traced: one-day windows read 13% cuts as 3x sales, e = -9 to -24)
    full = ((t - lo) >= MIN_EVENT_DAYS) & ((hi - t) >= MIN_EVENT_DAYS)
    if not full.any():
        return pd.DataFrame(columns=["sku", "x", "a", "ea", "b", "eb"])
    l, s, t, flat, lo, hi = l[full], s[full], t[full], flat[full], lo[full], hi[full]
    m = (p.clean & ~p.promo).reshape(L * S, T)
    cu = np.concatenate([np.zeros((L * S, 1)), np.cumsum(p.units.reshape(L * S, T) * m, axis=1)], axis=1)
    ce = np.concatenate([np.zeros((L * S, 1)), np.cumsum(p.exposure.reshape(L * S, T) * m, axis=1)], axis=1)
    if overstock_weeks is not None and p.on_hand is not None:
        cn = np.concatenate([np.zeros((L * S, 1)), np.cumsum(m, axis=1)], axis=1)
        per_day = _window_sums(cu, flat, lo, t) / np.maximum(_window_sums(cn, flat, lo, t), 1)
        stock = p.on_hand.reshape(L * S, T)[flat, t - 1]
        markdown = (step[l, s, t] < 0) & (np.nan_to_num(stock) > overstock_weeks * 7 * per_day)
        keep = ~markdown
        if not keep.any():
            return pd.DataFrame(columns=["sku", "x", "a", "ea", "b", "eb"])
        l, s, t, flat, lo, hi = l[keep], s[keep], t[keep], flat[keep], lo[keep], hi[keep]
    ev = pd.DataFrame(
        {
            "sku": s,
            "t": t,
            "x": np.round(step[l, s, t], 3),
            "b": _window_sums(cu, flat, lo, t),
            "eb": _window_sums(ce, flat, lo, t),
            "a": _window_sums(cu, flat, t, hi),
            "ea": _window_sums(ce, flat, t, hi),
        }
    )
    return ev.groupby(["sku", "t", "x"], as_index=False)[["a", "ea", "b", "eb"]].sum()


def _promotions(p: _Panel, W: int) -> pd.DataFrame:
    """Promotion runs pooled over stores: units and exposure on clean promoted days, against the
    W clean regular days before and after the run, and the run's depth log(price / regular)."""
    L, S, T = p.units.shape
    pr = p.promo
    start = pr.copy()
    start[:, :, 1:] &= ~pr[:, :, :-1]
    end = pr.copy()
    end[:, :, :-1] &= ~pr[:, :, 1:]
    ls, ss, ts = np.nonzero(start)
    le, se_, te = np.nonzero(end)
    if len(ts) == 0:
        return pd.DataFrame(columns=["sku", "x", "a", "ea", "b", "eb"])
    # starts and ends pair up in (store, SKU, day) order
    o1, o2 = np.lexsort((ts, ss, ls)), np.lexsort((te, se_, le))
    l, s, t0, t1 = ls[o1], ss[o1], ts[o1], te[o2] + 1
    flat = l * S + s
    reg = (p.clean & ~p.promo).reshape(L * S, T)
    on = (p.clean & p.promo).reshape(L * S, T)
    U, E = p.units.reshape(L * S, T), p.exposure.reshape(L * S, T)
    depth = np.log(p.price / p.regular).reshape(L * S, T)

    def cs(x):
        return np.concatenate([np.zeros((L * S, 1)), np.cumsum(x, axis=1)], axis=1)

    cu_r, ce_r, cu_p, ce_p, cd, cn = (
        cs(U * reg),
        cs(E * reg),
        cs(U * on),
        cs(E * on),
        cs(depth * on),
        cs(on.astype(float)),
    )
    lo, hi = np.maximum(t0 - W, 0), np.minimum(t1 + W, T)
    runs = pd.DataFrame(
        {
            "sku": s,
            "t": t0,
            "a": _window_sums(cu_p, flat, t0, t1),
            "ea": _window_sums(ce_p, flat, t0, t1),
            "b": _window_sums(cu_r, flat, lo, t0) + _window_sums(cu_r, flat, t1, hi),
            "eb": _window_sums(ce_r, flat, lo, t0) + _window_sums(ce_r, flat, t1, hi),
            "xs": _window_sums(cd, flat, t0, t1),
            "n": _window_sums(cn, flat, t0, t1),
        }
    )
    g = runs.groupby(["sku", "t"], as_index=False)[["a", "ea", "b", "eb", "xs", "n"]].sum()
    g["x"] = g["xs"] / g["n"].where(g["n"] > 0)
    return g.dropna(subset=["x"])


def _log_ratio(d: pd.DataFrame) -> pd.DataFrame:
    """log of the after / before (or promoted / regular) rate, exposure-adjusted, and its Poisson
    variance; rows with nothing on either side are dropped."""
    ok = (d["ea"] > 0.5) & (d["eb"] > 0.5) & (d["a"] + d["b"] > 0)
    d = d[ok].copy()
    d["r"] = np.log((d["a"] + 0.5) / d["ea"]) - np.log((d["b"] + 0.5) / d["eb"])
    d["v"] = 1.0 / (d["a"] + 0.5) + 1.0 / (d["b"] + 0.5)
    return d


def _placebo_variance(p: _Panel, W: int) -> float:
    """Variance of the same before/after log ratio at days with no price change, beyond its
    Poisson part: the slow drift of demand a price change is confounded with, per window."""
    L, S, T = p.units.shape
    if T < 2 * W + 1:
        return 0.05
    m = (p.clean & ~p.promo).sum(axis=0) > 0  # (S, T)
    U = (p.units * (p.clean & ~p.promo)).sum(axis=0)
    E = (p.exposure * (p.clean & ~p.promo)).sum(axis=0)
    cu = np.concatenate([np.zeros((S, 1)), np.cumsum(U, axis=1)], axis=1)
    ce = np.concatenate([np.zeros((S, 1)), np.cumsum(E, axis=1)], axis=1)
    days = np.arange(W, T - W + 1, W)
    steps = np.abs(np.diff(np.log(p.regular), axis=2)).max(axis=0) > 0.01  # (S, T-1) any change
    changed = np.concatenate([np.zeros((S, 1), bool), steps], axis=1)
    cc = np.concatenate([np.zeros((S, 1)), np.cumsum(changed | p.promo.any(axis=0), axis=1)], axis=1)
    rows = []
    for t in days:  # a handful of days (T / W), vectorised over SKUs
        quiet = (cc[:, t + W] - cc[:, t - W]) == 0
        d = pd.DataFrame(
            {
                "b": cu[:, t] - cu[:, t - W],
                "eb": ce[:, t] - ce[:, t - W],
                "a": cu[:, t + W] - cu[:, t],
                "ea": ce[:, t + W] - ce[:, t],
            }
        )[quiet & m[:, t]]
        rows.append(d)
    d = _log_ratio(pd.concat(rows, ignore_index=True)) if rows else pd.DataFrame()
    if len(d) < 10:
        return 0.05
    return float(max(np.mean(d["r"] ** 2) - np.mean(d["v"]), 0.0))


def _between_variance(est: np.ndarray, var: np.ndarray) -> float:
    """DerSimonian-Laird between-group variance of estimates `est` with sampling variances `var`
    (inf with fewer than two groups: nothing to pool toward)."""
    if len(est) < 2:
        return np.inf
    w = 1.0 / var
    m = np.sum(w * est) / w.sum()
    q = float(np.sum(w * (est - m) ** 2))
    return max(0.0, (q - (len(est) - 1)) / float(w.sum() - np.sum(w**2) / w.sum()))


def _wls_slope(x, r, w):
    """Slope through the origin and its standard error."""
    sxx = float(np.sum(w * x * x))
    if sxx <= 0:
        return np.nan, np.inf
    return float(np.sum(w * x * r) / sxx), float(1 / np.sqrt(sxx))


def reference_prices(p: _Panel, days: int = 28, lag: int = 0) -> pd.DataFrame:
    """The regular price level a forecast fitted on this history assumes: the mean regular price of
    each store x SKU over the `days` days up to the forecast's own plan date, `lag` days before the
    history's last day (a forecast re-run every week is `lag` days old on the days in between). A
    price set since then is not in the forecast yet, so the demand multiplier is taken against
    this level, not only against today's price."""
    L, S, T = p.regular.shape
    end = max(T - max(int(lag), 0), 1)
    ref = p.regular[:, :, max(0, end - days) : end].mean(axis=2) if T else np.full((L, S), np.nan)
    return pd.DataFrame(
        {"location_id": np.repeat(p.locs, S), "sku_id": np.tile(p.skus, L), "reference_price": ref.ravel()}
    )


def estimate_elasticities(
    history: pd.DataFrame, products: pd.DataFrame, cfg: PricingPolicy = PricingPolicy(), panel: _Panel | None = None
) -> pd.DataFrame:
    """Own-price elasticity per SKU (module docstring, step 1). `history`: fct_daily_demand rows
    (location_id, sku_id, date, units_sold, unit_price, price_observed, on_promo, is_stockout).
    Returns sku_id, category, elasticity, se, confidence, source, n_events, n_promotions.

    Every comparison's controls are the category's other SKUs. With `net_control_repricing` on
    they are taken net of their own price level at `default_elasticity` (`_with_controls`), so
    a pipeline raising a category in turns does not read as a common shock (docs/pricing.md:
    measured, and off by default)."""
    p = _panel(history, products) if panel is None else panel  # its controls as sold
    return _estimate(_with_controls(p, cfg.default_elasticity) if cfg.net_control_repricing else p, cfg)


def elasticity_settings(cfg: PricingPolicy) -> str:
    """What an elasticity estimate depends on besides the data (12 hex): the pricing section but
    its cadence, and the history window. Any change of them estimates afresh: a reuse never mixes
    settings."""
    d = cfg.model_dump(mode="json", exclude={"reestimate_every_days"})
    return hashlib.sha256(json.dumps([d, PRICING_HISTORY_DAYS], sort_keys=True).encode()).hexdigest()[:12]


KEPT_ELASTICITY_COLUMNS = [
    "sku_id",
    "elasticity",
    "elasticity_se",
    "elasticity_df",
    "elasticity_confidence",
    "elasticity_source",
    "elasticity_estimated_on",
    "elasticity_settings",
]


def reusable_elasticities(kept: pd.DataFrame | None, skus, plan_date: str, cfg: PricingPolicy) -> pd.DataFrame | None:
    """The SKUs' elasticities an earlier plan estimated (`kept`: its price_recommendations), when
    this plan may reuse them (policy `reestimate_every_days`): one estimate, made under the same
    settings fewer than `reestimate_every_days` days before `plan_date`, covering every SKU of
    `skus`. Returns them as `estimate_elasticities` names them, or None: estimate now. The
    estimate pools SKUs by category, so a SKU it lacks means estimating all of them afresh."""
    if kept is None or kept.empty or cfg.reestimate_every_days <= 1 or not set(KEPT_ELASTICITY_COLUMNS) <= set(kept):
        return None
    k = kept[KEPT_ELASTICITY_COLUMNS].drop_duplicates("sku_id")
    on = as_dates(k["elasticity_estimated_on"])
    age = (pd.Timestamp(plan_date) - on).dt.days
    same = (k["elasticity_settings"] == elasticity_settings(cfg)).all() and on.nunique(dropna=False) == 1
    if not same or not ((age >= 0) & (age < cfg.reestimate_every_days)).all():
        return None
    if not pd.Index(pd.unique(np.asarray(skus, dtype=object))).isin(k["sku_id"].astype(str)).all():
        return None
    return pd.DataFrame(
        {
            "sku_id": k["sku_id"].astype(str).to_numpy(),
            "elasticity": k["elasticity"].to_numpy(float),
            "se": k["elasticity_se"].to_numpy(float),
            "df": k["elasticity_df"].to_numpy(float),
            "confidence": k["elasticity_confidence"].to_numpy(float),
            "source": k["elasticity_source"].to_numpy(object),
            "estimated_on": on.to_numpy(),
        }
    )


def _own_estimates(p: _Panel, cfg: PricingPolicy, drift: float, W: int):
    """(a) Each SKU's own elasticity from its regular-price changes, each a before/after
    comparison: estimate, standard error, number of events, and the error's degrees of freedom."""
    S = len(p.skus)
    ev = _log_ratio(_events(p, W, cfg.overstock_weeks)) if p.units.size else pd.DataFrame()
    own_e, own_se, n_ev = np.full(S, np.nan), np.full(S, np.inf), np.zeros(S, int)
    own_df = np.full(S, np.inf)  # degrees of freedom of own_se (inf: a variance taken as known)
    if len(ev):
        ev["w"] = 1.0 / (ev["v"] + drift)
        ev["wxx"], ev["wxr"] = ev["w"] * ev["x"] ** 2, ev["w"] * ev["x"] * ev["r"]
        g = ev.groupby("sku").agg(
            wxx=("wxx", "sum"), wxr=("wxr", "sum"), n=("x", "size"), xmax=("x", lambda x: float(np.abs(x).max()))
        )
        ok = g["xmax"] >= cfg.min_price_variation
        idx = g.index[ok].to_numpy(int)
        own_e[idx] = (g["wxr"] / g["wxx"])[ok].to_numpy()
        # overdispersion: when a SKU's events scatter around its slope more than their variances
        # say (chi^2 / dof > 1: demand moved for reasons the windows do not see), the standard
        # error grows by sqrt(chi^2 / dof) (the Birge ratio of meta-analysis); never shrinks
        slope = pd.Series(np.nan, index=g.index)
        slope[ok] = (g["wxr"] / g["wxx"])[ok]
        resid2 = ev["w"] * (ev["r"] - ev["sku"].map(slope) * ev["x"]) ** 2
        chi2 = resid2.groupby(ev["sku"]).sum().reindex(g.index)
        phi = np.where(g["n"] > 2, chi2 / np.maximum(g["n"] - 1, 1), 1.0)
        own_se[idx] = (np.sqrt(np.maximum(phi, 1.0)) / np.sqrt(g["wxx"]))[ok].to_numpy()
        n_ev[idx] = g["n"][ok].to_numpy()
        # a standard error scaled by the events' own scatter is estimated from n - 1 residuals
        own_df[idx] = np.where((g["n"] > 2) & (phi > 1.0), g["n"] - 1, np.inf)[ok.to_numpy()]
    return own_e, own_se, n_ev, own_df


def _promotion_priors(p: _Panel, drift: float, W: int, tau2: float):
    """(b) Per category, the elasticity its promotions of different depth imply, and each SKU's
    number of promotions."""
    # (b) category: promotion depth. A promotion's lift is log(lift) + e log(depth); across the
    # category's promotions of different depth the slope is e (non-price lift assumed unrelated
    # to depth). One point per SKU (its promotions share the lift), weighted by its precision.
    S = len(p.skus)
    pm = _log_ratio(_promotions(p, W)) if p.units.size else pd.DataFrame()
    n_pr = np.zeros(S, int)
    prior = {}
    if len(pm):
        pm["w"] = 1.0 / (pm["v"] + drift)
        per = pm.groupby("sku").apply(
            lambda d: pd.Series(
                {
                    "x": np.average(d["x"], weights=d["w"]),
                    "r": np.average(d["r"], weights=d["w"]),
                    "v": 1.0 / d["w"].sum(),
                    "n": len(d),
                }
            ),
            include_groups=False,
        )
        n_pr[per.index.to_numpy(int)] = per["n"].to_numpy(int)
        per["category"] = p.category[per.index.to_numpy(int)]
        for c, d in per.groupby("category"):
            if len(d) < 3 or np.ptp(d["x"]) < 0.05:
                continue
            lift_var = 0.02
            for _ in range(3):  # weights need the between-SKU spread of non-price lift (moments)
                w = 1.0 / (d["v"] + lift_var + tau2 * d["x"] ** 2)
                xm, rm = np.average(d["x"], weights=w), np.average(d["r"], weights=w)
                slope, se = _wls_slope(d["x"] - xm, d["r"] - rm, w)
                resid = d["r"] - rm - slope * (d["x"] - xm)
                lift_var = max(
                    float(
                        np.average(resid**2, weights=w) * len(d) / max(len(d) - 2, 1) - np.average(d["v"], weights=w)
                    ),
                    0.005,
                )
            # a slope and intercept fitted through len(d) points: len(d) - 2 degrees of freedom
            prior[c] = (slope, se, f"promotion depth over {len(d)} SKUs", max(len(d) - 2, 1))
    return prior, n_pr


def _category_means(p: _Panel, own_e, own_se, own_df, own_ok, prior: dict, tau2: float):
    """Each category's prior mean and variance: its promotion-depth slope and its SKUs' own
    estimates, by precision; how it was made and its Satterthwaite term."""
    cat_names = np.unique(p.category)
    # category prior: the promotion-depth slope and the category's own estimates, by precision
    mu, mu_var, how, mu_w4 = {}, {}, {}, {}
    for c in cat_names:
        m = (p.category == c) & own_ok
        ests, vars_, parts = list(own_e[m]), list(own_se[m] ** 2 + tau2), []
        est_v, est_df = list(own_se[m] ** 2), list(own_df[m])  # the estimated part of each variance
        if m.any():
            parts.append(f"{int(m.sum())} SKU(s) with price changes")
        if c in prior and np.isfinite(prior[c][0]):
            ests.append(prior[c][0])
            vars_.append(prior[c][1] ** 2)
            est_v.append(prior[c][1] ** 2)
            est_df.append(prior[c][3])
            parts.append(prior[c][2])
        if ests:
            w = 1.0 / np.asarray(vars_)
            mu[c], mu_var[c], how[c] = float(np.sum(w * ests) / w.sum()), float(1.0 / w.sum()), " and ".join(parts)
            mu_w4[c] = float(np.sum(w**4 * np.asarray(est_v) ** 2 / np.asarray(est_df)))
    return mu, mu_var, how, mu_w4


def _prior_sources(p: _Panel, mu: dict, how: dict, chain: tuple, shrink: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Per SKU, where its prior came from: its category's evidence, the chain's average, or the
    policy default; and how far the chain pulled it, where that moved the estimate."""
    src_c = np.array(
        [
            ("category: " + how[c])
            if c in mu
            else (
                "chain average (no price variation in the category)"
                if mu
                else "policy default (no price variation at all)"
            )
            for c in p.category
        ],
        dtype=object,
    )
    pulled = np.abs(shift) >= 0.05  # say so where it moved the estimate
    src_c[pulled] = src_c[pulled] + np.array(
        [f", {b:.0%} toward the chain's {chain[0]:.2f}" for b in shrink[pulled]], dtype=object
    )
    return src_c


def _estimate(p: _Panel, cfg: PricingPolicy) -> pd.DataFrame:
    """The estimates of `estimate_elasticities` for a panel whose exposure is set."""
    W = EVENT_WINDOW_DAYS
    lo_b, hi_b = cfg.elasticity_bounds
    S = len(p.skus)
    out = pd.DataFrame({"sku_id": p.skus, "category": p.category})
    drift = _placebo_variance(p, W) if p.units.size else 0.05
    own_e, own_se, n_ev, own_df = _own_estimates(p, cfg, drift, W)
    tau2 = cfg.elasticity_between_sku_sd**2
    prior, n_pr = _promotion_priors(p, drift, W, tau2)
    own_ok = np.isfinite(own_se) & np.isfinite(own_e)
    mu, mu_var, how, mu_w4 = _category_means(p, own_e, own_se, own_df, own_ok, prior, tau2)
    if mu:  # categories with nothing to learn from take the chain's pooled value
        wc = np.array([1 / mu_var[c] for c in mu])
        chain = (float(np.sum(wc * np.array(list(mu.values()))) / wc.sum()), float(1 / wc.sum()) + tau2)
    else:
        chain = (cfg.default_elasticity, cfg.elasticity_between_sku_sd**2 * 4)
    m_c = np.array([mu.get(c, chain[0]) for c in p.category])
    v_c = np.array([mu_var.get(c, chain[1]) for c in p.category])
    # leave one out: a SKU's own estimate is not also part of the prior it is shrunk toward
    w_own = np.where(own_ok, 1.0 / (own_se**2 + tau2), 0.0)
    in_mu = own_ok & np.array([c in mu for c in p.category])
    w_rest = np.where(in_mu, 1.0 / v_c - w_own, 1.0 / v_c)
    alone = in_mu & (w_rest <= 1e-12)  # the category's only evidence is this SKU: the chain's prior
    m_c = np.where(
        in_mu & ~alone,
        (m_c / v_c - w_own * np.nan_to_num(own_e)) / np.where(alone, 1.0, np.maximum(w_rest, 1e-12)),
        m_c,
    )
    v_c = np.where(in_mu & ~alone, 1.0 / np.maximum(w_rest, 1e-12), v_c)
    m_c, v_c = np.where(alone, chain[0], m_c), np.where(alone, chain[1], v_c)
    # each category's mean shrinks toward the chain's (normal-normal across categories; their
    # spread by DerSimonian-Laird): a slope over 4 SKUs with se 2.3 says little, and the chain's
    # other categories then say more about it than the policy's bound does
    tau2_cat = _between_variance(np.array([mu[c] for c in mu]), np.array([mu_var[c] for c in mu]))
    has_c = np.isin(p.category, list(mu)) & ~alone
    shrink = np.where(has_c, v_c / (v_c + tau2_cat), 0.0) if np.isfinite(tau2_cat) else np.zeros(S)
    shift = shrink * (chain[0] - m_c)
    m_c = m_c + shift
    v_c = (1 - shrink) * v_c + shrink**2 * (chain[1] - tau2)
    v_c = v_c + tau2
    # Satterthwaite: the category mean's variance is a weighted sum of estimated variances, each
    # with its own degrees of freedom; q = sum (part^2 / df) carries them (q = 0: known variance)
    A_c = np.array([mu_w4.get(c, 0.0) for c in p.category])
    A_own = np.where(in_mu & np.isfinite(own_se), w_own**4 * np.nan_to_num(own_se, posinf=0.0) ** 4 / own_df, 0.0)
    W_rest = np.where(
        in_mu & ~alone,
        np.maximum(w_rest, 1e-12),
        np.array([1.0 / mu_var.get(c, np.inf) if c in mu else 1.0 for c in p.category]),
    )
    q_c = np.where(alone | ~has_c, 0.0, np.maximum(A_c - A_own, 0.0) / W_rest**4) * (1 - shrink) ** 4
    src_c = _prior_sources(p, mu, how, chain, shrink, shift)
    # each SKU: its own estimate shrunk toward the category (normal-normal, empirical Bayes)
    v_own = np.where(own_ok, own_se**2, np.inf)
    post_v = 1.0 / (1.0 / v_c + 1.0 / v_own)
    post_m = post_v * (m_c / v_c + np.where(own_ok, own_e, 0.0) / v_own)
    k = np.where(own_ok, post_v / v_own, 0.0)
    out["elasticity"] = np.clip(post_m, lo_b, hi_b)
    out["se"] = np.sqrt(post_v)
    # the posterior mixes own (weight k) and category (1 - k): its degrees of freedom follow
    q_own = np.where(own_ok, np.nan_to_num(own_se, posinf=0.0) ** 4 / own_df, 0.0)
    q_post = k**4 * q_own + (1 - k) ** 4 * q_c
    out["df"] = np.where(
        q_post > 0, post_v**2 / np.where(q_post > 0, q_post, 1.0), np.inf
    )  # confidence: the probability that the true elasticity is within 0.5 of the estimate
    out["confidence"] = np.round(_erf(0.5 / (np.sqrt(2 * post_v))), 4)
    out["own_weight"] = np.round(k, 4)
    out["source"] = (
        np.where(own_ok, [f"own: {n} price change(s), {w:.0%} weight; rest " for n, w in zip(n_ev, k)], "") + src_c
    )
    out["n_events"], out["n_promotions"] = n_ev, n_pr
    return out


def _erf(x):
    from scipy.special import erf

    return erf(x)


# ---- 2. prices -----------------------------------------------------------------------------------


def _ladder_snap(x: np.ndarray, endings: tuple[float, ...], up: bool = False) -> np.ndarray:
    """The highest price on the ladder at or below x (`up`: the lowest at or above x); without
    endings, x itself to the cent."""
    x = np.asarray(x, float)
    if not endings:
        return (np.ceil if up else np.floor)(np.round(x * 100, 6)) / 100
    base = np.floor(x)[..., None] + (0 if up else -1)
    e = np.asarray(endings)
    c = np.concatenate([base + e, base + 1 + e], axis=-1)
    if up:
        return np.round(np.where(c >= x[..., None] - 1e-9, c, np.inf).min(axis=-1), 2)
    return np.round(np.where(c <= x[..., None] + 1e-9, c, -np.inf).max(axis=-1), 2)


def _ladder(lo: np.ndarray, hi: np.ndarray, p0: np.ndarray, endings: tuple[float, ...], max_k: int = 12):
    """Candidate prices per item: `max_k` points spread over [lo, hi], each snapped down to the
    ladder, plus the ladder's lowest and highest prices inside [lo, hi] (O(items x max_k), whatever
    the price level), plus the current price where it lies inside. Returns (item, price)."""
    pts = lo[:, None] + (hi - lo)[:, None] * np.linspace(0, 1, max_k)[None, :]
    grid = np.concatenate([_ladder_snap(pts, endings), _ladder_snap(lo, endings, up=True)[:, None]], axis=1)
    inside = (grid >= lo[:, None] - 1e-9) & (grid <= hi[:, None] + 1e-9) & np.isfinite(grid)
    ii, jj = np.nonzero(inside)
    hold = np.flatnonzero((p0 >= lo - 1e-9) & (p0 <= hi + 1e-9))
    item = np.concatenate([ii, hold])
    price = np.concatenate([grid[ii, jj], p0[hold]])
    d = pd.DataFrame({"item": item, "price": np.round(price, 2)}).drop_duplicates().sort_values(["item", "price"])
    return d["item"].to_numpy(), d["price"].to_numpy()


def _choose(item, value, rel, cat_of_item, n, cap, counts, names, solver_seconds: float):
    """Pick one candidate per item maximising total value with each category's average relative
    change inside +-cap: a multiple-choice knapsack (core.choice) with two rows per category,
    sum(rel) <= cap x items and -sum(rel) <= cap x items. Categories do not share a limit, so each
    category whose items' own best choices break the cap is its own problem for HiGHS (a MILP, or
    above `MILP_MAX_VARIABLES` candidates the LP relaxation, whose split items take the option
    nearest the cap's inside); the others keep their best choices. A solution HiGHS returns at its
    time limit may still break the cap: then `_hold_until_inside` holds items until it does not.
    Items without candidates hold. Returns the chosen candidate per item and the capped categories."""
    chosen = best_per_item(item, value, n)
    cand_cat = cat_of_item[item]
    x = np.zeros(len(item))
    x[chosen[chosen >= 0]] = 1.0
    total = np.bincount(cand_cat, weights=rel * x, minlength=len(counts))
    over = np.flatnonzero(np.abs(total) > cap * counts + 1e-9 * np.maximum(cap * counts, 1))
    for k in over:
        sub = np.flatnonzero(cand_cat == k)
        rows = np.repeat([0, 1], len(sub))
        A = sp.csr_matrix((np.r_[rel[sub], -rel[sub]], (rows, np.tile(np.arange(len(sub)), 2))), shape=(2, len(sub)))
        local_items, local_item = np.unique(item[sub], return_inverse=True)
        room = np.full(2, cap * counts[k])
        try:
            pick, _ = choose_one_per_item(
                local_item, value[sub], A, room, len(local_items), solver_seconds,
                milp_max=MILP_MAX_VARIABLES, tol=1e-9 * np.maximum(room, 1),
            )  # fmt: skip
        except ChoiceInfeasible as e:
            raise PricingInfeasible(
                f"pricing {e} for category {names[k]}: no choice keeps its average change "
                f"inside +-{cap:.0%} (category_avg_change_cap_pct)"
            ) from e
        chosen[local_items] = np.where(pick >= 0, sub[np.maximum(pick, 0)], -1)
        chosen = _hold_until_inside(chosen, item, value, rel, local_items, cap * counts[k])
    return chosen, over


def _hold_until_inside(chosen, item, value, rel, items, room):
    """Hold (current price, no change) items of `items` until their summed relative change is
    inside +-room: the rule's behaviour where the solver left the cap broken (a time-limited
    solution). Each pass holds, among the items moving the sum the wrong way, those giving back
    the most change per unit of value lost, just enough to cover the excess; a pass that
    overshoots to the other side is followed by one the other way. Holding everything is inside
    any cap, so it ends."""
    out = chosen.copy()
    hold_pos = _hold_candidates(item, rel, items)
    hold_value = np.where(hold_pos >= 0, value[np.maximum(hold_pos, 0)], 0.0)
    for _ in range(len(items) + 1):
        ch = out[items]
        moving = (ch >= 0) & (ch != hold_pos)
        r = np.where(moving, rel[np.maximum(ch, 0)], 0.0)
        excess = abs(r.sum()) - room
        if excess <= 1e-9 * max(room, 1):
            break
        gives = np.where(moving, np.sign(r.sum()) * r, 0.0)
        lost = value[np.maximum(ch, 0)] - hold_value
        order = np.argsort(np.where(gives > 0, lost / np.maximum(gives, 1e-12), np.inf), kind="stable")
        order = order[gives[order] > 0]
        cut = min(int(np.searchsorted(np.cumsum(gives[order]), excess - 1e-12)) + 1, len(order))
        out[items[order[:cut]]] = hold_pos[order[:cut]]
    return out


def _hold_candidates(item, rel, items):
    """Per item, its candidate at the current price (relative change 0), else -1 (the hold)."""
    at_p0 = np.flatnonzero(np.abs(rel) < 1e-12)
    pos = pd.Series(at_p0, index=item[at_p0])
    pos = pos[~pos.index.duplicated()]
    return pos.reindex(items).fillna(-1).astype(int).to_numpy()


def elasticity_interval(it: pd.DataFrame, cfg: PricingPolicy) -> tuple[np.ndarray, np.ndarray]:
    """The central `cfg.elasticity_interval` of each item's elasticity posterior (estimate +- z se),
    inside the policy's elasticity range. No `se` column: the estimate is taken as exact."""
    from scipy import stats

    e = it["elasticity"].to_numpy(float)
    se = np.nan_to_num(it["se"].to_numpy(float), nan=0.0) if "se" in it else np.zeros(len(e))
    # an estimate resting on few points (a slope over 4 SKUs) takes Student's t for its degrees
    # of freedom, not the normal quantile: the interval follows the evidence, not one number
    df = np.nan_to_num(it["df"].to_numpy(float), nan=np.inf) if "df" in it else np.full(len(e), np.inf)
    p_hi = 0.5 + cfg.elasticity_interval / 2
    z = np.where(np.isfinite(df), stats.t.ppf(p_hi, np.maximum(df, 1.0)), stats.norm.ppf(p_hi))
    lo_b, hi_b = cfg.elasticity_bounds
    # widened inside the policy's range, but never so that the estimate itself falls outside
    return np.minimum(e, np.maximum(e - z * se, lo_b)), np.maximum(e, np.minimum(e + z * se, hi_b))


def unidentified(it: pd.DataFrame) -> np.ndarray:
    """Items whose elasticity no price variation of their own SKU or category identified (the
    chain's average or the policy default): their price is held, never gambled on."""
    if "source" not in it:
        return np.zeros(len(it), dtype=bool)
    src = it["source"].astype(str)
    return (src.str.startswith("chain average") | src.str.startswith("policy default")).to_numpy()


def margin_gain(price, p0, c, q0, e):
    """Expected margin over the pricing horizon at `price` minus at `p0` (constant elasticity)."""
    return (price - c) * q0 * price_response(price, p0, e) - (p0 - c) * q0


def clearance_value(price, p0, c, q_day, stock, restart, e, cfg: PricingPolicy, costs: CostPolicy, T=None):
    """What the stock on hand and on order is worth over the sell-through horizon T at `price`
    (docs/pricing.md, "Markdowns"): revenue of the units sold within T, excess that never sells
    at the salvage share of cost, minus holding (units x days x daily holding rate); and for an
    item that is still carried (`restart`), the margin of the regular sales that resume once the
    stock has sold through. The stock is sunk: only what happens to it differs between prices.
    `T` (days, per item) defaults to the policy's `sell_through_weeks`."""
    T = cfg.sell_through_weeks * 7 if T is None else T
    q = np.maximum(q_day * price_response(price, p0, e), 1e-9)
    sold = np.minimum(stock, q * T)
    unit_days = np.where(q * T >= stock, stock**2 / (2 * q), T * (stock - q * T / 2))
    resumed = np.where(restart, (p0 - c) * q_day * np.maximum(T - stock / q, 0.0), 0.0)
    holding = c * costs.annual_holding_rate / 365 * unit_days
    return price * sold + cfg.salvage_value_share * c * (stock - sold) - holding + resumed


def overstocked(weeks_of_supply, end_of_life, cfg: PricingPolicy) -> np.ndarray:
    """Items whose stock is at risk, so the markdown rules apply (the clearance step, the markdown
    cadence, no rise): above `overstock_weeks` of network supply and, under `carried_excess:
    sells_later`, at the end of their life or season. A carried item's stock is not at risk there:
    every unit sells at whatever price holds, and a price the pipeline sets persists, so in the
    long run a price is worth its margin rate -- the carried item is priced like any other
    (plus the holding of its stock, `stock_holding`) and its excess is run down by ordering less."""
    over = np.asarray(weeks_of_supply, float) > cfg.overstock_weeks
    if cfg.carried_excess == "sells_later":
        over &= np.asarray(end_of_life, bool)
    return over


def stock_holding(price, p0, c, q0, e, stock, cfg: PricingPolicy, costs: CostPolicy):
    """Holding cost, over the pricing horizon, of the `stock` a carried item has at `price` less at
    `p0`: it sells q0 (p / p0)^e units in the horizon, so a stock that outlasts the horizon holds
    stock x h - q h / 2 unit-days (a rise keeps more units longer, a cut fewer)."""
    h = cfg.horizon_days

    def unit_days(q):
        return np.where(q >= stock, stock**2 / (2 * np.maximum(q, 1e-9) / h), stock * h - q * h / 2)

    q = q0 * price_response(price, p0, e)
    return c * costs.annual_holding_rate / 365 * (unit_days(q) - unit_days(q0))


def robust_gain(
    price, p0, c, q0, e_lo, e_hi, stock, clearance, restart, h, cfg: PricingPolicy, costs: CostPolicy, T=None
):
    """The worst expected gain of moving to `price` over the elasticity interval [e_lo, e_hi]: each
    gain is monotone in e, so its minimum is at an end. An item with excess stock (`clearance`)
    also counts the clearance value of a cut; its gain is the larger of the two views."""
    worst = np.minimum(margin_gain(price, p0, c, q0, e_lo), margin_gain(price, p0, c, q0, e_hi))
    q_day = q0 / h
    cl = [
        clearance_value(price, p0, c, q_day, stock, restart, e, cfg, costs, T)
        - clearance_value(p0, p0, c, q_day, stock, restart, e, cfg, costs, T)
        for e in (e_lo, e_hi)
    ]
    return np.where(clearance & (price < p0), np.maximum(worst, np.minimum(*cl)), worst)


def _price_ranges(it: pd.DataFrame, cfg: PricingPolicy) -> SimpleNamespace:
    """Each item's allowed price range [lo_all, hi] under the guardrails (margin floor, max change,
    the markdown rules of overstocked items, the change cadence, inventory awareness), with the
    flags that say which rule shaped it (read again by `_binding`)."""
    n = len(it)
    p0, c = it["current_price"].to_numpy(float), it["unit_cost"].to_numpy(float)
    e, q0 = it["elasticity"].to_numpy(float), np.maximum(np.nan_to_num(it["expected_units"].to_numpy(float)), 1e-6)
    floor = c * (1 + cfg.min_margin)
    hi = p0 * (1 + cfg.max_change)
    # a price so far under the margin floor that one step cannot reach it rises as far as a step
    # allows (no cut); the min_margin guardrail accepts a rise toward the floor
    lo = np.where(floor > hi + 1e-9, p0, np.maximum(floor, p0 * (1 - cfg.max_change)))
    bad = ~(lo <= hi + 1e-9)  # only non-finite inputs remain
    if bad.any():
        ex = it.loc[bad, ["location_id", "sku_id", "current_price", "unit_cost"]].head(5).to_dict("records")
        raise PricingInfeasible(
            f"{int(bad.sum())} item(s) have no allowed price: min margin {cfg.min_margin:.0%} over cost is above the "
            f"maximum price allowed by max change {cfg.max_change:.0%} from the current price; raise max_change_pct "
            f"or lower min_margin in the policy file's pricing section; e.g. {ex}"
        )
    wos = it["weeks_of_supply"].to_numpy(float)
    eol = it["end_of_life"].fillna(False).to_numpy(bool) if "end_of_life" in it else np.zeros(n, dtype=bool)
    over = overstocked(wos, eol, cfg)
    T = it["sell_through_days"].to_numpy(float) if "sell_through_days" in it else np.full(n, cfg.sell_through_weeks * 7)
    stock = np.where(np.isfinite(wos), wos * 7 * q0 / cfg.horizon_days, 0.0)  # units of the network's supply
    lo = np.where(over, np.maximum(floor, p0 * (1 - max(cfg.max_markdown, cfg.max_change))), lo)  # clearance step
    below = p0 < floor - 1e-9  # priced under the margin floor (e.g. after a cost increase)
    frozen = it["recently_changed"].to_numpy(bool)
    if "days_since_price_change" in it:  # an overstocked item steps down on the markdown cadence
        ds = it["days_since_price_change"].to_numpy(float)
        frozen = np.where(over, ds < cfg.min_days_between_markdowns, frozen)
    blind = unidentified(it) & ~below & ~frozen  # nothing identified the elasticity: hold
    # inventory awareness: no price cut that stimulates demand beyond what the network can supply
    # within lead time: q0 (p / p0)^e <= supply <=> p >= p0 (supply / q0)^(1/e). Never forces a rise.
    supply = it["supply"].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv_lo = np.where(np.isfinite(supply), p0 * (np.maximum(supply, 1e-9) / q0) ** (1 / e), -np.inf)
    inv_lo = np.minimum(inv_lo, p0)
    # an overstocked item may not rise; a markdown cuts at least markdown_pct (a low price with no
    # ladder step that deep inside the max change takes the next step down) -- or holds
    hi_md = np.minimum(hi, p0 * (1 - cfg.min_markdown))
    step_down = _ladder_snap(p0 - 0.005, cfg.price_endings)
    no_step = _ladder_snap(hi_md, cfg.price_endings) < lo - 1e-9
    hi_md = np.where(no_step & (step_down >= lo - 1e-9), step_down, hi_md)
    # what forbids a markdown: the margin floor, the max change with the ladder, or supply
    md_why = np.select(
        [below | (floor > hi_md + 1e-9), lo > hi_md + 1e-9, inv_lo > hi_md + 1e-9],
        ["min_margin", "price_endings", "inventory"],
        "",
    )
    md_blocked = over & (md_why != "")
    hi = np.where(over, np.where(md_blocked, p0, hi_md), hi)
    lo_all = np.minimum(np.maximum(lo, inv_lo), hi)
    lo_all = np.where(over & md_blocked, p0, lo_all)  # the markdown cannot happen: hold
    lo_all, hi = np.where(frozen | blind, p0, lo_all), np.where(frozen | blind, p0, hi)
    return SimpleNamespace(
        p0=p0, c=c, e=e, q0=q0, floor=floor, lo=lo, hi=hi, lo_all=lo_all, inv_lo=inv_lo, over=over, eol=eol,
        below=below, frozen=frozen, blind=blind, stock=stock, T=T, md_blocked=md_blocked, md_why=md_why,
    )  # fmt: skip


def _candidate_values(r: SimpleNamespace, e_lo, e_hi, item, price, soft, cfg: PricingPolicy, costs: CostPolicy):
    """Each candidate price's value: the item's current expected margin plus its robust gain (the
    worst over the elasticity interval; with clearance value or stock holding where they apply),
    less the minimum-gain fee of a change; a penalised hold (below the margin floor) sinks below
    every margin. Returns (value, value at the point estimate, penalised, clearance items)."""
    p0, c, q0, e, over, eol, stock, T = r.p0, r.c, r.q0, r.e, r.over, r.eol, r.stock, r.T
    hold_value = (p0 - c) * q0
    clear = over | eol
    args = (p0[item], c[item], q0[item])
    rest = (stock[item], clear[item], ~eol[item], cfg.horizon_days, cfg, costs, T[item])
    gain = robust_gain(price, *args, e_lo[item], e_hi[item], *rest)
    point = robust_gain(price, *args, e[item], e[item], *rest)
    # a carried item's stock outlasting the horizon is held longer at a higher price: charge it
    lasting = ~clear[item] & (stock[item] > q0[item])
    if lasting.any():  # the margin gain less that holding, at each end of the interval (monotone in e)
        ends = [
            margin_gain(price, *args, e_[item]) - stock_holding(price, *args, e_[item], stock[item], cfg, costs)
            for e_ in (e_lo, e_hi)
        ]
        gain = np.where(lasting, np.minimum(*ends), gain)
        point = np.where(lasting, point - stock_holding(price, *args, e[item], stock[item], cfg, costs), point)
    is_hold = np.isclose(price, p0[item])
    # a change must earn at least `min_gain` of the item's current expected margin (no churn on noise)
    fee = np.where(is_hold, 0.0, cfg.min_gain * np.abs(hold_value[item]))
    value = hold_value[item] + np.where(is_hold, 0.0, gain) - fee
    value_point = hold_value[item] + np.where(is_hold, 0.0, point) - fee
    penalised = np.isin(item, soft) & is_hold
    # larger than all margins together: a hold is never traded for margin elsewhere
    per_item_max = pd.Series(np.abs(value)).groupby(item).max().sum() if len(value) else 0.0
    value = np.where(penalised, value - 2.0 * (per_item_max + 1.0), value)
    return value, value_point, penalised, clear


def optimise_prices(
    items: pd.DataFrame, cfg: PricingPolicy = PricingPolicy(), costs: CostPolicy = CostPolicy()
) -> pd.DataFrame:
    """Choose the next price of each item (one row per store x SKU): location_id, sku_id,
    category, current_price p0, unit_cost c, elasticity e (< 0), expected_units q0 over the
    horizon at p0, supply (units the network can deliver within lead time, inf = unbounded),
    weeks_of_supply, recently_changed (bool) and optionally days_since_price_change, se (the
    elasticity's standard error), source (where the elasticity came from) and end_of_life (bool:
    the item is no longer replenished). Returns items with recommended_price, price_floor /
    price_ceiling (the guardrail range), binding_guardrail and change_reason.

    Every price on the ladder (`_ladder`) inside the item's guardrails is a candidate; its value is
    the current expected margin plus its *robust* gain (`robust_gain`: the worst over the
    elasticity's interval), so a change whose gain flips sign inside the interval is held. Items
    with stock at risk (`overstocked`) or at the end of their life may be cut
    by up to the clearance step, and only where the clearance value pays for the margin given
    up; a carried item's stock sells later whatever the price (`overstocked`), so it is priced for
    its margin less the holding of its stock (`stock_holding`) and run down by ordering less. The
    category average-change cap couples items, so the choice is a MILP (`_choose`). Holding is
    legal when the current price is inside the item's range; where it is not (below the margin
    floor), holding is a penalised option the MILP takes only where the category cap leaves no
    room -- targets yield to hard guardrails."""
    it = items.reset_index(drop=True).copy()
    n = len(it)
    r = _price_ranges(it, cfg)
    p0, c, e, lo, hi, lo_all, floor, inv_lo = r.p0, r.c, r.e, r.lo, r.hi, r.lo_all, r.floor, r.inv_lo
    over, below, frozen, blind, md_blocked, md_why = r.over, r.below, r.frozen, r.blind, r.md_blocked, r.md_why
    e_lo, e_hi = elasticity_interval(it, cfg)
    item, price = _ladder(lo_all, hi, p0, cfg.price_endings)
    # holding is always a candidate of an overstocked item (a markdown must pay); a penalised one
    # where holding breaks a guardrail (below the margin floor)
    soft = np.flatnonzero(~frozen & below & ~over)
    hold_over = np.flatnonzero(~frozen & over & ~md_blocked)
    item, price = np.concatenate([item, soft, hold_over]), np.concatenate([price, p0[soft], p0[hold_over]])
    value, value_point, penalised, clear = _candidate_values(r, e_lo, e_hi, item, price, soft, cfg, costs)
    rel = price / p0[item] - 1
    cats = it["category"].astype(str).to_numpy()
    names, cat_of_item = np.unique(cats, return_inverse=True)
    counts = np.bincount(cat_of_item, minlength=len(names)).astype(float)
    has = np.bincount(item, minlength=n) > 0
    chosen, capped = _choose(
        item, value, rel, cat_of_item, n, cfg.category_avg_change_cap, counts, names, cfg.solver_seconds
    )
    rec = np.where(chosen >= 0, price[np.maximum(chosen, 0)], p0)
    it["recommended_price"] = np.round(rec, 2)
    it["price_floor"], it["price_ceiling"] = np.round(lo_all, 4), np.round(hi, 4)
    it["binding_guardrail"] = _binding(
        it,
        cfg,
        item,
        price,
        value,
        value_point,
        penalised,
        chosen,
        capped,
        cat_of_item,
        dict(
            rec=rec,
            p0=p0,
            c=c,
            e=e,
            lo=lo,
            floor=floor,
            inv_lo=inv_lo,
            over=over,
            below=below,
            frozen=frozen,
            blind=blind,
            md_blocked=md_blocked,
            md_why=md_why,
            has=has,
        ),
    )
    moved = price_changed(rec, p0)
    it["change_reason"] = np.select(
        [~moved, clear & (rec < p0), rec > p0], ["hold", "markdown", "margin_raise"], "margin_cut"
    )
    return it


def _binding(it, cfg, item, price, value, value_point, penalised, chosen, capped, cat_of_item, a) -> np.ndarray:
    """The guardrail (or rule) that kept each item from its own best price on the ladder."""
    n = len(it)
    rec, p0, c, e = a["rec"], a["p0"], a["c"], a["e"]
    real = ~penalised
    cmin = pd.Series(price[real]).groupby(item[real]).min().reindex(range(n)).to_numpy()
    cmax = pd.Series(price[real]).groupby(item[real]).max().reindex(range(n)).to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        unc = np.where(e < -1, c * e / (1 + e), np.inf)  # the constant-elasticity margin optimum
    own_best = best_per_item(item, value, n)
    point_best = best_per_item(item, value_point, n)
    held = ~price_changed(rec, p0)
    # the point estimate would have moved the price, its interval does not guarantee a gain
    uncertain = held & (point_best >= 0) & ~np.isclose(price[np.maximum(point_best, 0)], p0)
    moved_by_cap = (chosen >= 0) & (chosen != own_best) & np.isin(cat_of_item, capped)
    at_top = np.isclose(rec, cmax) & (unc > rec + 0.005)
    at_bottom = np.isclose(rec, cmin) & (unc < rec - 0.005)
    lo_is = np.select(
        [np.isfinite(a["inv_lo"]) & (a["inv_lo"] >= a["lo"] - 1e-9), a["floor"] >= p0 * (1 - cfg.max_change) - 1e-9],
        ["inventory", "min_margin"],
        "max_decrease",
    )
    over = a["over"]
    return np.select(
        [
            a["frozen"],
            a["blind"],
            a["md_blocked"],
            ~a["has"],
            moved_by_cap,
            over & (rec < p0 - 0.005),
            a["below"] & (rec > p0 + 0.005) & np.isclose(rec, cmin),
            uncertain,
            over & held,
            at_top,
            at_bottom,
        ],
        [
            np.full(n, "min_days_between_changes"),
            np.full(n, "elasticity_unidentified"),
            a["md_why"],
            np.full(n, "price_endings"),
            np.full(n, "category_avg_change"),
            np.full(n, "markdown"),
            np.full(n, "min_margin"),
            np.full(n, "uncertain_gain"),
            np.full(n, "sells_through"),
            np.full(n, "max_increase"),
            lo_is,
        ],
        "none",
    )


LIFECYCLE_COLUMNS = ("discontinue_date", "season_end_date")  # optional extra columns of master/products


def with_lifecycle(products: pd.DataFrame, raw_products: pd.DataFrame | None) -> pd.DataFrame:
    """The product mart plus the optional lifecycle columns of the landing file (kept as extra
    columns by the contract, not modelled by dbt) that the markdown rule reads."""
    if raw_products is None:
        return products
    cols = [c for c in LIFECYCLE_COLUMNS if c in raw_products and c not in products]
    if not cols:
        return products
    return products.merge(raw_products[["sku_id", *cols]].astype({"sku_id": str}), on="sku_id", how="left")


def end_of_life(
    sku_ids: pd.Series, products: pd.DataFrame, plan_date: str, cfg: PricingPolicy = PricingPolicy()
) -> tuple[np.ndarray, np.ndarray]:
    """Items whose regular sales end, from the product master's optional extra columns (the
    landing contract keeps them): `discontinue_date` on or before the plan date (no longer
    replenished: nothing resumes after its stock, which leaves the shelf `end_of_life_weeks` after
    that date), or `season_end_date` within the sell-through horizon (what is left then sells
    only at salvage). Returns the flag and each item's sell-through horizon in days: the policy's,
    or what is left of its shelf life or season (at least a day)."""
    T = cfg.sell_through_weeks * 7
    flag, horizon = np.zeros(len(sku_ids), dtype=bool), np.full(len(sku_ids), T)
    day = pd.Timestamp(plan_date)
    for col in ("discontinue_date", "season_end_date"):
        if col not in products:
            continue
        d = pd.to_datetime(products.set_index("sku_id")[col].replace("", None), errors="coerce")
        left = (sku_ids.map(d) - day).dt.days.to_numpy(float)
        if col == "discontinue_date":
            gone = np.nan_to_num(left, nan=1.0) <= 0
            flag |= gone
            horizon = np.where(gone, np.clip(left + cfg.end_of_life_weeks * 7, 1, T), horizon)
        else:
            ends = np.nan_to_num(left, nan=np.inf) < T
            flag |= ends
            horizon = np.where(ends, np.clip(left, 1, T), horizon)
    return flag, horizon


def network_supply(out: pd.DataFrame, daily: pd.Series, positions, locations):
    """Per store x SKU of `out`: the units the network can supply within lead time (the store's
    stock and open orders plus its share of its DC's, by expected units) and its weeks of supply
    at `daily` demand (inf supply and nan weeks without positions)."""
    if positions is not None:
        pos = positions.set_index(["location_id", "sku_id"])
        idx = pd.MultiIndex.from_frame(out[["location_id", "sku_id"]])
        on_hand = pos["on_hand"].reindex(idx).fillna(0).to_numpy(float)
        on_order = pos["on_order"].reindex(idx).fillna(0).to_numpy(float)
        supply = on_hand + on_order
        if locations is not None and "supplying_dc_id" in locations:
            dc = out["location_id"].map(locations.set_index("location_id")["supplying_dc_id"])
            dc_idx = pd.MultiIndex.from_arrays([dc, out["sku_id"]])
            dc_stock = (pos["on_hand"].reindex(dc_idx).fillna(0) + pos["on_order"].reindex(dc_idx).fillna(0)).to_numpy(
                float
            )
            share = out["expected_units"] / out.groupby([dc, out["sku_id"]])["expected_units"].transform("sum").where(
                lambda x: x > 0
            )
            supply = supply + dc_stock * share.fillna(0).to_numpy(float)
        # weeks of supply of the network behind the store: its stock and open orders plus its share
        # of its DC's (stock stuck at the DC is as much overstock as stock on the shelf)
        return supply, np.where(daily > 0, supply / np.maximum(daily, 1e-9) / 7, np.inf)
    return np.inf, np.nan


def _with_elasticities(out, history, products, book, plan_date, forecast_date, cfg: PricingPolicy, kept=None):
    """`out` with each SKU's elasticity and its uncertainty (an earlier plan's estimate where
    `reusable_elasticities` allows, else estimated now), and the expected units scaled from the
    forecast's price level to today's price (all nan / held when pricing is disabled)."""
    if cfg.enabled:
        panel = _panel(history, products, book)
        el = reusable_elasticities(kept, out["sku_id"], plan_date, cfg)
        if el is None:
            el = estimate_elasticities(history, products, cfg, panel).assign(estimated_on=pd.Timestamp(plan_date))
        lag = (pd.Timestamp(plan_date) - pd.Timestamp(forecast_date)).days if forecast_date else 0
        out = out.merge(reference_prices(panel, FORECAST_PRICE_DAYS, lag), on=["location_id", "sku_id"], how="left")
        kept_columns = ["sku_id", "elasticity", "se", "df", "confidence", "source", "estimated_on"]
        out = out.merge(el[kept_columns], on="sku_id", how="left")
        out["elasticity"] = out["elasticity"].fillna(cfg.default_elasticity)
        # the forecast reflects the recent price level; at today's price expect (p0 / ref)^e of it
        out["reference_price"] = out["reference_price"].fillna(out["current_price"])
        out["expected_units"] = out["expected_units"] * price_response(
            out["current_price"], out["reference_price"], out["elasticity"]
        )
    else:
        out["elasticity"], out["se"], out["confidence"], out["source"] = np.nan, np.nan, 0.0, "pricing disabled"
        out["df"], out["estimated_on"] = np.nan, pd.NaT
        out["reference_price"] = out["current_price"]
    return out


def _add_expectations(out: pd.DataFrame) -> None:
    """The demand multiplier of the recommended price, and the expected units and margin at the
    current and the recommended price (in place)."""
    e = out["elasticity"].fillna(0.0)
    # what the forecast (fitted on recent sales) must be scaled by at the recommended price: the
    # change against the price level of the forecast's recent history, which includes changes
    # made in the last weeks that the sales have not fully shown yet
    ref = out["reference_price"]
    out["demand_multiplier"] = price_response(out["recommended_price"], ref, e)
    out["expected_units_current"] = out["expected_units"]
    out["expected_units_recommended"] = out["expected_units"] * price_response(
        out["recommended_price"], out["current_price"], e
    )
    out["expected_margin_current"] = (out["current_price"] - out["unit_cost"]) * out["expected_units_current"]
    out["expected_margin_recommended"] = (out["recommended_price"] - out["unit_cost"]) * out[
        "expected_units_recommended"
    ]
    out["elasticity_confidence"] = out["confidence"]
    out["elasticity_se"] = out["se"]
    out["elasticity_source"] = out["source"]
    out["elasticity_df"] = out["df"]
    out["elasticity_estimated_on"] = out["estimated_on"]


def recommend_prices(
    forecast: pd.DataFrame,
    history: pd.DataFrame,
    products: pd.DataFrame,
    plan_date: str,
    cfg: PricingPolicy = PricingPolicy(),
    positions: pd.DataFrame | None = None,
    locations: pd.DataFrame | None = None,
    book: pd.DataFrame | None = None,
    forecast_date: str | None = None,
    costs: CostPolicy = CostPolicy(),
    kept_elasticities: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Recommended price per store x SKU in the forecast (the stage). `history`: the last
    `PRICING_HISTORY_DAYS` of fct_daily_demand. `positions`: on_hand and on_order per location x
    SKU: weeks of supply (markdowns) and what the network can supply within lead time (inventory
    awareness: the store's stock and open orders plus its share of its DC's, by expected units;
    `locations` gives each store's DC). `book`: the prices this pipeline set (`price_book`).
    `forecast_date`: the plan date the forecast was made on, when it is older than `plan_date`
    (the twin's weekly re-forecast): its price level is the one before that date.
    `kept_elasticities`: an earlier plan's price_recommendations, whose estimates this plan reuses
    inside `reestimate_every_days` (`reusable_elasticities`)."""
    h = cfg.horizon_days
    f = forecast[forecast["horizon"] <= h]
    pairs = (
        f.groupby(["location_id", "sku_id"], as_index=False)["mean"].sum().rename(columns={"mean": "expected_units"})
    )
    prices = current_prices(history, products, plan_date, book)
    prod = products if "category" in products else products.assign(category="_all")
    out = pairs.merge(prices, on=["location_id", "sku_id"], how="left").merge(
        prod[["sku_id", "unit_cost", "base_price", "category"]], on="sku_id", how="left"
    )
    out["current_price"] = out["unit_price"].fillna(out["base_price"])
    out["end_of_life"], out["sell_through_days"] = end_of_life(out["sku_id"], products, plan_date, cfg)
    # no price at all (not in the product master, no sale, no base price): nothing to recommend
    out = out[out["current_price"].notna() & (out["current_price"] > 0)].reset_index(drop=True)
    days_since = (pd.Timestamp(plan_date) - as_dates(out["last_other_price_date"])).dt.days
    out["days_since_price_change"] = days_since  # nan: no other price in the window
    out["recently_changed"] = days_since.notna() & (days_since < cfg.min_days_between_changes)
    out = _with_elasticities(out, history, products, book, plan_date, forecast_date, cfg, kept_elasticities)
    daily = out["expected_units"] / h
    out["supply"], out["weeks_of_supply"] = network_supply(out, daily, positions, locations)
    if cfg.enabled:
        # an item without a cost cannot be priced for margin: it holds and says why
        costless = out["unit_cost"].isna() | ~np.isfinite(out["elasticity"])
        parts = [optimise_prices(out[~costless], cfg, costs)] if (~costless).any() else []
        if costless.any():
            held = out[costless].copy()
            held["recommended_price"], held["binding_guardrail"] = held["current_price"], "missing_cost"
            held["change_reason"] = "hold"
            held["price_floor"], held["price_ceiling"] = held["current_price"], held["current_price"]
            parts.append(held)
        out = pd.concat(parts, ignore_index=True)
    else:
        out["recommended_price"], out["binding_guardrail"] = out["current_price"], "hold_price"
        out["price_floor"], out["price_ceiling"] = out["current_price"], out["current_price"]
    out["change_reason"] = out["change_reason"].fillna("hold") if "change_reason" in out else "hold"
    out["end_of_life"] = out["end_of_life"].fillna(False).astype(bool)
    ratio = out["recommended_price"] / out["current_price"]
    _add_expectations(out)
    out["rationale"] = _rationale(out, ratio, h)
    out["elasticity_settings"] = elasticity_settings(cfg)
    return out[PRICE_COLUMNS + ["category"]].sort_values(["location_id", "sku_id"], ignore_index=True)


_WHY = {
    "none": "the margin optimum inside every guardrail",
    "max_increase": "capped by the maximum change per step",
    "max_decrease": "capped by the maximum change per step",
    "min_margin": "held at the minimum margin over cost",
    "inventory": "no deeper cut: the network could not supply the extra demand within lead time",
    "markdown": "marked down: more than the overstock threshold of weeks of supply",
    "min_days_between_changes": "held: the price changed too recently",
    "price_endings": "held: no allowed price ending inside the guardrails",
    "category_avg_change": "held: the category's average change would exceed its cap",
    "hold_price": "price held: pricing is disabled in the policy file (pricing.enabled: false)",
    "missing_cost": "held: the product master has no unit cost for this item",
    "elasticity_unidentified": "held: no price change of the item or its category identifies its elasticity",
    "uncertain_gain": "held: the gain at the estimated elasticity turns into a loss inside its interval",
    "sells_through": "held: the stock sells through at the regular price; a markdown would give up more margin "
    "than the holding and clearance cost it saves (ordering less runs it down)",
}


def _rationale(out: pd.DataFrame, ratio: pd.Series, h: int) -> pd.Series:
    """One planner-facing sentence per row, built only from the row's numbers."""
    why = out["binding_guardrail"].map(_WHY).fillna(out["binding_guardrail"].astype(str))
    el = (
        "elasticity "
        + out["elasticity"].round(2).astype(str)
        + " +- "
        + out["se"].round(2).astype(str)
        + " ("
        + out["source"].astype(str)
        + ")"
    )
    held = (
        why
        + "; "
        + el
        + "; expected "
        + out["expected_units_current"].round(1).astype(str)
        + " units over "
        + str(h)
        + " days"
    )
    chg = (
        "price "
        + out["current_price"].round(2).astype(str)
        + " -> "
        + out["recommended_price"].round(2).astype(str)
        + " ("
        + ((ratio - 1) * 100).round(1).map("{:+.1f}%".format)
        + "): "
        + why
        + "; "
        + el
        + "; expected "
        + out["expected_units_current"].round(1).astype(str)
        + " -> "
        + out["expected_units_recommended"].round(1).astype(str)
        + " units and margin "
        + out["expected_margin_current"].round(0).astype(str)
        + " -> "
        + out["expected_margin_recommended"].round(0).astype(str)
        + " over "
        + str(h)
        + " days"
    )
    disabled = out["binding_guardrail"] == "hold_price"
    return pd.Series(np.where(disabled, _WHY["hold_price"], np.where(ratio.round(4) == 1, held, chg)), index=out.index)


def guardrail_violations(recs: pd.DataFrame, cfg: PricingPolicy) -> pd.DataFrame:
    """Every recommendation outside a guardrail, one row per violation (empty = all inside).
    Independent of the optimiser: recomputed from the recommendation's own columns and `cfg`."""
    r = recs
    changed = pd.Series(price_changed(r["recommended_price"], r["current_price"]), index=r.index)
    rel = r["recommended_price"] / r["current_price"] - 1
    floor = r["unit_cost"] * (1 + cfg.min_margin)
    eol = r["end_of_life"].fillna(False).astype(bool) if "end_of_life" in r else False
    wos = r["weeks_of_supply"] if "weeks_of_supply" in r else np.nan
    over_ = pd.Series(overstocked(np.broadcast_to(wos, len(r)), np.broadcast_to(eol, len(r)), cfg), index=r.index)
    checks = {
        # a change may not set a price under the floor, except a rise toward it from below
        "min_margin": changed
        & (r["recommended_price"] < floor - 0.005)
        & ~((r["current_price"] < floor - 0.005) & (r["recommended_price"] > r["current_price"])),
        "max_change": changed
        & (rel.abs() > np.where(over_ & (rel < 0), max(cfg.max_markdown, cfg.max_change), cfg.max_change) + 1e-6),
        "price_endings": changed
        & ~np.isclose(
            ((r["recommended_price"] * 100).round() % 100 / 100).to_numpy()[:, None],
            np.asarray(cfg.price_endings)[None, :],
            atol=0.001,
        ).any(axis=1)
        if cfg.price_endings
        else pd.Series(False, index=r.index),
    }
    if "days_since_price_change" in r:
        gap = np.where(over_ & (rel < 0), cfg.min_days_between_markdowns, cfg.min_days_between_changes)
        checks["min_days_between_changes"] = changed & (r["days_since_price_change"] < gap)
    if "weeks_of_supply" in r:
        over = over_ & ~(r.get("days_since_price_change", np.inf) < cfg.min_days_between_changes)
        # an overstocked item may not rise; it must be marked down unless the margin floor or the ladder stops it
        checks["markdown"] = over & (rel > 1e-6)
    if "supply" in r:
        stim = (r["expected_units_recommended"] > np.maximum(r["supply"], r["expected_units_current"]) + 1e-6) & (
            rel < 0
        )
        checks["inventory"] = changed & stim
    if "category" in r:
        cat = rel.groupby(r["category"]).transform("mean")
        checks["category_avg_change"] = changed & (cat.abs() > cfg.category_avg_change_cap + 1e-6)
    out = [
        r.loc[m, ["location_id", "sku_id", "current_price", "recommended_price"]].assign(guardrail=k)
        for k, m in checks.items()
        if m.any()
    ]
    cols = ["location_id", "sku_id", "current_price", "recommended_price", "guardrail"]
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=cols)
