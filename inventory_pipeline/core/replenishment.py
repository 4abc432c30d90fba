"""Replenishment orders (core): supplier -> DC -> store order-up-to from the forecast distribution.

First version (issue #6 adds cost-optimal service levels, MILP order sizing, capacity, budget,
optimised allocation and damping):

Store s, SKU i, periodic review R days, DC->store lead time L_s:
    protection period P = L_s + R
    mu_P    = sum_{h=1..P} mean_h x m          (m: the pricing stage's demand multiplier)
    sigma_P = sqrt(sum_{h=1..P} sigma_h^2) x m,  sigma_h = (p95_h - mean_h) / z_0.95
    target  = mu_P + z(SL) x sigma_P            (order-up-to level)
    order   = target - (on hand + on order), rounded up to case packs, when positive.
DC d, SKU i, supplier lead time L (mean) and spread s_L:
    mu_P and sigma^2_P summed over the DC's stores (risk pooling: variances add, not sigmas),
    plus the lead-time term (mu_P / P)^2 x s_L^2;
    inventory position = on hand + on order - what ships to stores today;
    order rounded up to case packs and at least the MOQ.
A DC that cannot ship every store request allocates its stock in proportion to the requests,
in whole case packs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

ORDER_COLUMNS = [
    "decision_type", "sku_id", "source_id", "location_id", "units", "requested_units", "order_date",
    "expected_date", "lead_time_days", "unit_cost", "order_value", "target_units", "inventory_position",
    "mean_demand_protection", "safety_stock", "service_level", "binding_constraint", "rationale",
]
Z95 = stats.norm.ppf(0.95)


def _round_up(qty: np.ndarray, pack: np.ndarray) -> np.ndarray:
    return (np.ceil(np.maximum(qty, 0) / pack - 1e-9) * pack).astype(np.int64)


def plan_replenishment(
    forecast: pd.DataFrame,
    prices: pd.DataFrame,
    positions: pd.DataFrame,
    products: pd.DataFrame,
    locations: pd.DataFrame,
    plan_date: str,
    service_level: float = 0.95,
    review_period_days: int = 1,
) -> pd.DataFrame:
    """Store replenishments (DC -> store) and purchase orders (supplier -> DC) for plan_date + 1."""
    z = stats.norm.ppf(service_level)
    effective = pd.Timestamp(plan_date) + pd.Timedelta(days=1)
    prod = products.set_index("sku_id")
    stores = locations[locations["location_type"] == "store"].set_index("location_id")
    pos = positions.set_index(["location_id", "sku_id"])[["on_hand", "on_order"]]

    # ---- stores --------------------------------------------------------------------------
    fc = forecast.merge(prices[["location_id", "sku_id", "demand_multiplier"]], on=["location_id", "sku_id"], how="left")
    fc["m"] = fc["demand_multiplier"].fillna(1.0)
    fc = fc[fc["location_id"].isin(stores.index)]
    lt = stores["replenishment_lead_time_days"].fillna(1).astype(int)
    fc["P"] = fc["location_id"].map(lt) + review_period_days
    f = fc[fc["horizon"] <= fc["P"]].copy()
    f["mu"] = f["mean"] * f["m"]
    f["var"] = (np.maximum(f["p95"] - f["mean"], 0) / Z95 * f["m"]) ** 2
    st = f.groupby(["location_id", "sku_id"], as_index=False).agg(mu=("mu", "sum"), var=("var", "sum"), P=("P", "first"))
    st["safety_stock"] = z * np.sqrt(st["var"])
    st["target"] = st["mu"] + st["safety_stock"]
    idx = pd.MultiIndex.from_frame(st[["location_id", "sku_id"]])
    st["on_hand"] = pos["on_hand"].reindex(idx).fillna(0).to_numpy()
    st["on_order"] = pos["on_order"].reindex(idx).fillna(0).to_numpy()
    st["ip"] = st["on_hand"] + st["on_order"]
    pack = prod["case_pack"].reindex(st["sku_id"]).to_numpy()
    st["requested"] = np.where(st["target"] > st["ip"], _round_up(st["target"] - st["ip"], pack), 0)
    st["dc_id"] = st["location_id"].map(stores["supplying_dc_id"])

    # ---- DC allocation: proportional to requests, whole case packs -----------------------
    req = st.groupby(["dc_id", "sku_id"])["requested"].transform("sum")
    dc_idx = pd.MultiIndex.from_frame(st[["dc_id", "sku_id"]])
    dc_avail = pos["on_hand"].reindex(dc_idx).fillna(0).to_numpy()
    ratio = np.where(req > 0, np.minimum(1.0, dc_avail / np.maximum(req, 1)), 0.0)
    st["units"] = np.where(ratio >= 1.0, st["requested"], np.floor(st["requested"] * ratio / pack) * pack).astype(np.int64)
    st["binding"] = np.where(st["units"] < st["requested"], "dc_stock_short", np.where(st["units"] > 0, "case_pack", "none"))

    cost = prod["unit_cost"].reindex(st["sku_id"]).to_numpy()
    store_rows = pd.DataFrame({
        "decision_type": "store_replenishment",
        "sku_id": st["sku_id"], "source_id": st["dc_id"], "location_id": st["location_id"],
        "units": st["units"], "requested_units": st["requested"],
        "order_date": effective, "expected_date": effective + pd.to_timedelta(st["P"] - review_period_days, unit="D"),
        "lead_time_days": st["P"] - review_period_days, "unit_cost": cost, "order_value": st["units"] * cost,
        "target_units": st["target"], "inventory_position": st["ip"], "mean_demand_protection": st["mu"],
        "safety_stock": st["safety_stock"], "service_level": service_level, "binding_constraint": st["binding"],
    })
    store_rows["rationale"] = (
        "order-up-to " + store_rows["target_units"].round(1).astype(str) + " (mean demand over "
        + (st["P"]).astype(str) + " days " + store_rows["mean_demand_protection"].round(1).astype(str)
        + " + safety " + store_rows["safety_stock"].round(1).astype(str) + " at " + f"{service_level:.0%}"
        + " service); position " + store_rows["inventory_position"].astype(int).astype(str)
    )

    # ---- DCs: pooled store demand over the supplier lead time ----------------------------
    fc["dc_id"] = fc["location_id"].map(stores["supplying_dc_id"])
    fc["L"] = fc["sku_id"].map(prod["supplier_lead_time_days"]).fillna(7).round().astype(int)
    fc["P"] = fc["L"] + review_period_days
    g = fc[fc["horizon"] <= fc["P"]].copy()
    g["mu"] = g["mean"] * g["m"]
    g["var"] = (np.maximum(g["p95"] - g["mean"], 0) / Z95 * g["m"]) ** 2
    dc = g.groupby(["dc_id", "sku_id"], as_index=False).agg(mu=("mu", "sum"), var=("var", "sum"), P=("P", "first"), L=("L", "first"))
    lt_std = dc["sku_id"].map(prod["supplier_lead_time_std_days"]).fillna(0).to_numpy()
    dc["var"] = dc["var"] + (dc["mu"] / dc["P"]) ** 2 * lt_std**2
    dc["safety_stock"] = z * np.sqrt(dc["var"])
    dc["target"] = dc["mu"] + dc["safety_stock"]
    didx = pd.MultiIndex.from_frame(dc[["dc_id", "sku_id"]])
    shipped = st.groupby(["dc_id", "sku_id"])["units"].sum().reindex(didx).fillna(0).to_numpy()
    dc["ip"] = pos["on_hand"].reindex(didx).fillna(0).to_numpy() + pos["on_order"].reindex(didx).fillna(0).to_numpy() - shipped
    dpack = prod["case_pack"].reindex(dc["sku_id"]).to_numpy()
    moq = prod["min_order_qty"].reindex(dc["sku_id"]).to_numpy()
    raw = np.where(dc["target"] > dc["ip"], _round_up(dc["target"] - dc["ip"], dpack), 0)
    moq_packs = _round_up(moq, dpack)
    dc["units"] = np.where(raw > 0, np.maximum(raw, moq_packs), 0)
    dc["binding"] = np.where((raw > 0) & (moq_packs > raw), "min_order_qty", np.where(raw > 0, "case_pack", "none"))
    dcost = prod["unit_cost"].reindex(dc["sku_id"]).to_numpy()
    po_rows = pd.DataFrame({
        "decision_type": "purchase_order",
        "sku_id": dc["sku_id"], "source_id": dc["sku_id"].map(prod["supplier_id"]), "location_id": dc["dc_id"],
        "units": dc["units"], "requested_units": raw,
        "order_date": effective, "expected_date": effective + pd.to_timedelta(dc["L"], unit="D"),
        "lead_time_days": dc["L"], "unit_cost": dcost, "order_value": dc["units"] * dcost,
        "target_units": dc["target"], "inventory_position": dc["ip"], "mean_demand_protection": dc["mu"],
        "safety_stock": dc["safety_stock"], "service_level": service_level, "binding_constraint": dc["binding"],
    })
    po_rows["rationale"] = (
        "DC order-up-to " + po_rows["target_units"].round(1).astype(str) + " (pooled store demand over "
        + dc["P"].astype(str) + " days " + po_rows["mean_demand_protection"].round(1).astype(str)
        + " + safety " + po_rows["safety_stock"].round(1).astype(str) + " incl. lead-time spread); position "
        + po_rows["inventory_position"].round(0).astype(int).astype(str)
    )
    out = pd.concat([store_rows, po_rows], ignore_index=True)
    out = out[out["units"] > 0]
    return out[ORDER_COLUMNS].sort_values(["decision_type", "location_id", "sku_id"], ignore_index=True)
