"""Replenishment orders (core): supplier -> DC -> store, at the least expected cost of lost
units and holding. docs/replenishment.md derives every formula below.

Demand over a protection period P (lead time L + review period R), per store x SKU, from the
forecast's daily distribution (mean_h; sigma_h the smallest normal spread that reproduces every
upper quantile it quotes, p90/p95/p99, `daily_variance`), times the pricing stage's demand
multiplier m, summed day by day (a ramp or a planned promotion inside P counts at its own level):

    M(P) = m x sum_{h <= P} mean_h,   V(P) = m^2 x sum_{h <= P} sigma_h^2   (fractional P: pro rata)

Lead times are distributions learned from receipts (`lead_time_model`): per supplier (purchase
orders) and per DC -> store lane (store receipts), the empirical pmf of whole days, late tail
included, shrunk toward the master N(L_0, s_0) that weighs as `lead_time_prior_orders` orders,
and the unit fill rate f = units received / units ordered, shrunk toward complete deliveries.
Demand over the protection period is the mixture over that pmf (`mixture_targets`):

    D ~ sum_l p_l N(M(l + R), V(l + R))     mu_P = sum_l p_l M(l+R),  sigma_P^2 = E[D^2] - mu_P^2

(with a normal lead time its variance is Silver-Pyke-Peterson's E[L + R] sigma_d^2 + dbar^2
sigma_L^2). With the sales history (optional) the demand variance is lifted to the measured
error of P-day totals against a trailing mean (`measured_spread`): shocks, bulk buys and level
shifts move several days together, which daily spreads summed as independent miss.

Service level alpha per item (`ReplenishmentPolicy.service_mode`):
    class        ABC by the forecast value of the item over the horizon (cumulative share cut at
                 80% / 95%) x XYZ by the coefficient of variation of its daily demand (sigma_1 /
                 mean_1 cut at 0.5 / 1.0); each of the 9 classes has a level in the policy file;
    cost_optimal the stock y that minimises h_R x E[(y - D)^+] + b x E[(D - y)^+] over the
                 protection period: P(D <= y) = alpha = b / (b + h_R), b = lost margin per unit
                 (price - cost, plus a goodwill share of the price), h_R = holding cost of a unit
                 over one review period (unit cost x annual rate x R / 365); the expected lost
                 units are priced at their margin, so an item with more units at stake gets more
                 stock (its D is larger), and the quantile is taken of the mixture D above (the
                 one-risk-per-order-cycle fractile b / (b + h T) was measured and lost more units:
                 `_cost_levels`);
    fixed        one level for every item (the evaluation's frontier sweeps it).

Targets (periodic review (R, s, S), the hysteresis that damps orders):
    reorder point s = the alpha-quantile of D           (one lead time: mu_P + z(alpha) sigma_P)
    order-up-to   S = s + Q,  Q = min(EOQ, max_cycle_days x dbar),  EOQ = sqrt(2 K 365 dbar / (c x rate))
    position      IP = on hand + f x on order           (DCs: minus everything the stores asked today)
    order         q = (S - IP) / f rounded up to case packs (DCs: at least the MOQ) when IP < s, else 0;
K is the ordering cost of a line (policy); K = 0 gives S = s. Between s and S nothing is ordered,
so a forecast wobble or a day's noise does not trigger an order; targets move with the forecast,
which is refitted on its own cadence, not daily.

Echelons: stores order from their DC over the DC->store lane. A DC plans on its stores' pooled
demand over the supplier lead time (risk pooling: variances add, sigmas do not), with inventory
position = on hand + f x on order - what its stores asked for today, shipped or not (a request a
short DC could not fill is still demand on it; an overstocked DC orders nothing and ships every
request). A DC short of stock allocates it
by marginal expected shortage cost: case pack by case pack, to the store where one more pack
avoids the most expected lost-sale cost, b x (E[(D-y)^+] - E[(D-y-pack)^+]). Expected shortage is
convex in stock, so this greedy order is the optimum of the separable allocation problem (Gross
1956); equal gains go to the store with the smaller share of its request (fair share).

Shared limits (store and DC capacity in units, the day's purchase budget, optional): when the
orders would break one, the orders of the items that use it are chosen again as a multiple-choice
knapsack (core.choice: HiGHS MILP through cvxpy) over quantities in whole case packs, maximising
the expected lost-sale cost avoided. Supplier minimum order value (per supplier and DC): a PO
below it is topped up to the minimum, lowest cover first, up to the items' order-up-to levels and
then on the item with the least cover; a PO that a limit then cuts below the minimum is held.
Every item that did not get what it needed is listed in `ReplenishmentPlan.unmet`, with the
limit and the numbers: a limit that cannot be met never raises.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy  # its submodules load on first use: scipy.stats costs ~1.2 s the code location need not pay
import scipy.sparse as sp

from .choice import choose_one_per_item
from .dates import as_dates
from .keys import key_codes
from .policy import CostPolicy, ReplenishmentPolicy

ORDER_COLUMNS = [
    "decision_type",
    "sku_id",
    "source_id",
    "location_id",
    "units",
    "requested_units",
    "order_date",
    "expected_date",
    "lead_time_days",
    "unit_cost",
    "order_value",
    "target_units",
    "reorder_point",
    "inventory_position",
    "mean_demand_protection",
    "sigma_demand_protection",
    "safety_stock",
    "lead_time_std_days",
    "service_level",
    "item_class",
    "expected_shortage_units",
    "expected_service",
    "expected_cost",
    "binding_constraint",
    "rationale",
]
UNMET_COLUMNS = ["decision_type", "location_id", "sku_id", "wanted_units", "planned_units", "constraint", "explanation"]
Z95 = scipy.special.ndtri(0.95)
# upper forecast quantiles a daily spread is fitted to (`daily_variance`)
UPPER_QUANTILES = {"p90": scipy.special.ndtri(0.90), "p95": Z95, "p99": scipy.special.ndtri(0.99)}
CLASSES = tuple(a + x for a in "ABC" for x in "XYZ")
CANDIDATES = 12  # order quantities tried per item when a shared limit binds


# service levels the cost-optimal and class modes stay inside (the fixed mode's frontier sweeps
# levels outside them on purpose)
SERVICE_BOUNDS = (0.5, 0.999)


@dataclass
class ReplenishmentPlan:
    orders: pd.DataFrame  # ORDER_COLUMNS, units > 0
    targets: pd.DataFrame  # store x SKU targets (`store_targets`), for rebalancing and the record
    unmet: pd.DataFrame  # UNMET_COLUMNS: what a limit kept from being ordered, and why
    lead_times: pd.DataFrame  # per supplier (`estimate_lead_times`)
    arrival_sales: pd.DataFrame  # location_id, sku_id, units expected to sell (or, short-shipped, never to
    #                              arrive) before today's orders land: the space capacity_room frees


# ---- building blocks ------------------------------------------------------------------------------


def normal_loss(z: np.ndarray) -> np.ndarray:
    """Standard normal loss function G(z) = E[(Z - z)^+] = phi(z) - z (1 - Phi(z))."""
    z = np.asarray(z, float)
    return scipy.stats.norm.pdf(z) - z * scipy.stats.norm.sf(z)


def expected_shortage(mu: np.ndarray, sigma: np.ndarray, y: np.ndarray) -> np.ndarray:
    """E[(D - y)^+] for D ~ N(mu, sigma) (sigma 0: the deterministic max(mu - y, 0))."""
    mu, sigma, y = np.broadcast_arrays(np.asarray(mu, float), np.asarray(sigma, float), np.asarray(y, float))
    pos = sigma > 1e-12
    g = sigma * normal_loss((y - mu) / np.where(pos, sigma, 1.0))
    return np.where(pos, np.maximum(g, 0.0), np.maximum(mu - y, 0.0))


def expected_leftover(mu, sigma, y) -> np.ndarray:
    """E[(y - D)^+] = y - mu + E[(D - y)^+]."""
    return np.asarray(y, float) - np.asarray(mu, float) + expected_shortage(mu, sigma, y)


def round_up_to_packs(qty: np.ndarray, pack: np.ndarray) -> np.ndarray:
    return (np.ceil(np.maximum(np.asarray(qty, float), 0) / pack - 1e-9) * pack).astype(np.int64)


def daily_variance(forecast: pd.DataFrame) -> np.ndarray:
    """sigma_h^2 per forecast row: the smallest normal spread that reproduces every upper quantile
    the forecast quotes (p90, p95, p99; sigma = (q - mean) / z_q, the largest of them). A right
    tail heavier than normal (bulk buys, demand shocks) shows at p99 first, and the stock decision
    lives there (cost-optimal levels are ~99%+), so fitting p95 alone would understate it. A row
    that quotes none falls back to Poisson variance (= mean). A `var` column, when present, is
    used as it is (pooled DC demand)."""
    mu = forecast["mean"].to_numpy(float)
    if "var" in forecast:
        return np.nan_to_num(forecast["var"].to_numpy(float))
    var = np.full(len(mu), np.nan)
    for q, z in UPPER_QUANTILES.items():
        if q in forecast:
            v = forecast[q].to_numpy(float)
            var = np.fmax(var, np.where(np.isfinite(v), (np.maximum(v - mu, 0) / z) ** 2, np.nan))
    return np.where(np.isfinite(var), var, np.maximum(np.nan_to_num(mu), 0))


@dataclass
class _Cumulative:
    """Cumulative forecast mean and variance per series: cum[:, k] = days 1..k (k = 0..H)."""

    keys: pd.DataFrame
    mean: np.ndarray
    var: np.ndarray
    m: np.ndarray  # demand multiplier per series
    var_scale: np.ndarray | None = None  # measured-error widening of the variance per series (`measured_spread`)

    def at(self, period: np.ndarray, which: str = "mean") -> np.ndarray:
        """Sum over a (fractional) period P per series (P: (n,) or (n, K)); the last day pro rata;
        past the horizon the last day's value continues. Multiplier applied (m for the mean, m^2
        for the variance)."""
        cum = self.mean if which == "mean" else self.var
        n, H = cum.shape[0], cum.shape[1] - 1
        P = np.maximum(np.asarray(period, float), 0.0)
        squeeze = P.ndim == 1
        P = P.reshape(n, -1)
        rows = np.arange(n)[:, None]
        k = np.minimum(np.floor(P).astype(int), H)
        day = np.diff(cum, axis=1) if H > 0 else np.zeros((n, 1))
        nxt = day[rows, np.minimum(k, max(H - 1, 0))]
        last = day[:, [max(H - 1, 0)]]
        out = np.where(P <= H, cum[rows, k] + (P - np.floor(P)) * nxt, cum[:, [H]] + np.maximum(P - H, 0) * last)
        scale = self.m if which == "mean" else self.m**2 * (1.0 if self.var_scale is None else self.var_scale)
        out = out * scale[:, None]
        return out[:, 0] if squeeze else out


def _cumulate(
    forecast: pd.DataFrame, multiplier: np.ndarray | None = None, keys: tuple[str, ...] = ("location_id", "sku_id")
) -> _Cumulative:
    f = forecast.sort_values([*keys, "horizon"])
    g = f.groupby(list(keys), sort=True)
    ids = g.ngroup().to_numpy()
    n = ids.max() + 1 if len(ids) else 0
    H = int(f["horizon"].max()) if len(f) else 1
    mean = np.zeros((n, H))
    var = np.zeros((n, H))
    h = f["horizon"].to_numpy(int) - 1
    mean[ids, h] = np.nan_to_num(f["mean"].to_numpy(float))
    var[ids, h] = daily_variance(f)
    m = np.ones(n) if multiplier is None else np.asarray(multiplier, float)
    z = np.zeros((n, 1))
    return _Cumulative(
        g.size().reset_index()[list(keys)],
        np.concatenate([z, np.cumsum(mean, 1)], 1),
        np.concatenate([z, np.cumsum(var, 1)], 1),
        m,
    )


def protection_demand(
    forecast: pd.DataFrame,
    period: pd.Series | np.ndarray,
    multiplier: np.ndarray | None = None,
    keys: tuple[str, ...] = ("location_id", "sku_id"),
) -> pd.DataFrame:
    """mu_P and var_P (forecast part) per series for a (fractional) protection period P per
    series: `period` is aligned with the series in the order of `forecast.groupby(keys)`. The
    daily forecast is summed day by day, so a ramp (season, planned promotion) inside P counts
    at its own level, not at an average. Past the forecast horizon the last day continues."""
    c = _cumulate(forecast, multiplier, keys)
    P = np.asarray(period, float)
    d1 = np.ones(len(c.keys))
    return c.keys.assign(mu_P=c.at(P), var_P=c.at(P, "var"), mean_1=c.at(d1), sd_1=np.sqrt(c.at(d1, "var")))


def _daily_grid(
    h: pd.DataFrame, keys: pd.DataFrame, key_cols: tuple[str, str], first: pd.Timestamp, days: int, values: list
) -> list[np.ndarray]:
    """Per row of `keys` and day from `first` on: the sum of each of `values` (arrays aligned with
    `h`'s rows; None counts the rows) over `h`'s rows of that series and day, 0 where none. By
    integer codes and bincount: ~2M rows at M5 scale, where a groupby and unstack took seconds."""
    codes = [key_codes(h[c]) for c in key_cols]  # string or categorical keys (core.keys)
    keyed = (codes[0][0] >= 0) & (codes[1][0] >= 0)  # a row without a key belongs to no series, as in a groupby
    width = len(codes[1][1])
    pair = np.where(keyed, codes[0][0].astype(np.int64) * width + codes[1][0], -1)
    pair_code, pairs = pd.factorize(pair[keyed])
    known = pd.MultiIndex.from_arrays(
        [np.asarray(codes[0][1], dtype=object)[pairs // width], np.asarray(codes[1][1], dtype=object)[pairs % width]]
    )
    at = known.get_indexer(pd.MultiIndex.from_frame(keys[list(key_cols)]))  # -1: a series without history
    day = ((as_dates(h["date"]).to_numpy() - first.to_datetime64()) // np.timedelta64(1, "D")).astype(np.int64)
    cell = pair_code.astype(np.int64) * days + day[keyed]
    out = []
    for v in values:
        w = None if v is None else np.asarray(v, float)[keyed]
        sums = np.bincount(cell, weights=w, minlength=len(pairs) * days).reshape(len(pairs), days)
        out.append(
            np.where((at >= 0)[:, None], sums[np.maximum(at, 0)], 0.0) if len(pairs) else np.zeros((len(at), days))
        )
    return out


SPREAD_COLUMNS = ("date", "units_sold", "on_promo", "is_stockout")  # the history columns measured_spread reads


def measured_spread(
    history: pd.DataFrame | None,
    keys: pd.DataFrame,
    period: np.ndarray,
    plan_date: str,
    cfg: ReplenishmentPolicy = ReplenishmentPolicy(),
    key_cols: tuple[str, str] = ("location_id", "sku_id"),
    promotions_planned: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Measured error of demand over a protection period, from the recent sales history
    (`fct_daily_demand`: date, location_id, sku_id, units_sold; on_promo and is_stockout when
    present), per series of `keys` (in `key_cols`) for its period P (days, rounded up):

        e_j = (sales over days j .. j + P - 1) - P x (mean daily sales over the clean days of the
              `error_reference_days` before day j)  for every window start j of the last `error_window_days`
        mse = mean of e_j^2                        (bias included: a ramp or a level shift counts)

    the realised error of a trailing-mean forecast of the P-day total -- the yardstick the rule's
    28-day average is. Unlike the forecast's daily spread summed as if days were independent, it
    sees what moves several days together: demand shocks, bulk buys, level shifts, ramps, and
    promotions the forecast does not know are coming. Windows holding a stock-out day (sales
    censored) are left out, and those holding a promotion day only when the forecast plans
    promotions (`promotions_planned`: the forecast took the promotion plan of landing v1.1);
    promotion days never enter the reference mean.
    Returns (mse, n_eff) with n_eff = windows / P, the number of non-overlapping windows the
    estimate stands on (0 without history). A clean day has no promotion and no
    stock-out; the reference needs half its days clean and every day carried."""
    n = len(keys)
    mse, neff = np.zeros(n), np.zeros(n)
    if history is None or not len(history) or n == 0:
        return mse, neff
    P = np.maximum(np.ceil(np.asarray(period, float) - 1e-9), 1).astype(int)
    ref, win = int(cfg.error_reference_days), int(cfg.error_window_days)
    T = ref + win + int(P.max())
    end = pd.Timestamp(plan_date)
    dates = pd.date_range(end=end, periods=T)
    when = as_dates(history["date"])
    recent = ((when > end - pd.Timedelta(days=T)) & (when <= end)).to_numpy()
    # the window's rows and only the columns read, in one copy: copying every column of the ~5 M
    # rows of an M5 history (two of them strings) was most of this function's time
    h = history.loc[recent, [c for c in (*SPREAD_COLUMNS, *key_cols) if c in history]]
    if not len(h):
        return mse, neff
    h = h.assign(date=when.to_numpy()[recent])
    promo = (h["on_promo"].fillna(0).astype(float).to_numpy() > 0) if "on_promo" in h else np.zeros(len(h), bool)
    censored = h["is_stockout"].fillna(False).astype(bool).to_numpy() if "is_stockout" in h else np.zeros(len(h), bool)
    # `bad` days leave a window out; `dirty` days stay out of the reference mean (a promotion's lift
    # is not the base level), and a window may hold them when the forecast does not plan promotions
    bad = censored | (promo if promotions_planned else False)
    x, seen, n_bad, n_dirty = _daily_grid(
        h, keys, key_cols, dates[0], T, [h["units_sold"].fillna(0.0).to_numpy(float), None, bad, censored | promo]
    )
    # a day without a row (not yet launched, no longer carried) cannot be judged either
    unseen = seen == 0
    b = (n_bad > 0) | unseen
    dirty = (n_dirty > 0) | unseen
    cx = np.concatenate([np.zeros((n, 1)), np.cumsum(x, 1)], 1)
    cb = np.concatenate([np.zeros((n, 1)), np.cumsum(b, 1)], 1)
    cu = np.concatenate([np.zeros((n, 1)), np.cumsum(unseen, 1)], 1)
    cxc = np.concatenate([np.zeros((n, 1)), np.cumsum(np.where(dirty, 0.0, x), 1)], 1)  # clean days only
    cc = np.concatenate([np.zeros((n, 1)), np.cumsum(~dirty, 1)], 1)
    for p in np.unique(P):
        r = np.flatnonzero(P == p)
        j = np.arange(max(ref, T - p - win + 1), T - p + 1)  # window starts: days j .. j + p - 1 (0-based)
        if not len(j):
            continue
        S = cx[r][:, j + p] - cx[r][:, j]
        clean = cc[r][:, j] - cc[r][:, j - ref]
        base = (cxc[r][:, j] - cxc[r][:, j - ref]) / np.maximum(clean, 1) * p
        ok = ((cb[r][:, j + p] - cb[r][:, j]) == 0) & ((cu[r][:, j] - cu[r][:, j - ref]) == 0) & (clean >= ref / 2)
        e2 = np.where(ok, (S - base) ** 2, 0.0)
        cnt = ok.sum(1)
        mse[r] = np.where(cnt > 0, e2.sum(1) / np.maximum(cnt, 1), 0.0)
        neff[r] = cnt / p
    return mse, neff


def _widening(measured: np.ndarray, n_eff: np.ndarray, forecast_var: np.ndarray) -> np.ndarray:
    """Variance factor >= 1 that lifts the forecast's protection variance to the measured error
    where the measurement stands on at least two non-overlapping windows; never narrows."""
    fv = np.asarray(forecast_var, float)
    k = np.where((n_eff >= 2) & (fv > 1e-12), measured / np.maximum(fv, 1e-12), 1.0)
    return np.maximum(k, 1.0)


def _master_pmf(m0: np.ndarray, s0: np.ndarray, support: np.ndarray) -> np.ndarray:
    """The master lead time N(m0, s0) on whole days (0 takes the mass below half a day, the last
    day the upper tail); a master without spread splits between the two days around m0, keeping
    its mean."""
    m0, s0 = np.asarray(m0, float)[:, None], np.asarray(s0, float)[:, None]
    l = support[None, :].astype(float)
    sd = np.where(s0 > 1e-9, s0, 1.0)
    hi = np.where(l == support[-1], 1.0, scipy.stats.norm.cdf((l + 0.5 - m0) / sd))
    lo = np.where(l == 0, 0.0, scipy.stats.norm.cdf((l - 0.5 - m0) / sd))
    spread = hi - lo
    mc = np.clip(m0, 0, support[-1])
    fl = np.floor(mc)
    point = np.where(l == fl, 1 - (mc - fl), 0.0) + np.where(l == fl + 1, mc - fl, 0.0)
    return np.where(s0 > 1e-9, spread, point)


def lead_time_model(
    observations: pd.DataFrame | None,
    master: pd.DataFrame,
    plan_date: str,
    cfg: ReplenishmentPolicy = ReplenishmentPolicy(),
):
    """The lead-time distribution and unit fill rate of each key (a supplier, or a DC -> store
    lane) from receipts against orders, shrunk toward the master data (module docstring).

    `master`: index = key, columns master_mean, master_std. `observations`: rows of
    `fct_order_lead_times` already restricted to the order type, with a `key` column.
    Returns (table, support, pmf): the table (one row per key) has master_mean, master_std,
    n_orders, observed_mean, observed_std, lead_time_mean, lead_time_std, lead_time_p95,
    units_ordered, units_received, observed_fill_rate, fill_rate, source; pmf[i, j] is the
    probability that key i's order takes support[j] days."""
    m0 = master["master_mean"].astype(float).to_numpy()
    s0 = master["master_std"].astype(float).fillna(0.0).to_numpy()
    out = master[["master_mean", "master_std"]].copy()
    k = float(cfg.lead_time_prior_orders)
    n = np.zeros(len(out))
    obs = None
    if observations is not None and len(observations):
        end = pd.Timestamp(plan_date)
        rd = as_dates(observations["received_date"])
        obs = observations[(rd <= end) & (rd > end - pd.Timedelta(days=cfg.lead_time_window_days))]
        obs = obs[obs["key"].isin(out.index)]
        if not len(obs):
            obs = None
    lmax = int(np.ceil(np.nanmax(np.r_[m0 + 6 * s0, 1.0]))) + 1
    if obs is not None:
        lmax = max(lmax, int(obs["lead_time_days"].max()) + 1)
    support = np.arange(lmax + 1)
    prior = _master_pmf(m0, s0, support)
    emp = np.zeros_like(prior)
    ordered = np.zeros(len(out))
    received = np.zeros(len(out))
    if obs is not None:
        row = out.index.get_indexer(obs["key"])
        days = np.clip(obs["lead_time_days"].to_numpy(float), 0, lmax).round().astype(int)
        np.add.at(emp, (row, days), 1.0)
        n = emp.sum(1)
        emp = emp / np.maximum(n, 1)[:, None]
        if {"units_ordered", "units_received"} <= set(obs.columns):
            uo = obs["units_ordered"].to_numpy(float)
            ur = np.minimum(obs["units_received"].to_numpy(float), uo)  # an over-delivery is not a better fill
            np.add.at(ordered, row, np.nan_to_num(uo))
            np.add.at(received, row, np.nan_to_num(ur))
    w = n / np.maximum(n + k, 1e-12)
    w = np.where(n + k > 0, w, 0.0)
    pmf = w[:, None] * emp + (1 - w)[:, None] * prior
    pmf = pmf / pmf.sum(1, keepdims=True)
    mean = pmf @ support
    std = np.sqrt(np.maximum(pmf @ support.astype(float) ** 2 - mean**2, 0))
    cdf = np.cumsum(pmf, 1)
    out["n_orders"] = n.astype(int)
    emp_mean = emp @ support
    out["observed_mean"] = np.where(n > 0, emp_mean, np.nan)
    out["observed_std"] = np.where(
        n > 0, np.sqrt(np.maximum(emp @ support.astype(float) ** 2 - emp_mean**2, 0)), np.nan
    )
    out["lead_time_mean"], out["lead_time_std"] = mean, std
    out["lead_time_p95"] = support[np.argmax(cdf >= 0.95 - 1e-12, axis=1)]
    f_obs = np.where(ordered > 0, received / np.maximum(ordered, 1e-12), np.nan)
    n_f = np.where(ordered > 0, n, 0.0)
    out["units_ordered"], out["units_received"], out["observed_fill_rate"] = ordered, received, f_obs
    # unit fill rate shrunk toward complete deliveries (what the master implies), same weight k
    out["fill_rate"] = np.where(
        n_f + k > 0, (n_f * np.nan_to_num(f_obs, nan=1.0) + k) / np.maximum(n_f + k, 1e-12), 1.0
    )
    out["fill_rate"] = out["fill_rate"].clip(lower=0.05, upper=1.0)
    out["source"] = np.where(n == 0, "master", "receipts+master")
    return out, support, pmf


def estimate_lead_times(
    observations: pd.DataFrame | None,
    products: pd.DataFrame,
    plan_date: str,
    cfg: ReplenishmentPolicy = ReplenishmentPolicy(),
    with_pmf: bool = False,
):
    """Per supplier: the lead-time distribution and unit fill rate of its purchase orders
    (`fct_order_lead_times` rows of order_type `supplier`: lead_time_days, units_ordered,
    units_received), over the last `lead_time_window_days`, shrunk toward the supplier master
    N(lead_time_days, lead_time_std_days) with complete deliveries, which weighs as
    `lead_time_prior_orders` observed orders (`lead_time_model`). The mean and spread of the
    shrunk distribution are the pooled mixture
        mean = (n m_obs + k m_0) / (n + k)
        var  = (n s_obs^2 + k s_0^2) / (n + k) + n k (m_obs - m_0)^2 / (n + k)^2
    and its right tail (lead_time_p95) is the one the receipts show, late deliveries included.
    `with_pmf` also returns (support, pmf) for the DC's protection demand."""
    master = (
        products[["supplier_id", "supplier_lead_time_days", "supplier_lead_time_std_days"]]
        .drop_duplicates("supplier_id")
        .set_index("supplier_id")
    )
    master = pd.DataFrame(
        {
            "master_mean": master["supplier_lead_time_days"].astype(float).fillna(7.0),
            "master_std": master["supplier_lead_time_std_days"].astype(float).fillna(0.0),
        }
    )
    obs = None
    if observations is not None and len(observations):
        obs = observations
        if "order_type" in obs:
            obs = obs[obs["order_type"] == "supplier"]
        obs = obs.assign(key=obs["source_id"])
    table, support, pmf = lead_time_model(obs, master, plan_date, cfg)
    table = table.rename_axis("supplier_id").reset_index()
    return (table, support, pmf) if with_pmf else table


def lane_lead_times(
    observations: pd.DataFrame | None,
    keys: pd.DataFrame,
    lane_days: np.ndarray,
    plan_date: str,
    cfg: ReplenishmentPolicy = ReplenishmentPolicy(),
):
    """The same per DC -> store lane (`store_replenishment` receipts: source = the DC), the
    master being the lane's lead time (no spread): (table, support, pmf), rows in the order of
    the unique (dc_id, location_id) pairs of `keys`; also the row of each key."""
    # one string per key, vectorised: a row-wise join took ~1 s over an M5 plan's 29 k keys
    lanes = keys["dc_id"].astype(str) + "|" + keys["location_id"].astype(str)
    uniq, inv = np.unique(lanes.to_numpy(), return_inverse=True)
    first = pd.Series(np.arange(len(lanes))).groupby(inv).first().to_numpy()
    master = pd.DataFrame({"master_mean": np.asarray(lane_days, float)[first], "master_std": 0.0}, index=uniq)
    obs = None
    if (
        observations is not None
        and len(observations)
        and {"order_type", "source_id", "location_id"} <= set(observations.columns)
    ):
        obs = observations[observations["order_type"] == "store_replenishment"]
        obs = obs.assign(key=obs["source_id"].astype(str) + "|" + obs["location_id"].astype(str))
    table, support, pmf = lead_time_model(obs, master, plan_date, cfg)
    return table, support, pmf, inv


def mixture_targets(cum: _Cumulative, support: np.ndarray, pmf: np.ndarray, review: float, alpha: np.ndarray):
    """Demand over the protection period L + R when the lead time L is a distribution over whole
    days (pmf per series over `support`): D = sum_{l} p_l D_{l+R}, D_{l+R} ~ N(M(l+R), V(l+R))
    with M, V the forecast summed day by day over l + R days. Returns the mixture's mean and
    spread and the stock y with P(D <= y) = alpha (the alpha-quantile of the mixture, by
    bisection; a one-point lead time gives the closed form M + z(alpha) sqrt(V))."""
    n = len(cum.keys)
    P = np.broadcast_to(support[None, :] + review, (n, len(support))).astype(float)
    M, V = cum.at(P), cum.at(P, "var")
    mu = (pmf * M).sum(1)
    var = np.maximum((pmf * (V + M**2)).sum(1) - mu**2, 0.0)
    alpha = np.asarray(alpha, float)
    one = pmf.max(1) > 1 - 1e-12
    j = pmf.argmax(1)
    r = np.arange(n)
    y = M[r, j] + scipy.stats.norm.ppf(np.clip(alpha, 1e-12, 1 - 1e-12)) * np.sqrt(V[r, j])
    multi = ~one
    if multi.any():
        Mm, Sm, pm, am = M[multi], np.sqrt(V[multi]), pmf[multi], alpha[multi]
        live = pm > 0
        lo = np.where(live, Mm - 9 * Sm, np.inf).min(1) - 1.0
        hi = np.where(live, Mm + 9 * Sm, -np.inf).max(1) + 1.0
        for _ in range(60):
            mid = (lo + hi) / 2
            z = (mid[:, None] - Mm) / np.where(Sm > 1e-12, Sm, 1.0)
            F = (pm * np.where(Sm > 1e-12, scipy.stats.norm.cdf(z), (mid[:, None] >= Mm).astype(float))).sum(1)
            below = F < am
            lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
        y[multi] = hi
    return mu, np.sqrt(var), y


def classify_items(value: np.ndarray, cv: np.ndarray, cfg: ReplenishmentPolicy = ReplenishmentPolicy()) -> np.ndarray:
    """ABC x XYZ class per item: A/B/C by the cumulative share of `value` (largest first) at the
    `abc_cuts`; X/Y/Z by the coefficient of variation `cv` at the `xyz_cuts`."""
    value = np.nan_to_num(np.asarray(value, float))
    order = np.argsort(-value, kind="stable")
    total = value.sum()
    share_before = np.empty(len(value))
    share_before[order] = (np.cumsum(value[order]) - value[order]) / (total if total > 0 else 1.0)
    abc = np.select([share_before < cfg.abc_cuts[0], share_before < cfg.abc_cuts[1]], ["A", "B"], "C")
    cv = np.nan_to_num(np.asarray(cv, float), nan=np.inf)
    xyz = np.select([cv <= cfg.xyz_cuts[0], cv <= cfg.xyz_cuts[1]], ["X", "Y"], "Z")
    return np.char.add(abc.astype(str), xyz.astype(str))


def service_levels(
    item_class: np.ndarray,
    shortage_cost: np.ndarray,
    holding_per_review: np.ndarray,
    cfg: ReplenishmentPolicy = ReplenishmentPolicy(),
) -> np.ndarray:
    """alpha per item by `cfg.service_mode` (module docstring), inside SERVICE_BOUNDS."""
    lo, hi = SERVICE_BOUNDS
    if cfg.service_mode == "fixed":
        a = np.full(len(item_class), cfg.service_level)
        return a  # the frontier sweeps levels outside the bounds on purpose
    if cfg.service_mode == "cost_optimal":
        b, h = np.asarray(shortage_cost, float), np.asarray(holding_per_review, float)
        a = np.where(b + h > 0, b / np.maximum(b + h, 1e-12), lo)
    elif cfg.service_mode == "class":
        a = pd.Series(item_class).map(cfg.class_service_levels).fillna(cfg.service_level).to_numpy(float)
    else:
        raise ValueError(f"unknown service_mode {cfg.service_mode!r}: class | cost_optimal | fixed")
    return np.clip(a, lo, hi)


def eoq_band(
    dbar: np.ndarray, order_cost: float, unit_cost: np.ndarray, cfg: ReplenishmentPolicy, costs: CostPolicy
) -> np.ndarray:
    """S - s: the economic order quantity sqrt(2 K D / H) at annual demand D = 365 dbar and
    annual holding H = unit cost x rate, at most `max_cycle_days` of demand (0 when K = 0)."""
    if order_cost <= 0:
        return np.zeros(len(dbar))
    H = np.maximum(np.asarray(unit_cost, float) * costs.annual_holding_rate, 1e-9)
    return np.minimum(np.sqrt(2 * order_cost * 365 * np.maximum(dbar, 0) / H), cfg.max_cycle_days * np.maximum(dbar, 0))


# ---- stores ----------------------------------------------------------------------------------------


def order_cycle_days(band: np.ndarray, dbar: np.ndarray, review: float) -> np.ndarray:
    """T: the expected days between two orders of an item, max(band / daily demand, R). Between
    two orders stock is held every day, while the stock-out risk is run once, at the end of the
    protection period before the next order lands (`service_levels`, cost_optimal)."""
    dbar = np.asarray(dbar, float)
    return np.maximum(np.where(dbar > 1e-12, np.asarray(band, float) / np.maximum(dbar, 1e-12), 0.0), review)


def _cost_levels(item_class, shortage_cost, holding_daily, band, dbar, cfg, review=None):
    """cost_optimal: alpha = b / (b + h_R), the shortage risk priced against one review period's
    holding. Not b / (b + h T) with T = `order_cycle_days` (Hadley-Whitin's one-risk-per-cycle
    fractile), although that is the textbook optimum under the normal model: measured on the twin
    it lowered the level of every item that orders less than daily and lost more units
    in every world (netA 50 vs 32, netB 233 vs 184, shocks 2,443 vs 2,095, unreliable supply 2,502
    vs 1,336), because real demand's right tail is heavier than the model's, so a lower fractile
    costs more than the model expects."""
    return service_levels(
        item_class, shortage_cost, holding_daily * (cfg.review_period_days if review is None else review), cfg
    )


def store_review_days(store_ids: pd.Series, stores: pd.DataFrame, cfg: ReplenishmentPolicy) -> np.ndarray:
    """The review period of each store: the policy's, or 7 days for a store its DC delivers to on
    one weekday only (`delivery_weekday` on its DC -> store lane, an extra column of lanes.csv that
    `delivery_schedule` puts on the locations): an order that misses the truck waits a week, so
    the store must cover its lead time plus a whole week."""
    R = np.full(len(store_ids), float(cfg.review_period_days))
    if "delivery_weekday" in stores:
        weekly = store_ids.map(stores["delivery_weekday"]).notna().to_numpy()
        R = np.where(weekly, np.maximum(R, 7.0), R)
    return R


def delivery_schedule(locations: pd.DataFrame, lanes: pd.DataFrame | None) -> pd.DataFrame:
    """The locations with each store's delivery weekday from its DC -> store lane (lanes.csv's
    optional `delivery_weekday`; blank = daily deliveries). Unchanged without the column."""
    if lanes is None or "delivery_weekday" not in lanes or "delivery_weekday" in locations:
        return locations
    lane = lanes.rename(columns={"from_location_id": "supplying_dc_id", "to_location_id": "location_id"})
    day = pd.to_numeric(lane["delivery_weekday"], errors="coerce")
    lane = lane.assign(delivery_weekday=day)[["supplying_dc_id", "location_id", "delivery_weekday"]].dropna()
    lane = lane.astype({"supplying_dc_id": str, "location_id": str})
    return locations.merge(lane, on=["supplying_dc_id", "location_id"], how="left")


def _price_terms(keys: pd.DataFrame, idx: pd.MultiIndex, prices: pd.DataFrame | None, prod: pd.DataFrame):
    """Per store x SKU of `keys`: the recommended price's demand multiplier (1 without one) and
    the unit price the sale is valued at (the recommended price, else the base price, else cost)."""
    price_tab = None
    if prices is not None and len(prices):
        price_tab = prices.set_index(["location_id", "sku_id"])
    m = (
        price_tab["demand_multiplier"].reindex(idx).fillna(1.0).to_numpy(float)
        if price_tab is not None and "demand_multiplier" in price_tab
        else np.ones(len(keys))
    )
    base = (
        keys["sku_id"].map(prod["base_price"] if "base_price" in prod else prod["unit_cost"]).astype(float).to_numpy()
    )
    unit_price = (
        price_tab["recommended_price"].reindex(idx).to_numpy(float)
        if price_tab is not None and "recommended_price" in price_tab
        else base
    )
    unit_price = pd.Series(unit_price).fillna(pd.Series(base))
    return m, unit_price


def store_targets(
    forecast: pd.DataFrame,
    prices: pd.DataFrame | None,
    positions: pd.DataFrame,
    products: pd.DataFrame,
    locations: pd.DataFrame,
    plan_date: str,
    cfg: ReplenishmentPolicy = ReplenishmentPolicy(),
    lead_time_observations: pd.DataFrame | None = None,
    history: pd.DataFrame | None = None,
    costs: CostPolicy = CostPolicy(),
    promotions_planned: bool = False,
) -> pd.DataFrame:
    """Per store x SKU in the forecast: demand over the protection period, class, service level,
    reorder point s and order-up-to S, position, costs (columns documented in docs/replenishment.md).
    The DC -> store lane's lead time and unit fill rate are learned from the lane's receipts
    (`lane_lead_times`) when `lead_time_observations` are given, else the lane's master; with a
    sales `history` the protection variance is widened to the measured error (`measured_spread`)."""
    stores = locations[locations["location_type"] == "store"].set_index("location_id")
    fc = forecast[forecast["location_id"].isin(stores.index)]
    keys = fc[["location_id", "sku_id"]].drop_duplicates().sort_values(["location_id", "sku_id"], ignore_index=True)
    prod = products.set_index("sku_id")
    R = store_review_days(keys["location_id"], stores, cfg)
    L0 = keys["location_id"].map(stores["replenishment_lead_time_days"]).fillna(1).to_numpy(float)
    idx = pd.MultiIndex.from_frame(keys)
    m, unit_price = _price_terms(keys, idx, prices, prod)
    t = keys.copy()
    t["dc_id"] = t["location_id"].map(stores["supplying_dc_id"])
    lanes, support, pmf_lane, lane_row = lane_lead_times(lead_time_observations, t, L0, plan_date, cfg)
    pmf = pmf_lane[lane_row]
    Lm = lanes["lead_time_mean"].to_numpy(float)[lane_row]
    cum = _cumulate(fc, m)
    t["lead_time_days"] = np.rint(Lm).astype(int)
    t["lead_time_mean_days"] = Lm
    t["lead_time_std_days"] = lanes["lead_time_std"].to_numpy(float)[lane_row]
    t["fill_rate"] = lanes["fill_rate"].to_numpy(float)[lane_row]
    t["protection_days"] = Lm + R
    one = np.ones(len(t))
    mean_1, sd_1 = cum.at(one), np.sqrt(cum.at(one, "var"))
    # what sells before today's order lands (the mean lead time)
    t["sales_until_arrival"] = (pmf * cum.at(np.broadcast_to(support[None, :], pmf.shape).astype(float))).sum(1)
    t["cv_daily"] = np.where(mean_1 > 0, sd_1 / np.maximum(mean_1, 1e-12), np.inf)
    t["unit_cost"] = keys["sku_id"].map(prod["unit_cost"]).astype(float).fillna(0).to_numpy()
    t["unit_price"] = unit_price
    t["case_pack"] = keys["sku_id"].map(prod["case_pack"]).fillna(1).astype(int).clip(lower=1).to_numpy()
    t["shortage_cost"] = np.maximum(t["unit_price"] - t["unit_cost"], 0) + cfg.goodwill_share * t["unit_price"]
    t["holding_cost_daily"] = t["unit_cost"] * costs.annual_holding_rate / 365
    mu_P = cum.at(t["protection_days"].to_numpy())
    P = t["protection_days"].to_numpy()
    mse, neff = measured_spread(history, t, P, plan_date, cfg, promotions_planned=promotions_planned)
    cum.var_scale = _widening(mse, neff, cum.at(t["protection_days"].to_numpy(), "var"))
    t["measured_error_sd"], t["error_widening"] = np.sqrt(mse), cum.var_scale
    t["mu_daily"] = mu_P / t["protection_days"]
    t["item_class"] = classify_items(t["mu_daily"] * t["unit_price"], t["cv_daily"], cfg)
    band = eoq_band(t["mu_daily"].to_numpy(), cfg.store_order_cost, t["unit_cost"].to_numpy(), cfg, costs)
    t["order_cycle_days"] = order_cycle_days(band, t["mu_daily"].to_numpy(), R)
    t["service_level"] = _cost_levels(
        t["item_class"].to_numpy(),
        t["shortage_cost"].to_numpy(),
        t["holding_cost_daily"].to_numpy(),
        band,
        t["mu_daily"].to_numpy(),
        cfg,
        R,
    )
    t["review_period_days"] = R
    mu, sigma, s = mixture_targets(cum, support, pmf, R[:, None], t["service_level"].to_numpy())
    t["mu_P"], t["sigma_P"] = mu, sigma
    t["safety_stock"], t["reorder_point"], t["order_up_to"] = s - mu, s, s + band
    pos = positions.set_index(["location_id", "sku_id"])
    t["on_hand"] = pos["on_hand"].reindex(idx).fillna(0).to_numpy(float)
    t["on_order"] = pos["on_order"].reindex(idx).fillna(0).to_numpy(float)
    # what is on order counts at the lane's fill rate (a short-shipping source delivers less)
    t["inventory_position"] = t["on_hand"] + t["fill_rate"] * t["on_order"]
    # units on order that will not arrive take no space when today's order lands (capacity_room)
    t["sales_until_arrival"] = t["sales_until_arrival"] + (1 - t["fill_rate"]) * t["on_order"]
    return t


def capacity_room(
    positions: pd.DataFrame, locations: pd.DataFrame, arrival_sales: pd.DataFrame | None = None
) -> pd.Series:
    """Space per location for today's orders when they arrive: capacity_units minus the stock
    expected then, sum over its SKUs of max(on hand + on order - expected sales before the orders
    arrive, 0) (`arrival_sales`: location_id, sku_id, units). Stock that sells before the delivery
    frees its space, so a full store still replenishes what sells. A location already over its
    capacity (an inherited overstock) may still take in what flows out before the delivery: at
    arrival it holds at most max(capacity, what it holds and has on order today), so its stock never
    grows past either, and its fast movers keep selling instead of starving behind the slow movers'
    excess (640 units lost against the rule's 13 after an overstocked takeover). inf
    where no capacity is set."""
    loc = locations.set_index("location_id")
    cap = (loc["capacity_units"] if "capacity_units" in loc else pd.Series(np.nan, index=loc.index)).astype(float)
    stock = positions.set_index(["location_id", "sku_id"])
    units = stock["on_hand"].astype(float) + stock["on_order"].astype(float)
    today = units.groupby(level=0).sum().reindex(cap.index).fillna(0)
    if arrival_sales is not None and len(arrival_sales):
        sold = arrival_sales.groupby(["location_id", "sku_id"])["units"].sum()
        units = units.sub(sold.reindex(units.index).fillna(0)).clip(lower=0)
    held = units.groupby(level=0).sum().reindex(cap.index).fillna(0)
    return (np.maximum(cap, today) - held).where(cap > 0, np.inf)


def _pack_candidates(item_units: np.ndarray, pack: np.ndarray, moq: np.ndarray | None = None):
    """Candidate quantities per item: 0 and up to CANDIDATES-1 whole-pack quantities from the
    smallest allowed (one pack, or the MOQ) to the planned one. Returns (item index, units)."""
    n_packs = (item_units // pack).astype(int)
    lo = np.ones(len(n_packs), int) if moq is None else np.maximum(np.ceil(moq / pack - 1e-9).astype(int), 1)
    lo = np.minimum(lo, n_packs)
    steps = np.linspace(0, 1, CANDIDATES - 1)
    k = np.round(lo[:, None] + (n_packs - lo)[:, None] * steps[None, :]).astype(int)
    k = np.concatenate([np.zeros((len(n_packs), 1), int), np.where(n_packs[:, None] > 0, k, 0)], axis=1)
    cand = pd.DataFrame({"item": np.repeat(np.arange(len(n_packs)), k.shape[1]), "k": k.ravel()}).drop_duplicates()
    return cand["item"].to_numpy(), cand["k"].to_numpy() * pack[cand["item"].to_numpy()]


def _limit_choice(units, pack, mu, sigma, ip, b, rows_of_item, usage_per_unit, room, moq, cfg, fill=None):
    """Re-choose quantities of items under shared limits (see the module docstring): returns new
    units and a mask of items the limits cut. `rows_of_item[k]` gives each item's row in the k-th
    family of limits (-1: none) and `usage_per_unit[k]` what one unit uses of it (1 for space,
    the unit cost for the budget); `room` is indexed by row."""
    item, q = _pack_candidates(units, pack, moq)
    # increasing in q, so without a binding limit each item's best candidate is its planned order
    # (a zero shortage cost, e.g. an item marked down to cost, still ranks by units avoided)
    f = np.ones(len(units)) if fill is None else np.asarray(fill, float)  # q delivers f x q on average
    saved = expected_shortage(mu[item], sigma[item], ip[item]) - expected_shortage(
        mu[item], sigma[item], ip[item] + f[item] * q
    )
    value = (np.maximum(b[item], 0) + 1e-6) * saved + 1e-9 * q
    r_idx, use = [], []
    for rows, per_unit in zip(rows_of_item, usage_per_unit):
        r_idx.append(rows[item])
        use.append(q * per_unit[item])
    cols = np.tile(np.arange(len(item)), len(r_idx))
    r, u = np.concatenate(r_idx), np.concatenate(use)
    ok = r >= 0
    A = sp.csr_matrix((u[ok], (r[ok], cols[ok])), shape=(len(room), len(item)))
    chosen, _ = choose_one_per_item(item, value, A, np.maximum(room, 0), len(units), cfg.solver_seconds)
    new = np.where(chosen >= 0, q[np.maximum(chosen, 0)], 0)
    return new.astype(np.int64), new < units


def _allocate(t: pd.DataFrame, requested: np.ndarray, dc_avail: pd.Series) -> np.ndarray:
    """Units shipped per store line when DCs are short (module docstring): greedy marginal
    expected lost-sale cost per case pack, optimal for the separable convex allocation."""
    group = pd.MultiIndex.from_frame(t[["dc_id", "sku_id"]])
    avail = dc_avail.reindex(group).fillna(0).to_numpy(float)
    tot = pd.Series(requested).groupby([t["dc_id"].to_numpy(), t["sku_id"].to_numpy()]).transform("sum").to_numpy()
    short = (tot > avail + 1e-9) & (requested > 0)
    units = np.where(short, 0, requested).astype(np.int64)
    if not short.any():
        return units
    s = np.flatnonzero(short)
    pack = t["case_pack"].to_numpy()[s]
    n = (requested[s] // pack).astype(int)
    line = np.repeat(s, n)
    k = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)  # 0-based pack index within the line
    pk = t["case_pack"].to_numpy()[line]
    mu, sg = t["mu_P"].to_numpy()[line], t["sigma_P"].to_numpy()[line]
    y = t["inventory_position"].to_numpy()[line] + k * pk
    gain = t["shortage_cost"].to_numpy()[line] * (expected_shortage(mu, sg, y) - expected_shortage(mu, sg, y + pk))
    inc = pd.DataFrame(
        {
            "line": line,
            "gain": gain,
            "share": (k + 1) / np.repeat(n, n),
            "pack": pk,
            "g": pd.factorize(pd.MultiIndex.from_arrays([t["dc_id"].to_numpy()[line], t["sku_id"].to_numpy()[line]]))[
                0
            ],
            "avail": avail[line],
        }
    )
    inc = inc.sort_values(["g", "gain", "share"], ascending=[True, False, True], kind="stable")
    inc["cum"] = inc.groupby("g")["pack"].cumsum()
    take = inc[inc["cum"] <= inc["avail"] + 1e-9]
    np.add.at(units, take["line"].to_numpy(), take["pack"].to_numpy())
    return units


def _unmet(
    kind: str, loc, sku, mask: np.ndarray, wanted: np.ndarray, planned: np.ndarray, constraint, explanation
) -> pd.DataFrame:
    """UNMET_COLUMNS rows for the items in `mask` (explanation / constraint: one value or one per item)."""
    return pd.DataFrame(
        {
            "decision_type": kind,
            "location_id": np.asarray(loc)[mask],
            "sku_id": np.asarray(sku)[mask],
            "wanted_units": wanted[mask],
            "planned_units": planned[mask],
            "constraint": constraint,
            "explanation": explanation,
        }
    )


def _store_orders(t: pd.DataFrame, positions: pd.DataFrame, locations: pd.DataFrame, cfg: ReplenishmentPolicy):
    ip, pack, f = t["inventory_position"].to_numpy(), t["case_pack"].to_numpy(), t["fill_rate"].to_numpy(float)
    # an order delivers f x its units on average: the gap to S is ordered at 1 / f
    requested = np.where(
        ip < t["reorder_point"].to_numpy() - 1e-9, round_up_to_packs((t["order_up_to"].to_numpy() - ip) / f, pack), 0
    ).astype(np.int64)
    binding = np.where(
        requested > 0, np.where(np.isclose(ip + f * requested, t["order_up_to"]), "order_up_to", "case_pack"), "none"
    )
    unmet = []
    # store capacity: today's orders fit in the space they find when they land (capacity_room)
    store_ids = np.sort(t["location_id"].unique())
    sales = t[["location_id", "sku_id"]].assign(units=t["sales_until_arrival"])
    room = capacity_room(positions, locations, sales).reindex(store_ids).fillna(np.inf).to_numpy(float)
    row = np.searchsorted(store_ids, t["location_id"].to_numpy())
    limited = np.isfinite(room)
    row = np.where(limited[row], row, -1)
    units = requested.copy()
    if (row >= 0).any():
        units, cut = _limit_choice(
            requested,
            pack,
            t["mu_P"].to_numpy(),
            t["sigma_P"].to_numpy(),
            ip,
            t["shortage_cost"].to_numpy(),
            [row],
            [np.ones(len(t))],
            np.where(limited, room, np.inf),
            None,
            cfg,
            fill=f,
        )
        cut &= requested > 0
        binding = np.where(cut, "capacity", binding)
        if cut.any():
            r = room[row[cut]]
            unmet.append(
                _unmet(
                    "store_replenishment",
                    t["location_id"],
                    t["sku_id"],
                    cut,
                    requested,
                    units,
                    "capacity",
                    [
                        f"store capacity: {max(x, 0):.0f} units of space left when the day's orders arrive "
                        f"(after expected sales), the orders wanted more"
                        for x in r
                    ],
                )
            )
    return requested, units, binding, unmet


# ---- the stage -------------------------------------------------------------------------------------


def _store_replenishments(t, positions, locations, pos, cfg: ReplenishmentPolicy):
    """Each store's (s, S) order within its capacity, then the DC's stock allocated where it
    avoids the most expected lost-sale cost. Returns requested, wanted and allocated units, the
    binding constraints and what was not met."""
    requested, wanted, binding, unmet = _store_orders(t, positions, locations, cfg)
    dc_avail = pos["on_hand"].groupby(level=[0, 1]).sum()
    units = _allocate(t, wanted, dc_avail)
    short = units < wanted
    binding = np.where(short, "dc_stock_short", binding)
    if short.any():
        unmet.append(
            _unmet(
                "store_replenishment",
                t["location_id"],
                t["sku_id"],
                short,
                wanted,
                units,
                "dc_stock_short",
                "the DC holds less than its stores need; its stock went where one more case avoids the "
                "most expected lost-sale cost",
            )
        )
    return requested, wanted, units, binding, unmet


def _store_order_rows(t, units, requested, binding, effective, cfg: ReplenishmentPolicy) -> pd.DataFrame:
    """The store replenishment lines (ORDER_COLUMNS but the rationale) with their expected
    shortage, service and cost at the units allocated."""
    y = t["inventory_position"].to_numpy() + t["fill_rate"].to_numpy() * units
    mu, sg = t["mu_P"].to_numpy(), t["sigma_P"].to_numpy()
    es = expected_shortage(mu, sg, y)
    return pd.DataFrame(
        {
            "decision_type": "store_replenishment",
            "sku_id": t["sku_id"],
            "source_id": t["dc_id"],
            "location_id": t["location_id"],
            "units": units,
            "requested_units": requested,
            "order_date": effective,
            "expected_date": effective + pd.to_timedelta(t["lead_time_days"], unit="D"),
            "lead_time_days": t["lead_time_days"],
            "unit_cost": t["unit_cost"],
            "order_value": units * t["unit_cost"],
            "target_units": t["order_up_to"],
            "reorder_point": t["reorder_point"],
            "inventory_position": t["inventory_position"],
            "mean_demand_protection": mu,
            "sigma_demand_protection": sg,
            "safety_stock": t["safety_stock"],
            "lead_time_std_days": t["lead_time_std_days"],
            "service_level": t["service_level"],
            "item_class": t["item_class"],
            "expected_shortage_units": es,
            "expected_service": cycle_service(mu, sg, y),
            "expected_cost": t["holding_cost_daily"] * t["review_period_days"] * expected_leftover(mu, sg, y)
            + t["shortage_cost"] * es
            + cfg.store_order_cost * (units > 0),
            "binding_constraint": binding,
            "protection_days": t["protection_days"],
        }
    )


def plan_replenishment(
    forecast: pd.DataFrame,
    prices: pd.DataFrame | None,
    positions: pd.DataFrame,
    products: pd.DataFrame,
    locations: pd.DataFrame,
    plan_date: str,
    cfg: ReplenishmentPolicy = ReplenishmentPolicy(),
    lead_time_observations: pd.DataFrame | None = None,
    history: pd.DataFrame | None = None,
    costs: CostPolicy = CostPolicy(),
    promotions_planned: bool = False,
) -> ReplenishmentPlan:
    """Store replenishments (DC -> store) and purchase orders (supplier -> DC) for plan_date + 1.
    `cfg` is the policy file's replenishment section, `costs` its costs (the holding rate);
    `promotions_planned`: the forecast took the promotion plan (landing v1.1), so announced
    promotions are not surprises the measured protection error must cover."""
    effective = pd.Timestamp(plan_date) + pd.Timedelta(days=1)
    prod = products.set_index("sku_id")
    pos = positions.set_index(["location_id", "sku_id"])[["on_hand", "on_order"]]
    t = store_targets(
        forecast,
        prices,
        positions,
        products,
        locations,
        plan_date,
        cfg,
        lead_time_observations,
        history,
        costs,
        promotions_planned,
    )
    lt, lt_support, lt_pmf = estimate_lead_times(lead_time_observations, products, plan_date, cfg, with_pmf=True)

    # ---- stores: (s, S), capacity, then the DC's allocation --------------------------------------
    requested, wanted, units, binding, unmet = _store_replenishments(t, positions, locations, pos, cfg)
    store_rows = _store_order_rows(t, units, requested, binding, effective, cfg)

    # ---- DCs: pooled store demand over the supplier lead time ----------------------------------
    # the DC's position nets what its stores asked for today, shipped or not: a request the DC
    # could not fill is still demand on it (no store is starved by a DC that thinks it is full)
    po_rows, po_unmet = _purchase_orders(
        forecast,
        prices,
        t,
        units,
        wanted,
        pos,
        prod,
        locations,
        lt,
        (lt_support, lt_pmf),
        effective,
        cfg,
        costs,
        history,
        plan_date,
        promotions_planned,
    )
    unmet += po_unmet
    arrival = pd.concat(
        [
            t[["location_id", "sku_id"]].assign(units=t["sales_until_arrival"]),
            po_rows[["location_id", "sku_id"]].assign(units=po_rows["sales_until_arrival"]),
        ],
        ignore_index=True,
    )
    out = pd.concat([store_rows, po_rows], ignore_index=True)
    out = out[out["units"] > 0].copy()
    out["rationale"] = _rationale(out)
    out = out[ORDER_COLUMNS].sort_values(["decision_type", "location_id", "sku_id"], ignore_index=True)
    unmet_df = (
        pd.concat(unmet, ignore_index=True)[UNMET_COLUMNS]
        if unmet
        else pd.DataFrame({c: pd.Series(dtype="object") for c in UNMET_COLUMNS})
    )
    return ReplenishmentPlan(orders=out, targets=t, unmet=unmet_df, lead_times=lt, arrival_sales=arrival)


def cycle_service(mu, sigma, y) -> np.ndarray:
    """P(D <= y): the chance the protection period ends without a stockout."""
    mu, sigma, y = (np.asarray(a, float) for a in (mu, sigma, y))
    pos = sigma > 1e-12
    return np.where(pos, scipy.stats.norm.cdf((y - mu) / np.where(pos, sigma, 1.0)), (y >= mu).astype(float))


def delay_loss_probability(t: pd.DataFrame, delay_days: np.ndarray) -> np.ndarray:
    """P(a store's demand over its protection period plus `delay_days` exceeds its reorder point):
    the chance that a replenishment arriving `delay_days` late costs the store a sale, under the
    store's own normal model (mean grows by the daily mean, variance in proportion to the days)."""
    P = t["protection_days"].to_numpy(float)
    mean = t["mu_P"].to_numpy(float) + delay_days * t["mu_daily"].to_numpy(float)
    sd = t["sigma_P"].to_numpy(float) * np.sqrt((P + delay_days) / np.maximum(P, 1e-9))
    return scipy.stats.norm.sf((t["reorder_point"].to_numpy(float) - mean) / np.maximum(sd, 1e-9))


def _dc_service(
    t: pd.DataFrame,
    didx: pd.MultiIndex,
    delay_days: np.ndarray,
    cost: np.ndarray,
    cfg: ReplenishmentPolicy,
    costs: CostPolicy,
):
    """The DC's shortage cost b, service level and class per (dc_id, sku_id) of `didx`.

    A DC does not lose sales: a unit it is short delays a store's delivery until its next receipt
    (`delay_days`: one review period plus the supplier's lead-time spread), and the store loses
    the sale only if its own stock cannot bridge the delay (`delay_loss_probability`). So the DC's
    shortage cost is the induced one (Axsater, Inventory Control, 2006, ch. 5: the warehouse's
    backorder cost induced by the retailers), b_DC = sum_stores w b_store p_store / sum w with
    w the store's daily demand, and cost_optimal mode sets alpha = b_DC / (b_DC + h_R) as at the
    stores. Class and fixed modes take the best level among the DC's stores, as before."""
    row = didx.get_indexer(pd.MultiIndex.from_frame(t[["dc_id", "sku_id"]]))
    ok = row >= 0
    p = delay_loss_probability(t, np.asarray(delay_days, float)[np.where(ok, row, 0)])
    w = t["mu_daily"].to_numpy(float) + 1e-9
    sc = (
        t.assign(bw=t["shortage_cost"] * w, bpw=t["shortage_cost"] * p * w, w=w)
        .groupby(["dc_id", "sku_id"])
        .agg(
            bw=("bw", "sum"),
            bpw=("bpw", "sum"),
            w=("w", "sum"),
            alpha=("service_level", "max"),
            cls=("item_class", "min"),
        )
    )
    sc = sc.reindex(didx)
    b = (sc["bw"] / sc["w"]).fillna(0).to_numpy(float)
    cls = sc["cls"].fillna("").to_numpy(str)
    if cfg.service_mode != "cost_optimal":
        return b, sc["alpha"].fillna(cfg.service_level).to_numpy(float), cls
    induced = (sc["bpw"] / sc["w"]).fillna(0).to_numpy(float)
    alpha = service_levels(cls, induced, cost * costs.annual_holding_rate / 365 * cfg.review_period_days, cfg)
    return induced, alpha, cls


def _pooled_dc_demand(forecast: pd.DataFrame, prices: pd.DataFrame | None, stores: pd.DataFrame):
    """The forecast of each DC's stores pooled per DC x SKU x horizon (means and variances add,
    at the recommended price's demand multiplier), and the DC x SKU keys in order."""
    fc = forecast[forecast["location_id"].isin(stores.index)].copy()
    fc["var"] = daily_variance(fc)
    if prices is not None and len(prices) and "demand_multiplier" in prices:
        fc = fc.merge(prices[["location_id", "sku_id", "demand_multiplier"]], on=["location_id", "sku_id"], how="left")
        dm = fc["demand_multiplier"].fillna(1.0)
        fc["mean"], fc["var"] = fc["mean"] * dm, fc["var"] * dm**2
    fc["dc_id"] = fc["location_id"].map(stores["supplying_dc_id"])
    # pooled over a DC's stores: means and variances add per day and horizon
    pooled = fc.groupby(["dc_id", "sku_id", "horizon"], as_index=False).agg(mean=("mean", "sum"), var=("var", "sum"))
    keys = pooled[["dc_id", "sku_id"]].drop_duplicates().sort_values(["dc_id", "sku_id"], ignore_index=True)
    return pooled, keys


def _supplier_lead_times(keys: pd.DataFrame, prod: pd.DataFrame, lt: pd.DataFrame, lt_dist):
    """Per DC x SKU: its supplier, the supplier's learned lead-time pmf over `support`, its mean
    and spread, and the supplier's unit fill rate (1 without an estimate)."""
    sup = keys["sku_id"].map(prod["supplier_id"])
    ltab = lt.set_index("supplier_id")
    support, pmf_sup = lt_dist
    srow = ltab.index.get_indexer(sup)
    if (srow < 0).any():  # an item without a supplier in the master: 7 days, as before
        pmf_sup = np.vstack([pmf_sup, _master_pmf(np.array([7.0]), np.array([0.0]), support)])
        srow = np.where(srow < 0, len(pmf_sup) - 1, srow)
    pmf = pmf_sup[srow]
    Lm = pmf @ support
    Ls = np.sqrt(np.maximum(pmf @ support.astype(float) ** 2 - Lm**2, 0))
    f = ltab["fill_rate"].to_numpy(float)[np.minimum(srow, len(ltab) - 1)] if len(ltab) else np.ones(len(keys))
    f = np.where(ltab.index.get_indexer(sup) >= 0, f, 1.0)
    return sup, pmf, Lm, Ls, f


def _dc_limits(keys, sup, requested, binding, pack, moq, cost, mins, mu, sigma, ip, b, f, gone, pos, locations, cfg):
    """DC capacity and the day's purchase budget: where they bind, the orders are chosen again in
    whole packs (>= MOQ) by the expected lost-sale cost they avoid; a supplier's order cut below
    its minimum is then held. Returns the units, the binding constraints and what was not met."""
    unmet = []
    units = requested.copy()
    dc_ids = np.sort(keys["dc_id"].unique())
    dc_sales = keys.rename(columns={"dc_id": "location_id"}).assign(units=gone)
    room_d = capacity_room(pos.reset_index(), locations, dc_sales).reindex(dc_ids).fillna(np.inf).to_numpy(float)
    row = np.searchsorted(dc_ids, keys["dc_id"].to_numpy())
    row = np.where(np.isfinite(room_d)[row], row, -1)
    budget_row = np.full(len(keys), len(dc_ids) if cfg.daily_budget is not None else -1)
    room = np.r_[room_d, [cfg.daily_budget] if cfg.daily_budget is not None else []]
    if (row >= 0).any() or cfg.daily_budget is not None:
        units, cut = _limit_choice(
            requested, pack, mu, sigma, ip, b, [row, budget_row], [np.ones(len(keys)), cost], room, moq, cfg, fill=f
        )
        cut &= requested > 0
        over_cap = np.zeros(len(keys), bool)
        rowsum = np.bincount(row[row >= 0], weights=requested[row >= 0], minlength=len(dc_ids))
        over_cap[row >= 0] = rowsum[row[row >= 0]] > room_d[row[row >= 0]] + 1e-9
        why = np.where(over_cap, "capacity", "budget")
        binding = np.where(cut, why, binding)
        if cut.any():
            unmet.append(
                _unmet(
                    "purchase_order",
                    keys["dc_id"],
                    keys["sku_id"],
                    cut,
                    requested,
                    units,
                    why[cut],
                    np.where(
                        over_cap[cut],
                        "DC capacity: the DC has no room for every order; space went to "
                        "the orders that avoid the most expected lost-sale cost",
                        f"daily purchase budget {cfg.daily_budget}: spent where it avoids the most expected "
                        "lost-sale cost",
                    ),
                )
            )
        # a supplier order cut below its minimum is held
        val = pd.Series(units * cost).groupby([sup.to_numpy(), keys["dc_id"].to_numpy()]).transform("sum").to_numpy()
        below = (units > 0) & (val < mins - 1e-9)
        if below.any():
            unmet.append(
                _unmet(
                    "purchase_order",
                    keys["dc_id"],
                    keys["sku_id"],
                    below,
                    requested,
                    np.zeros_like(units),
                    "supplier_min_order",
                    [
                        f"after the limits the order to {s_} is {v:.2f}, below its minimum {m_:.2f}: held"
                        for s_, v, m_ in zip(sup.to_numpy()[below], val[below], mins[below])
                    ],
                )
            )
            units = np.where(below, 0, units)
            binding = np.where(below, "supplier_min_order", binding)
    return units, binding, unmet


def _dc_requests(keys, prod, pos, didx, t, requested_units, f, s, S):
    """Per DC x SKU: the inventory position (on hand + open orders at the supplier's fill rate -
    what its stores asked for today), case packs and MOQ, and the (s, S) order in whole packs."""
    asked = pd.Series(requested_units).groupby([t["dc_id"].to_numpy(), t["sku_id"].to_numpy()]).sum()
    # position: on hand + what the open orders will deliver at the supplier's fill rate - what the
    # stores asked for today (shipped or not)
    ip = (
        pos["on_hand"].reindex(didx).fillna(0).to_numpy()
        + f * pos["on_order"].reindex(didx).fillna(0).to_numpy()
        - asked.reindex(didx).fillna(0).to_numpy()
    )
    pack = keys["sku_id"].map(prod["case_pack"]).fillna(1).astype(int).clip(lower=1).to_numpy()
    moq = keys["sku_id"].map(prod["min_order_qty"]).fillna(0).to_numpy(float)
    moq_units = round_up_to_packs(moq, pack)
    # a short-shipping supplier delivers f x the order on average: the gap to S is ordered at 1 / f
    raw = np.where(ip < s - 1e-9, round_up_to_packs((S - ip) / f, pack), 0)
    requested = np.where(raw > 0, np.maximum(raw, moq_units), 0).astype(np.int64)
    binding = np.where(requested > 0, np.where(moq_units > raw, "min_order_qty", "case_pack"), "none").astype(object)
    return ip, pack, moq, requested, binding


def _dc_protection(pooled, keys, pmf, support, P, history, stores, plan_date, cfg, promotions_planned):
    """The DC's pooled demand over its protection period `P` (supplier lead time + review): its
    cumulative forecast (widened to the measured error of the pooled history), what ships to the
    stores before a purchase order lands, and the mean daily demand over P."""
    cum = _cumulate(pooled, keys=("dc_id", "sku_id"))
    # shipped before a PO lands
    sales_L = (pmf * cum.at(np.broadcast_to(support[None, :], pmf.shape).astype(float))).sum(1)
    dbar = cum.at(P) / P
    if history is not None and len(history):  # the measured error of the DC's pooled demand
        dc = history["location_id"].map(stores["supplying_dc_id"])
        served = dc.notna().to_numpy()  # the stores' rows, with only the columns measured_spread reads
        h = history.loc[served, [c for c in (*SPREAD_COLUMNS, "sku_id") if c in history]]
        h = h.assign(dc_id=dc.to_numpy()[served])
        mse, neff = measured_spread(h, keys, P, plan_date, cfg, ("dc_id", "sku_id"), promotions_planned)
        cum.var_scale = _widening(mse, neff, cum.at(P, "var"))
    return cum, sales_L, P, dbar


def _purchase_orders(
    forecast,
    prices,
    t,
    shipped_units,
    requested_units,
    pos,
    prod,
    locations,
    lt,
    lt_dist,
    effective,
    cfg,
    costs,
    history=None,
    plan_date=None,
    promotions_planned=False,
):
    R = cfg.review_period_days
    stores = locations[locations["location_type"] == "store"].set_index("location_id")
    pooled, keys = _pooled_dc_demand(forecast, prices, stores)
    sup, pmf, Lm, Ls, f = _supplier_lead_times(keys, prod, lt, lt_dist)
    support = lt_dist[0]  # the days the lead-time pmf is over
    cum, sales_L, P, dbar = _dc_protection(
        pooled, keys, pmf, support, Lm + R, history, stores, plan_date, cfg, promotions_planned
    )
    cost = keys["sku_id"].map(prod["unit_cost"]).astype(float).fillna(0).to_numpy()
    didx = pd.MultiIndex.from_frame(keys)
    b, alpha, cls = _dc_service(t, didx, R + Ls, cost, cfg, costs)
    band = eoq_band(dbar, cfg.po_order_cost, cost, cfg, costs)
    # protection over the supplier's learned lead-time distribution (its late tail included) + R
    mu, sigma, s = mixture_targets(cum, support, pmf, R, alpha)
    ss, S = s - mu, s + band
    ip, pack, moq, requested, binding = _dc_requests(keys, prod, pos, didx, t, requested_units, f, s, S)
    # a discontinued item's supplier no longer delivers: no purchase order (its stores still get
    # what the DC holds), and it neither counts towards nor takes a supplier's minimum order
    live, ended = _orderable(keys["sku_id"], prod, effective)
    wanted = requested.copy()
    requested = np.where(live, requested, 0)
    # supplier minimum order value per supplier x DC: top up, lowest cover first
    mins = sup.map(cfg.supplier_min_order_values).fillna(cfg.supplier_min_order_value).to_numpy(float)
    requested[live], binding[live] = _supplier_minimum(
        keys[live], sup.to_numpy()[live], requested[live], binding[live], (ip / f)[live], (S / f)[live],
        dbar[live], pack[live], cost[live], mins[live],
    )  # fmt: skip

    # space when today's POs land: what ships to stores before, and the open orders' short shipments
    gone = sales_L + (1 - f) * pos["on_order"].reindex(didx).fillna(0).to_numpy()
    units, binding, unmet = _dc_limits(
        keys, sup, requested, binding, pack, moq, cost, mins, mu, sigma, ip, b, f, gone, pos, locations, cfg
    )
    units = np.where(live, units, 0)
    stopped = ~live & (wanted > 0)
    if stopped.any():
        unmet.append(
            _unmet(
                "purchase_order", keys["dc_id"], keys["sku_id"], stopped, wanted, np.zeros_like(wanted),
                "discontinued",
                "discontinued on " + ended[stopped] + ": its supplier no longer delivers, so no purchase order; "
                "the stores are still sent what the DC holds",
            )
        )  # fmt: skip
    y = ip + f * units
    es = expected_shortage(mu, sigma, y)
    rows = pd.DataFrame(
        {
            "decision_type": "purchase_order",
            "sku_id": keys["sku_id"],
            "source_id": sup,
            "location_id": keys["dc_id"],
            "units": units,
            "requested_units": requested,
            "order_date": effective,
            "expected_date": effective + pd.to_timedelta(np.rint(Lm).astype(int), unit="D"),
            "lead_time_days": np.rint(Lm).astype(int),
            "unit_cost": cost,
            "order_value": units * cost,
            "target_units": S,
            "reorder_point": s,
            "inventory_position": ip,
            "mean_demand_protection": mu,
            "sigma_demand_protection": sigma,
            "safety_stock": ss,
            "lead_time_std_days": Ls,
            "service_level": alpha,
            "item_class": cls,
            "expected_shortage_units": es,
            "expected_service": cycle_service(mu, sigma, y),
            "expected_cost": cost * costs.annual_holding_rate / 365 * R * expected_leftover(mu, sigma, y)
            + b * es
            + cfg.po_order_cost * (units > 0),
            "binding_constraint": binding,
            "protection_days": P,
        }
    )
    rows["sales_until_arrival"] = gone
    return rows, unmet


def _orderable(sku_ids: pd.Series, prod: pd.DataFrame, order_date: pd.Timestamp) -> tuple[np.ndarray, np.ndarray]:
    """Per row: whether the item's supplier still delivers on `order_date` (no `discontinue_date`
    in the product master's lifecycle columns, or a later one), and the discontinue date as text
    ("" where there is none)."""
    if "discontinue_date" not in prod:
        return np.ones(len(sku_ids), dtype=bool), np.full(len(sku_ids), "", dtype=object)
    ends = pd.to_datetime(sku_ids.map(prod["discontinue_date"].replace("", None)), errors="coerce")
    live = ~(ends <= order_date).to_numpy()
    return live, ends.dt.strftime("%Y-%m-%d").fillna("").to_numpy(object)


def _supplier_minimum(keys, sup, requested, binding, ip, S, dbar, pack, cost, mins):
    """Top up each supplier x DC order below its minimum value: items in order of cover
    (position / daily demand), each up to its order-up-to level, then the least-covered item
    takes the rest in whole packs. Orders of zero stay zero (nothing is due)."""
    val = requested * cost
    grp = pd.factorize(pd.MultiIndex.from_arrays([sup, keys["dc_id"].to_numpy()]))[0]
    tot = np.bincount(grp, weights=val)
    short = (tot > 0) & (tot < mins[np.unique(grp, return_index=True)[1]] - 1e-9)
    if not short.any():
        return requested, binding
    gap = np.maximum(mins - tot[grp], 0)
    room = np.maximum(round_up_to_packs(S - ip, pack) - requested, 0) * (short[grp])
    cover = (ip + requested) / np.maximum(dbar, 1e-9)
    order = np.lexsort((cover, grp))
    val_room = (room * cost)[order]
    before = np.cumsum(val_room) - val_room
    g_o = grp[order]
    start = np.r_[0, np.cumsum(np.bincount(g_o, minlength=grp.max() + 1))[:-1]]
    before = before - np.concatenate([[0], np.cumsum(val_room)])[start[g_o]]
    need = np.maximum(gap[order] - before, 0)
    add_units = np.minimum(room[order], round_up_to_packs(need / np.maximum(cost[order], 1e-9), pack[order]))
    add = np.zeros(len(requested), np.int64)
    add[order] = add_units
    new = requested + add
    # what topping up to S could not reach: the least-covered item of the group takes the rest
    val_new = np.bincount(grp, weights=new * cost)
    rest = np.maximum(mins[np.unique(grp, return_index=True)[1]] - val_new, 0) * short
    first = order[np.r_[True, g_o[1:] != g_o[:-1]]]
    f = first[rest[grp[first]] > 0]
    new[f] += round_up_to_packs(rest[grp[f]] / np.maximum(cost[f], 1e-9), pack[f])
    changed = new > requested
    binding = np.where(changed | (short[grp] & (requested > 0)), "supplier_min_order", binding)
    return new.astype(np.int64), binding


def _rationale(o: pd.DataFrame) -> pd.Series:
    dc = o["decision_type"] == "purchase_order"
    lead = np.where(
        dc,
        " over the supplier lead time (pooled across the DC's stores, incl. lead-time spread "
        + o["lead_time_std_days"].round(1).astype(str)
        + " d)",
        " over lane lead time + review",
    )
    return (
        np.where(dc, "DC ", "")
        + "position "
        + o["inventory_position"].round(0).astype(int).astype(str)
        + " below reorder point "
        + o["reorder_point"].round(1).astype(str)
        + " (mean demand "
        + o["mean_demand_protection"].round(1).astype(str)
        + lead
        + " + safety "
        + o["safety_stock"].round(1).astype(str)
        + " for "
        + (o["service_level"] * 100).round(1).astype(str)
        + "% service, class "
        + o["item_class"].astype(str)
        + "): order "
        + o["units"].astype(str)
        + " up to "
        + o["target_units"].round(1).astype(str)
        + "; binding: "
        + o["binding_constraint"].astype(str)
        + "; expected shortage "
        + o["expected_shortage_units"].round(2).astype(str)
        + " units"
    )


def order_violations(
    orders: pd.DataFrame,
    products: pd.DataFrame,
    locations: pd.DataFrame,
    positions: pd.DataFrame,
    cfg: ReplenishmentPolicy = ReplenishmentPolicy(),
    arrival_sales: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Every order rule re-derived from the output, independently of the planner: one row per
    violated rule (rule, decision_type, location_id, sku_id, detail). Rules: units positive
    integers; whole case packs; purchase orders at least the MOQ; a DC ships no more than it holds;
    capacity (the orders fit in `capacity_room`: capacity_units minus the stock expected when they arrive);
    the daily purchase budget; the supplier minimum order value."""
    o = orders
    prod = products.set_index("sku_id")
    pack = o["sku_id"].map(prod["case_pack"]).fillna(1).astype(float).to_numpy()
    moq = o["sku_id"].map(prod["min_order_qty"]).fillna(0).astype(float).to_numpy()
    u = o["units"].to_numpy(float)
    po = (o["decision_type"] == "purchase_order").to_numpy()
    bad = []

    def add(mask, rule, detail):
        mask = np.asarray(mask, bool)
        if mask.any():
            d = o.loc[mask, ["decision_type", "location_id", "sku_id"]].copy()
            d.insert(0, "rule", rule)
            d["detail"] = np.asarray(detail, object)[mask] if np.ndim(detail) else detail
            bad.append(d)

    add((u <= 0) | (u != np.round(u)), "non_negative", "units must be a positive integer: " + o["units"].astype(str))
    add(
        np.abs(u / pack - np.round(u / pack)) > 1e-9,
        "case_pack",
        "units " + o["units"].astype(str) + " not a multiple of " + pd.Series(pack).astype(int).astype(str).to_numpy(),
    )
    add(
        po & (u < moq - 1e-9),
        "min_order_qty",
        "units " + o["units"].astype(str) + " below MOQ " + pd.Series(moq).astype(int).astype(str).to_numpy(),
    )
    pos = positions.set_index(["location_id", "sku_id"])
    st = o[~po]
    if len(st):
        ship = st.groupby(["source_id", "sku_id"])["units"].sum()
        have = pos["on_hand"].reindex(ship.index).fillna(0)
        over = ship[ship > have + 1e-9]
        m = pd.MultiIndex.from_frame(st[["source_id", "sku_id"]]).isin(over.index)
        full = np.zeros(len(o), bool)
        full[np.flatnonzero(~po)[m]] = True
        add(full, "dc_stock", "the DC ships more than it holds")
    dest = o.groupby("location_id")["units"].sum()
    room = capacity_room(positions, locations, arrival_sales).reindex(dest.index).fillna(np.inf)
    over = dest.index[dest > np.maximum(room, 0) + 1e-9]
    add(
        o["location_id"].isin(over).to_numpy(),
        "capacity",
        "orders exceed the location's capacity_units left when they arrive (capacity_room)",
    )
    if cfg.daily_budget is not None:
        add(
            po & (o.loc[po, "order_value"].sum() > cfg.daily_budget + 1e-6 if po.any() else False),
            "budget",
            f"purchase orders worth more than the daily budget {cfg.daily_budget}",
        )
    if po.any():
        val = o[po].groupby(["source_id", "location_id"])["order_value"].transform("sum")
        mins = o.loc[po, "source_id"].map(cfg.supplier_min_order_values).fillna(cfg.supplier_min_order_value)
        m = np.zeros(len(o), bool)
        m[np.flatnonzero(po)] = (val < mins - 1e-6).to_numpy()
        add(m, "supplier_min_order", "purchase order to the supplier below its minimum value")
    cols = ["rule", "decision_type", "location_id", "sku_id", "detail"]
    return pd.concat(bad, ignore_index=True)[cols] if bad else pd.DataFrame(columns=cols)
