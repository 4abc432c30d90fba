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
    on_hand, unit_cost. Demand is not observed: fill rate needs the simulation (issue #3)."""
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
