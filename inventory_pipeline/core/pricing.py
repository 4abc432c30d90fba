"""Price recommendations (core): elasticity-aware, margin-maximising, inside guardrails.

1. **Elasticity per SKU** (`estimate_elasticities`), pooled over its stores: regression of
   log((units + 0.5) / (level + 0.5)) on log(price / regular price) and the promotion flag, where
   `level` is the series' own centred 29-day mean of non-promoted, non-stockout days (controls
   trend and seasonality), computed in a second pass from price-deflated demand so it does not
   absorb slow price cycles; stockout days are left out (censored sales would fake elasticity).
   Shrunk toward the category mean by empirical Bayes (between-SKU variance by the method of
   moments), clipped to `elasticity_bounds`; a SKU with too little price variation outside
   promotions takes its category's value and says so. Confidence = the shrinkage weight
   tau^2 / (tau^2 + se^2) of its own estimate.
2. **Prices** (`optimise_prices`, cvxpy, a concave QP solved by Clarabel): demand over the
   horizon linearised at the current price, q(p) = q0 (1 + e (p - p0) / p0) = a - b p, and the
   expected margin (p - c)(a - b p) = -b p^2 + (a + b c) p - a c maximised (written with
   `square`, so it is DCP) subject to the guardrails of the policy file:
   p >= c (1 + min_margin); p0 (1 - max_change) <= p <= p0 (1 + max_change); p = p0 when the
   price changed less than `min_days_between_changes` ago; the average relative change of each
   category within +-`category_avg_change_cap`; inventory awareness: a - b p <= what the
   network can supply within lead time (no stimulating demand it cannot serve); markdown: items
   with more than `overstock_weeks` of supply must drop by at least `markdown_pct` (inside the
   other guardrails). The solution is rounded to the allowed price endings (the nearest ending
   inside the item's bounds; none -> hold).
3. **Output** per store x SKU: current and recommended price, expected units and margin at both,
   elasticity and confidence, the guardrail that bound, a rationale, and the demand multiplier
   (p / p0)^e that replenishment plans against.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

PRICING_HISTORY_DAYS = 182  # days of fct_daily_demand the stage reads (elasticities, current prices)
PRICE_COLUMNS = [
    "location_id", "sku_id", "current_price", "recommended_price", "unit_cost", "elasticity",
    "elasticity_confidence", "elasticity_source", "demand_multiplier", "expected_units_current",
    "expected_units_recommended", "expected_margin_current", "expected_margin_recommended", "weeks_of_supply",
    "binding_guardrail", "rationale",
]


class PricingInfeasible(ValueError):
    """The guardrails leave no allowed price for some items (e.g. min margin above max price)."""


@dataclass(frozen=True)
class PricingConfig:
    # off until issue #5 wires it into the policy file and the twin has measured it: the stage
    # then holds prices exactly as before and says so in every rationale
    enabled: bool = False
    horizon_days: int = 14
    min_margin: float = 0.05  # price >= cost x (1 + min_margin)
    max_change: float = 0.10  # per step, relative to the current price
    min_days_between_changes: int = 14
    category_avg_change_cap: float = 0.03  # |mean relative change| per category
    price_endings: tuple[float, ...] = (0.09, 0.29, 0.49, 0.69, 0.99)  # allowed cents (ladder)
    overstock_weeks: float = 8.0
    markdown_pct: float = 0.05
    elasticity_bounds: tuple[float, float] = (-5.0, -0.3)
    min_price_variation: float = 0.02  # std of log price outside promotions below this: category fallback


def pricing_config(policy) -> PricingConfig:
    p = getattr(policy, "pricing", None)
    if p is None:
        return PricingConfig()
    return PricingConfig(
        enabled=p.enabled, horizon_days=p.horizon_days, min_margin=p.min_margin, max_change=p.max_change_pct / 100,
        min_days_between_changes=p.min_days_between_changes, category_avg_change_cap=p.category_avg_change_cap_pct / 100,
        price_endings=tuple(p.price_endings), overstock_weeks=p.overstock_weeks, markdown_pct=p.markdown_pct / 100,
        elasticity_bounds=(p.elasticity_min, p.elasticity_max), min_price_variation=p.min_price_variation)


# ---- 1. elasticities -----------------------------------------------------------------------------

def current_prices(history: pd.DataFrame, products: pd.DataFrame, plan_date: str) -> pd.DataFrame:
    """The shelf price on the plan date: the last observed non-promotional price of each store x
    SKU, else the product's base price; and the date that price was first seen at its level."""
    h = history[(history["date"] <= pd.Timestamp(plan_date)) & (history["on_promo"] == 0)]
    h = h[h["price_observed"]] if "price_observed" in h else h
    h = h.sort_values("date")
    last = h.groupby(["location_id", "sku_id"], as_index=False, observed=True).last()[["location_id", "sku_id", "unit_price"]]
    # when did the current regular price start? (for the minimum days between changes)
    m = h.merge(last.rename(columns={"unit_price": "_cur"}), on=["location_id", "sku_id"])
    differs = (m["unit_price"] - m["_cur"]).abs() > 0.005
    last_other = m[differs].groupby(["location_id", "sku_id"], observed=True)["date"].max().rename("last_other_price_date")
    return last.merge(last_other.reset_index(), on=["location_id", "sku_id"], how="left")


def estimate_elasticities(history: pd.DataFrame, products: pd.DataFrame, cfg: PricingConfig = PricingConfig()) -> pd.DataFrame:
    """Own-price elasticity per SKU (module docstring, step 1). `history`: fct_daily_demand rows
    (location_id, sku_id, date, units_sold, unit_price, price_observed, on_promo, is_stockout).
    Returns sku_id, category, elasticity, se, confidence, source ('own' | 'category'), n."""
    h = history.copy()
    h["date"] = pd.to_datetime(h["date"])
    h = h.sort_values(["location_id", "sku_id", "date"], ignore_index=True)
    prod = products.set_index("sku_id")
    h["base"] = h["sku_id"].map(prod["base_price"]).astype(float)
    price = np.where(h["price_observed"].astype(bool), h["unit_price"].astype(float), np.nan)
    h["price"] = price
    # regular price: the series' highest non-promotional observed price over the surrounding 8 weeks
    reg = h["price"].where(h["on_promo"] == 0)
    h["regular"] = reg.groupby([h["location_id"], h["sku_id"]], observed=True).transform(
        lambda s: s.rolling(57, center=True, min_periods=1).max()).fillna(h["base"])
    ok = h["price_observed"].astype(bool) & ~h.get("is_stockout", pd.Series(False, index=h.index)).astype(bool)
    clean = ok & (h["on_promo"] == 0)
    y = h["units_sold"].astype(float)
    xall = np.log(h["price"] / h["regular"]).fillna(0.0)
    deflate = pd.Series(0.0, index=h.index)
    for _pass in range(2):  # pass 2: the level from price-deflated demand, so it does not absorb price effects
        yd = y * np.exp(-deflate * xall)
        num = (yd.where(clean, 0.0)).groupby([h["location_id"], h["sku_id"]], observed=True).transform(
            lambda s: s.rolling(29, center=True, min_periods=1).sum())
        den = clean.astype(float).groupby([h["location_id"], h["sku_id"]], observed=True).transform(
            lambda s: s.rolling(29, center=True, min_periods=1).sum())
        level = num / den.where(den > 0)
        d = h[ok & level.notna()].copy()
        d["yy"] = np.log((d["units_sold"] + 0.5) / (level[d.index] + 0.5))
        d["x"] = np.log(d["price"] / d["regular"])
        d["pr"] = d["on_promo"].astype(float)
        # per-SKU OLS of yy on [1, x, pr] by closed form from sums (vectorised over SKUs)
        agg = d.assign(xx=d["x"] ** 2, xp=d["x"] * d["pr"], pp=d["pr"] ** 2, xy=d["x"] * d["yy"], py=d["pr"] * d["yy"],
                       yy2=d["yy"] ** 2).groupby("sku_id", observed=True).agg(
            n=("x", "size"), sx=("x", "sum"), sp=("pr", "sum"), sy=("yy", "sum"), sxx=("xx", "sum"), sxp=("xp", "sum"),
            spp=("pp", "sum"), sxy=("xy", "sum"), spy=("py", "sum"), syy=("yy2", "sum"),
            sd_reg=("x", lambda s: float(np.std(s[d.loc[s.index, "pr"] == 0])) if (d.loc[s.index, "pr"] == 0).any() else 0.0))
        rows = []
        for sku, a in agg.iterrows():  # one 3x3 solve per SKU: thousands at M5, milliseconds each
            X = np.array([[a.n, a.sx, a.sp], [a.sx, a.sxx, a.sxp], [a.sp, a.sxp, a.spp]])
            rhs = np.array([a.sy, a.sxy, a.spy])
            keep = [0, 1] + ([2] if 0 < a.sp < a.n else [])  # the promo term only when promos vary
            X, rhs = X[np.ix_(keep, keep)], rhs[keep]
            try:
                beta = np.linalg.solve(X, rhs)
                resid_ss = a.syy - beta @ rhs
                sigma2 = max(resid_ss / max(a.n - len(keep), 1), 1e-9)
                se = float(np.sqrt(sigma2 * np.linalg.inv(X)[1, 1]))
                est = float(beta[1])
            except np.linalg.LinAlgError:
                est, se = np.nan, np.inf
            rows.append((sku, est, se, int(a.n), float(a.sd_reg)))
        raw_by_sku = {sku: est for sku, est, *_ in rows}
        deflate = h["sku_id"].map(lambda k: np.clip(raw_by_sku.get(k, 0.0), *cfg.elasticity_bounds)
                                  if np.isfinite(raw_by_sku.get(k, np.nan)) else 0.0).astype(float)
    e = pd.DataFrame(rows, columns=["sku_id", "raw", "se", "n", "sd_regular_price"])
    e = products[["sku_id", "category"]].merge(e, on="sku_id", how="left")
    lo, hi = cfg.elasticity_bounds
    usable = e["raw"].notna() & np.isfinite(e["se"]) & (e["sd_regular_price"].fillna(0) >= cfg.min_price_variation) \
        & (e["n"].fillna(0) >= 30)
    # category prior: precision-weighted mean of usable SKUs; between-SKU variance by moments
    e["w"] = np.where(usable, 1.0 / np.maximum(e["se"], 1e-6) ** 2, 0.0)
    u = e[usable].assign(rc=lambda x: x["raw"].clip(lo, hi))
    u = u.assign(wr=u["w"] * u["rc"], se2=u["se"] ** 2)
    g = u.groupby("category").agg(w=("w", "sum"), wr=("wr", "sum"), var=("rc", lambda v: float(np.var(v))),
                                  se2=("se2", "mean"))
    cat = pd.DataFrame({"mu": g["wr"] / g["w"].where(g["w"] > 0), "tau2": (g["var"] - g["se2"]).clip(lower=0.05)})
    overall = float(np.average(e.loc[usable, "raw"].clip(lo, hi), weights=e.loc[usable, "w"])) if usable.any() else -1.5
    e["mu"] = e["category"].map(cat["mu"]).fillna(overall)
    e["tau2"] = e["category"].map(cat["tau2"]).fillna(0.25)
    k = np.where(usable, e["tau2"] / (e["tau2"] + e["se"].fillna(np.inf) ** 2), 0.0)
    e["elasticity"] = np.clip(np.where(usable, k * e["raw"].fillna(0) + (1 - k) * e["mu"], e["mu"]), lo, hi)
    e["confidence"] = np.round(k, 4)
    e["source"] = np.where(usable, "own (shrunk to category)", "category (too little price variation)")
    return e[["sku_id", "category", "elasticity", "se", "confidence", "source", "n"]]


# ---- 2. prices -----------------------------------------------------------------------------------

def _round_to_endings(p: np.ndarray, lo: np.ndarray, hi: np.ndarray, endings: tuple[float, ...]) -> np.ndarray:
    """Nearest price with an allowed cents ending inside [lo, hi]; nan where none exists."""
    if not endings:
        return np.clip(np.round(p, 2), lo, hi)
    base = np.floor(p)
    cands = np.stack([base[:, None] + np.asarray(endings)[None, :] + k for k in (-1, 0, 1)], axis=2).reshape(len(p), -1)
    inside = (cands >= lo[:, None] - 1e-9) & (cands <= hi[:, None] + 1e-9)
    dist = np.where(inside, np.abs(cands - p[:, None]), np.inf)
    j = np.argmin(dist, axis=1)
    out = cands[np.arange(len(p)), j]
    return np.where(np.isfinite(dist[np.arange(len(p)), j]), np.round(out, 2), np.nan)


def optimise_prices(items: pd.DataFrame, cfg: PricingConfig = PricingConfig()) -> pd.DataFrame:
    """Solve the pricing QP for `items` (one row per store x SKU): location_id, sku_id, category,
    current_price p0, unit_cost c, elasticity e (< 0), expected_units q0 over the horizon, supply
    (units the network can deliver within lead time, inf = unbounded), weeks_of_supply, and
    recently_changed (bool). Returns items with recommended_price and binding_guardrail."""
    import cvxpy as cp

    it = items.reset_index(drop=True).copy()
    n = len(it)
    p0, c = it["current_price"].to_numpy(float), it["unit_cost"].to_numpy(float)
    e, q0 = it["elasticity"].to_numpy(float), np.maximum(it["expected_units"].to_numpy(float), 1e-6)
    lo = np.maximum(c * (1 + cfg.min_margin), p0 * (1 - cfg.max_change))
    hi = p0 * (1 + cfg.max_change)
    over = it["weeks_of_supply"].to_numpy(float) > cfg.overstock_weeks
    hi = np.where(over, np.minimum(hi, p0 * (1 - cfg.markdown_pct)), hi)
    frozen = it["recently_changed"].to_numpy(bool)
    lo, hi = np.where(frozen, p0, lo), np.where(frozen, p0, hi)
    b = -e * q0 / p0  # q = a - b p, b > 0
    a = q0 + b * p0
    supply = it["supply"].to_numpy(float)
    # inventory awareness: a - b p <= supply  <=>  p >= (a - supply) / b (only where supply is finite)
    inv_lo = np.where(np.isfinite(supply), (a - supply) / np.maximum(b, 1e-12), -np.inf)
    lo_all = np.maximum(lo, np.minimum(inv_lo, hi))  # never above the upper bound: then the upper bound holds
    bad = lo > hi + 1e-9
    if bad.any():
        ex = it.loc[bad, ["location_id", "sku_id", "current_price", "unit_cost"]].head(5).to_dict("records")
        raise PricingInfeasible(
            f"{int(bad.sum())} item(s) have no allowed price: min margin {cfg.min_margin:.0%} over cost is above the "
            f"{'markdown' if over[bad].any() else 'maximum'} price allowed by max change {cfg.max_change:.0%}"
            f"{' and markdown ' + format(cfg.markdown_pct, '.0%') if over[bad].any() else ''}; e.g. {ex}")
    p = cp.Variable(n)
    # maximise sum(-b p^2 + (a + b c) p): concave, DCP with square()
    objective = cp.Maximize(-cp.sum(cp.multiply(b, cp.square(p))) + (a + b * c) @ p)
    cons = [p >= lo_all, p <= hi]
    cats = it["category"].astype(str).to_numpy()
    names = sorted(set(cats))
    if cfg.category_avg_change_cap < 1:
        import scipy.sparse as sp

        idx = np.array([names.index(x) for x in cats])
        counts = np.bincount(idx, minlength=len(names))
        A = sp.csr_matrix((1.0 / (p0 * counts[idx]), (idx, np.arange(n))), shape=(len(names), n))
        cons += [A @ p - 1 <= cfg.category_avg_change_cap, A @ p - 1 >= -cfg.category_avg_change_cap]
    prob = cp.Problem(objective, cons)
    prob.solve(solver=cp.CLARABEL)
    if prob.status not in ("optimal", "optimal_inaccurate"):
        raise PricingInfeasible(f"pricing problem {prob.status}: the category average-change cap "
                                f"({cfg.category_avg_change_cap:.0%}) conflicts with the per-item bounds (markdowns)")
    raw = np.clip(np.asarray(p.value, float), lo_all, hi)
    rounded = _round_to_endings(raw, lo_all, hi, cfg.price_endings)
    # rounding must not break the category cap: where it would, hold those items
    rec = np.where(np.isnan(rounded), p0, rounded)
    rec = np.where(frozen, p0, rec)
    rel = pd.Series(rec / p0 - 1).groupby(cats).transform("mean").to_numpy()
    breach = np.abs(rel) > cfg.category_avg_change_cap + 1e-9
    if breach.any():  # pull the rounded prices back toward current, category by category
        rec = np.where(breach & (np.abs(rec - p0) > 0), p0, rec)
    it["recommended_price"] = np.round(rec, 2)
    tol = 0.011
    binding = np.select(
        [frozen, np.isnan(rounded), over & (np.abs(rec - hi) < tol), np.abs(rec - c * (1 + cfg.min_margin)) < tol,
         np.isfinite(inv_lo) & (np.abs(rec - inv_lo) < tol), np.abs(rec - p0 * (1 + cfg.max_change)) < tol,
         np.abs(rec - p0 * (1 - cfg.max_change)) < tol, breach],
        ["min_days_between_changes", "price_endings", "markdown", "min_margin", "inventory", "max_increase",
         "max_decrease", "category_avg_change"], "none")
    it["binding_guardrail"] = binding
    return it


def recommend_prices(forecast: pd.DataFrame, history: pd.DataFrame, products: pd.DataFrame, plan_date: str,
                     cfg: PricingConfig = PricingConfig(), positions: pd.DataFrame | None = None) -> pd.DataFrame:
    """Recommended price per store x SKU in the forecast (the stage). `positions`: on_hand and
    on_order per location x SKU: weeks of supply (markdowns) and what the store can sell over
    the horizon (inventory awareness)."""
    h = cfg.horizon_days
    f = forecast[forecast["horizon"] <= h]
    pairs = f.groupby(["location_id", "sku_id"], as_index=False)["mean"].sum().rename(columns={"mean": "expected_units"})
    prices = current_prices(history, products, plan_date)
    prod = products if "category" in products else products.assign(category="_all")
    out = pairs.merge(prices, on=["location_id", "sku_id"], how="left").merge(
        prod[["sku_id", "unit_cost", "base_price", "category"]], on="sku_id", how="left")
    out["current_price"] = out["unit_price"].fillna(out["base_price"])
    days_since = (pd.Timestamp(plan_date) - pd.to_datetime(out["last_other_price_date"])).dt.days
    out["recently_changed"] = days_since.notna() & (days_since < cfg.min_days_between_changes) & out["last_other_price_date"].notna()
    daily = out["expected_units"] / h
    if positions is not None:
        pos = positions.set_index(["location_id", "sku_id"])
        idx = pd.MultiIndex.from_frame(out[["location_id", "sku_id"]])
        on_hand = pos["on_hand"].reindex(idx).fillna(0).to_numpy(float)
        on_order = pos["on_order"].reindex(idx).fillna(0).to_numpy(float)
        out["weeks_of_supply"] = np.where(daily > 0, (on_hand + on_order) / np.maximum(daily, 1e-9) / 7, np.inf)
        # what the store can sell over the horizon: its stock and open orders (the DC refills
        # within the horizon are uncertain, so demand beyond this is not stimulated)
        out["supply"] = on_hand + on_order
    else:
        out["weeks_of_supply"], out["supply"] = np.nan, np.inf
    if cfg.enabled:
        el = estimate_elasticities(history, products, cfg)
        out = out.merge(el[["sku_id", "elasticity", "confidence", "source"]], on="sku_id", how="left")
        out["elasticity"] = out["elasticity"].fillna(-1.5)
        out = optimise_prices(out, cfg)
    else:
        out["elasticity"], out["confidence"], out["source"] = np.nan, 0.0, "pricing disabled"
        out["recommended_price"], out["binding_guardrail"] = out["current_price"], "hold_price"
    ratio = out["recommended_price"] / out["current_price"]
    e = out["elasticity"].fillna(0.0)
    out["demand_multiplier"] = np.where(ratio == 1, 1.0, ratio ** e)
    out["expected_units_current"] = out["expected_units"]
    out["expected_units_recommended"] = out["expected_units"] * out["demand_multiplier"]
    out["expected_margin_current"] = (out["current_price"] - out["unit_cost"]) * out["expected_units_current"]
    out["expected_margin_recommended"] = (out["recommended_price"] - out["unit_cost"]) * out["expected_units_recommended"]
    out["elasticity_confidence"] = out["confidence"]
    out["elasticity_source"] = out["source"]
    chg = (ratio - 1) * 100
    out["rationale"] = np.where(
        ratio.round(4) == 1,
        np.where(out["binding_guardrail"] == "hold_price",
                 "price held: the pricing optimisation is not enabled yet (issue #5)",
                 "price held (" + out["binding_guardrail"].astype(str) + "); elasticity " + out["elasticity"].round(2).astype(str)),
        "price " + out["current_price"].round(2).astype(str) + " -> " + out["recommended_price"].round(2).astype(str)
        + " (" + chg.round(1).astype(str) + "%): elasticity " + out["elasticity"].round(2).astype(str)
        + " (" + out["source"].astype(str) + ", confidence " + out["confidence"].round(2).astype(str) + "), expected "
        + out["expected_units_current"].round(1).astype(str) + " -> " + out["expected_units_recommended"].round(1).astype(str)
        + " units and margin " + out["expected_margin_current"].round(0).astype(str) + " -> "
        + out["expected_margin_recommended"].round(0).astype(str) + " over " + str(h) + " days; bound: "
        + out["binding_guardrail"].astype(str))
    return out[PRICE_COLUMNS + ["category"]].sort_values(["location_id", "sku_id"], ignore_index=True)


def guardrail_violations(recs: pd.DataFrame, cfg: PricingConfig, history: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every recommendation outside a guardrail, one row per violation (empty = all inside)."""
    r = recs
    changed = (r["recommended_price"] - r["current_price"]).abs() > 0.005
    rel = r["recommended_price"] / r["current_price"] - 1
    checks = {
        "min_margin": changed & (r["recommended_price"] < r["unit_cost"] * (1 + cfg.min_margin) - 0.005),
        "max_change": changed & (rel.abs() > cfg.max_change + 1e-6),
        "price_endings": changed & ~np.isclose(((r["recommended_price"] * 100).round() % 100 / 100).to_numpy()[:, None],
                                               np.asarray(cfg.price_endings)[None, :], atol=0.001).any(axis=1)
        if cfg.price_endings else pd.Series(False, index=r.index),
    }
    if "category" in r:
        cat = rel.groupby(r["category"]).transform("mean")
        checks["category_avg_change"] = changed & (cat.abs() > cfg.category_avg_change_cap + 1e-6)
    out = [r.loc[m, ["location_id", "sku_id", "current_price", "recommended_price"]].assign(guardrail=k) for k, m in checks.items()]
    return pd.concat(out, ignore_index=True)
