"""Price recommendations (core). First version: hold every current price.

The output is the interface later versions keep (issue #5 adds elasticity estimation and a
cvxpy margin optimisation inside guardrails): one row per store x SKU with the current and
recommended price, the demand multiplier the change implies (replenishment plans against
forecast x multiplier), expected units and margin at both prices, the guardrail that bound and
a rationale.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

PRICING_HISTORY_DAYS = 90  # days of fct_daily_demand the stage reads (current prices, later elasticities)
PRICE_COLUMNS = [
    "location_id", "sku_id", "current_price", "recommended_price", "unit_cost", "elasticity",
    "elasticity_confidence", "demand_multiplier", "expected_units_current", "expected_units_recommended",
    "expected_margin_current", "expected_margin_recommended", "binding_guardrail", "rationale",
]


def current_prices(history: pd.DataFrame, products: pd.DataFrame, plan_date: str) -> pd.DataFrame:
    """The shelf price on the plan date: the last observed non-promotional price of each store x SKU,
    else the product's base price."""
    h = history[(history["date"] <= pd.Timestamp(plan_date)) & (history["on_promo"] == 0)]
    h = h[h["price_observed"]] if "price_observed" in h else h
    last = h.sort_values("date").groupby(["location_id", "sku_id"], as_index=False).last()[
        ["location_id", "sku_id", "unit_price"]]
    return last


def recommend_prices(
    forecast: pd.DataFrame, history: pd.DataFrame, products: pd.DataFrame, plan_date: str, horizon: int = 14
) -> pd.DataFrame:
    """Hold the current price of every forecast store x SKU (no elasticity model yet)."""
    pairs = forecast[forecast["horizon"] <= horizon].groupby(["location_id", "sku_id"], as_index=False)["mean"].sum()
    pairs = pairs.rename(columns={"mean": "expected_units_current"})
    prices = current_prices(history, products, plan_date)
    out = pairs.merge(prices, on=["location_id", "sku_id"], how="left").merge(
        products[["sku_id", "unit_cost", "base_price"]], on="sku_id", how="left")
    out["current_price"] = out["unit_price"].fillna(out["base_price"])
    out["recommended_price"] = out["current_price"]
    out["elasticity"] = np.nan
    out["elasticity_confidence"] = 0.0
    out["demand_multiplier"] = 1.0
    out["expected_units_recommended"] = out["expected_units_current"]
    out["expected_margin_current"] = (out["current_price"] - out["unit_cost"]) * out["expected_units_current"]
    out["expected_margin_recommended"] = out["expected_margin_current"]
    out["binding_guardrail"] = "hold_price"
    out["rationale"] = "price held: no elasticity model enabled yet (first version keeps current prices)"
    return out[PRICE_COLUMNS].sort_values(["location_id", "sku_id"], ignore_index=True)
