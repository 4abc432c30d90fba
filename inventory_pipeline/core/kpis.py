"""Retail KPIs, one definition used everywhere (DESIGN.md, "KPIs")."""

from __future__ import annotations

import numpy as np
import pandas as pd


def stockout_rate(on_hand: pd.Series) -> float:
    """Share of active SKU-location-days that end with zero on hand."""
    oh = pd.Series(on_hand).dropna()
    return float((oh == 0).mean()) if len(oh) else float("nan")


def fill_rate(units_sold: float, units_demanded: float) -> float:
    """Units sold / units demanded."""
    return float(units_sold / units_demanded) if units_demanded > 0 else float("nan")


def carrying_cost(on_hand: pd.Series, unit_cost: pd.Series, annual_holding_rate: float) -> float:
    """Sum over days of on_hand x unit_cost x annual holding rate / 365."""
    return float((np.asarray(on_hand, float) * np.asarray(unit_cost, float)).sum() * annual_holding_rate / 365.0)


def history_kpis(daily: pd.DataFrame, annual_holding_rate: float) -> dict:
    """KPIs of observed history. `daily`: store x SKU x day rows with units_sold, unit_price,
    on_hand, unit_cost. Demand is not observed: fill rate needs the simulation."""
    d = daily.dropna(subset=["on_hand"])
    days = d["date"].nunique()
    inv_value = d["on_hand"] * d["unit_cost"]
    revenue = float((daily["units_sold"] * daily["unit_price"]).sum())
    cogs = float((daily["units_sold"] * daily["unit_cost"]).sum())
    cc = carrying_cost(d["on_hand"], d["unit_cost"], annual_holding_rate)
    avg_inv = float(inv_value.sum() / days) if days else float("nan")
    return {
        "days": int(days),
        "stockout_rate": stockout_rate(d["on_hand"]),
        "units_sold": float(daily["units_sold"].sum()),
        "revenue": revenue,
        "gross_margin": revenue - cogs,
        "avg_inventory_value": avg_inv,
        "carrying_cost": cc,
        "carrying_cost_pct_revenue": cc / revenue if revenue else float("nan"),
        "inventory_turns": (cogs * 365.0 / days) / avg_inv if days and avg_inv else float("nan"),
    }


# ---- KPIs of a simulated (or replayed) run: demand is known -------------------------------------

# order stability: orders that amplify demand noise, or trickle in every day, cost handling
ORDER_STABILITY_KPIS = (
    "bullwhip_store",
    "bullwhip_store_median",
    "bullwhip_dc",
    "bullwhip_dc_median",
    "order_days_share",
    "consecutive_order_share",
    "consecutive_po_share",
    "order_lines_per_item_week_store",
    "order_lines_per_item_week_dc",
)
TWIN_KPIS = (
    "stockout_rate",
    "fill_rate",
    "lost_sales_units",
    "demand_units",
    "sales_units",
    "revenue",
    "gross_margin",
    "gross_margin_pct",
    "avg_inventory_value",
    "avg_store_inventory_value",
    "carrying_cost",
    "carrying_cost_pct_inventory_value",
    "carrying_cost_pct_revenue",
    "inventory_turns",
    "orders",
    "purchase_orders",
    "store_replenishments",
    "transfers",
    "price_changes",
    "price_decreases",
    "overstock_units",
    "overstock_value",
    *ORDER_STABILITY_KPIS,
)
# lower is better for these (the report colours a change by it)
LOWER_IS_BETTER = {
    "stockout_rate",
    "lost_sales_units",
    "avg_inventory_value",
    "avg_store_inventory_value",
    "carrying_cost",
    "carrying_cost_pct_inventory_value",
    "carrying_cost_pct_revenue",
    "orders",
    "purchase_orders",
    "store_replenishments",
    "transfers",
    "price_changes",
    "overstock_units",
    "overstock_value",
    *ORDER_STABILITY_KPIS,
}


def overstock(
    on_hand: np.ndarray, mean_daily_demand: np.ndarray, unit_cost: np.ndarray, weeks: float = 8.0
) -> tuple[np.ndarray, np.ndarray]:
    """Units above `weeks` weeks of supply, max(0, on_hand - 7 x weeks x mean daily demand), and
    their value at `unit_cost` (broadcast over the last axis: one cost per SKU). Element-wise, so
    any shape (the twin passes store x SKU arrays for one day)."""
    units = np.maximum(np.asarray(on_hand, float) - 7.0 * weeks * np.asarray(mean_daily_demand, float), 0.0)
    return units, units * np.asarray(unit_cost, float)


def _dc_avg(dc: dict | None, key: str, days: int) -> float:
    """Per-day average of a DC accumulator (nan when the run has none)."""
    if not dc or key not in dc or not days:
        return float("nan")
    return float(np.sum(dc[key])) / days


def _ratio(a: float, b: float) -> float:
    return float(a / b) if b else float("nan")


def forecast_error_kpis(acc: dict, horizon: int | str, source: str = "fc", prefix: str = "") -> dict:
    """WAPE, MASE, MAPE and bias of a forecast `horizon` days ahead (or `"sum14"`: the total of
    the next 14 days) against realised demand.

    `acc` holds per-series (store x SKU) sums over the scored days, keyed `{source}_h{horizon}_*`:
    `abs_err` (|f - a|), `err` (f - a), `actual` (a), `n` (days scored), `ape_sum` and `ape_n`
    (|f - a| / a over days with a > 0), and the MASE scale `naive_abs_err` / `naive_n` (mean
    |a_t - a_{t-7}| of the realised demand, the seasonal-naive error).

    WAPE = sum|f - a| / sum a; bias = sum(f - a) / sum a; MAPE = mean over non-zero days;
    MASE (daily horizons only) = mean over series of (their MAE / their seasonal-naive MAE),
    series with a zero scale left out (Hyndman & Koehler 2006).
    """
    p = f"{source}_h{horizon}_"
    if p + "abs_err" not in acc:
        return {}
    abs_err, actual = np.asarray(acc[p + "abs_err"], float), np.asarray(acc[p + "actual"], float)
    n = np.asarray(acc[p + "n"], float)
    tag = f"sum{horizon[3:]}" if isinstance(horizon, str) else f"h{horizon}"
    out = {
        f"{prefix}wape_{tag}": _ratio(abs_err.sum(), actual.sum()),
        f"{prefix}mape_{tag}": _ratio(np.sum(acc[p + "ape_sum"]), np.sum(acc[p + "ape_n"])),
        f"{prefix}bias_{tag}": _ratio(np.sum(acc[p + "err"]), actual.sum()),
    }
    if not isinstance(horizon, str) and "naive_abs_err" in acc:
        scale = np.divide(
            acc["naive_abs_err"], acc["naive_n"], out=np.zeros_like(abs_err), where=np.asarray(acc["naive_n"]) > 0
        )
        ok = (scale > 0) & (n > 0)
        out[f"{prefix}mase_{tag}"] = float(np.mean(abs_err[ok] / n[ok] / scale[ok])) if ok.any() else float("nan")
    return out


def item_variance(total: np.ndarray, sum_sq: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Per-item population variance of a daily series from its sum, sum of squares and number of
    days: sum_sq / n - (total / n)^2 (0 where n = 0; clipped at 0 against rounding)."""
    total, sum_sq, n = (np.asarray(x, float) for x in (total, sum_sq, n))
    safe = np.maximum(n, 1.0)
    return np.where(n > 0, np.maximum(sum_sq / safe - (total / safe) ** 2, 0.0), 0.0)


def bullwhip(out_sum, out_sq, in_sum, in_sq, n) -> tuple[float, float]:
    """Bullwhip ratio of an echelon: variance of the daily orders it places (`out`) over the
    variance of the daily demand it faces (`in`), per item from the accumulated moments over its
    `n` days. Returns (aggregate, median): the aggregate is the ratio of the variances summed over
    items, sum var(out) / sum var(in) (a volume-weighted mean of the item ratios: fast movers
    weigh more, and items whose demand never varied still count in the numerator); the median is
    over items whose demand varied. nan where no item's demand varied. 1 = orders exactly as
    volatile as demand; > 1 the echelon amplifies noise; < 1 it damps it (0: constant orders)."""
    v_out, v_in = item_variance(out_sum, out_sq, n), item_variance(in_sum, in_sq, n)
    agg = _ratio(float(v_out.sum()), float(v_in.sum()))
    ok = v_in > 0
    return agg, (float(np.median(v_out[ok] / v_in[ok])) if ok.any() else float("nan"))


def order_stability_kpis(store: dict, dc: dict | None) -> dict:
    """Order-stability (damping) KPIs from a simulation's accumulators (per item arrays, summed
    over the measured days; missing accumulators give nan):

    * `bullwhip_store` (`_median`): `bullwhip` of the units shipped to each store x SKU
      (`ship_units`, `ship_sq`: DC -> store requests as shipped) against its demand (`demand`,
      `demand_sq`), over the days the item was launched (`launched_days`);
    * `bullwhip_dc` (`_median`): the same per DC x SKU, purchase-order units (`po_units`, `po_sq`)
      against the store requests arriving at the DC (`request_units`, `request_sq`);
    * `order_days_share`: store x SKU days carried with an order line / days carried
      (`active_order_days` / `active_days`);
    * `consecutive_order_share`: store order days whose item also ordered the day before / order
      days (`consecutive_order_days` / `order_lines`): daily nibbling or oscillation shows here;
      `consecutive_po_share` the same for purchase orders per DC x SKU;
    * `order_lines_per_item_week_store` / `_dc`: 7 x order lines / item-days carried.
    """

    def get(d, k):
        return None if d is None or k not in d else np.asarray(d[k], float)

    def total(d, k):
        v = get(d, k)
        return float("nan") if v is None else float(v.sum())

    out = {}
    for name, d, keys in (
        ("store", store, ("ship_units", "ship_sq", "demand", "demand_sq", "launched_days")),
        ("dc", dc, ("po_units", "po_sq", "request_units", "request_sq", "launched_days")),
    ):
        arrays = [get(d, k) for k in keys]
        agg, med = bullwhip(*arrays) if all(a is not None for a in arrays) else (float("nan"), float("nan"))
        out[f"bullwhip_{name}"], out[f"bullwhip_{name}_median"] = agg, med
    out["order_days_share"] = _ratio(total(store, "active_order_days"), total(store, "active_days"))
    out["consecutive_order_share"] = _ratio(total(store, "consecutive_order_days"), total(store, "order_lines"))
    out["consecutive_po_share"] = _ratio(total(dc, "consecutive_order_days"), total(dc, "order_lines"))
    out["order_lines_per_item_week_store"] = _ratio(7.0 * total(store, "order_lines"), total(store, "active_days"))
    out["order_lines_per_item_week_dc"] = _ratio(7.0 * total(dc, "order_lines"), total(dc, "active_days"))
    return out


def twin_kpis(
    store: dict, dc: dict | None, days: int, annual_holding_rate: float, horizons: tuple[int, ...] = (1, 7, 14)
) -> dict:
    """The DESIGN.md KPIs from a simulation's accumulators (sums over `days` measured days).

    `store`: arrays per store x SKU (any shape; summed) -- demand, sales, lost, revenue, cogs,
    stockout_days, active_days, inventory_value_days, order_lines, transfer_lines,
    price_changes, price_decreases, overstock_units_days, overstock_value_days (store units and
    value above 8 weeks of supply, summed over days: see `overstock`) and the forecast-error sums
    of `forecast_error_kpis`. Accumulators a run did not keep give nan. `dc`: arrays per DC x
    SKU -- inventory_value_days, order_lines (None: a store-only view, e.g. per store).
    Inventory value and carrying cost cover stores and DCs; turns = annualised COGS / average
    inventory value; overstock_units / overstock_value are averages per day (stores only);
    network_overstock_units / _value the same for each DC's network (DC plus its stores, `dc`
    accumulators overstock_units_days / overstock_value_days). Order stability (bullwhip per
    echelon, order-day shares, order lines per item-week): `order_stability_kpis`.
    """
    s = {k: float(np.sum(v)) for k, v in store.items() if not k.startswith(("fc_", "snaive_", "naive", "oracle_"))}
    dc_inv = float(np.sum(dc["inventory_value_days"])) if dc else 0.0
    po = float(np.sum(dc["order_lines"])) if dc else 0.0
    inv_value_days = s["inventory_value_days"] + dc_inv
    avg_inv = inv_value_days / days if days else float("nan")
    cc = inv_value_days * annual_holding_rate / 365.0
    revenue, cogs = s["revenue"], s["cogs"]
    out = {
        "stockout_rate": _ratio(s["stockout_days"], s["active_days"]),
        "fill_rate": _ratio(s["sales"], s["demand"]),
        "lost_sales_units": s["lost"],
        "demand_units": s["demand"],
        "sales_units": s["sales"],
        "revenue": revenue,
        "gross_margin": revenue - cogs,
        "gross_margin_pct": _ratio(revenue - cogs, revenue),
        "avg_inventory_value": avg_inv,
        "avg_store_inventory_value": s["inventory_value_days"] / days if days else float("nan"),
        "carrying_cost": cc,
        "carrying_cost_pct_inventory_value": _ratio(cc, avg_inv),
        "carrying_cost_pct_revenue": _ratio(cc, revenue),
        "inventory_turns": _ratio(cogs * 365.0 / days, avg_inv) if days else float("nan"),
        "orders": s["order_lines"] + po,
        "purchase_orders": po,
        "store_replenishments": s["order_lines"],
        "transfers": s["transfer_lines"],
        "price_changes": s["price_changes"],
        "price_decreases": s.get("price_decreases", float("nan")),
        "overstock_units": s.get("overstock_units_days", float("nan")) / days if days else float("nan"),
        "overstock_value": s.get("overstock_value_days", float("nan")) / days if days else float("nan"),
        "network_overstock_units": _dc_avg(dc, "overstock_units_days", days),
        "network_overstock_value": _dc_avg(dc, "overstock_value_days", days),
        **order_stability_kpis(store, dc),
    }
    for h in (*horizons, "sum14"):
        out.update(forecast_error_kpis(store, h))
        out.update(forecast_error_kpis(store, h, source="snaive", prefix="snaive_"))
        out.update(forecast_error_kpis(store, h, source="oracle", prefix="oracle_"))
    return out


def relative_change(base: dict, new: dict) -> dict:
    """(new - base) / |base| per KPI present in both (nan where the base is 0 or missing)."""
    out = {}
    for k, b in base.items():
        if k in new and isinstance(b, (int, float)) and isinstance(new[k], (int, float)):
            out[k] = float((new[k] - b) / abs(b)) if b and np.isfinite(b) and np.isfinite(new[k]) else float("nan")
    return out


def abc_classes(value: np.ndarray, a: float = 0.8, b: float = 0.95) -> np.ndarray:
    """ABC class per item from its value (e.g. revenue): A = the items making the first `a` of
    the total, B up to `b`, C the rest. Ties broken by position; zero-value items are C."""
    v = np.asarray(value, float)
    order = np.argsort(-v, kind="stable")
    total = v.sum()
    cls = np.full(len(v), "C", dtype=object)
    if total <= 0:
        return cls
    before = (np.cumsum(v[order]) - v[order]) / total  # share of the total before this item
    cls[order] = np.where(before < a, "A", np.where(before < b, "B", "C"))
    cls[v <= 0] = "C"
    return cls
