"""Core stage functions on small hand-checkable cases."""

import json

import numpy as np
import pandas as pd
import pytest

from inventory_pipeline.config import DEFAULT_POLICY_PATH
from inventory_pipeline.core.decisions import build_decision_log
from inventory_pipeline.core.forecasting import wape
from inventory_pipeline.core.outbox import render_outbox, write_local
from inventory_pipeline.core.policy import PolicyError, PricingPolicy, load_policy
from inventory_pipeline.core.pricing import recommend_prices
from inventory_pipeline.core.rebalancing import TRANSFER_COLUMNS


def test_wape():
    assert wape([10, 0, 10], [8, 1, 12]) == pytest.approx(5 / 20)
    assert np.isnan(wape([0, 0], [1, 1]))


def _one_store_case(on_hand_store=0, on_hand_dc=100, mean=10.0, p95=10.0):
    fc = pd.DataFrame(
        {
            "location_id": "S1",
            "sku_id": "A",
            "horizon": np.arange(1, 31),
            "mean": mean,
            "p95": p95,
            "date": pd.date_range("2025-05-01", periods=30),
        }
    )
    prices = pd.DataFrame({"location_id": ["S1"], "sku_id": ["A"], "demand_multiplier": [1.0]})
    positions = pd.DataFrame(
        {"location_id": ["S1", "DC1"], "sku_id": ["A", "A"], "on_hand": [on_hand_store, on_hand_dc], "on_order": [0, 0]}
    )
    products = pd.DataFrame(
        {
            "sku_id": ["A"],
            "supplier_id": ["SUP1"],
            "unit_cost": [2.0],
            "case_pack": [6],
            "min_order_qty": [60],
            "supplier_lead_time_days": [5.0],
            "supplier_lead_time_std_days": [0.0],
        }
    )
    locations = pd.DataFrame(
        {
            "location_id": ["S1", "DC1"],
            "location_type": ["store", "dc"],
            "supplying_dc_id": ["DC1", None],
            "replenishment_lead_time_days": [2.0, None],
        }
    )
    return fc, prices, positions, products, locations


def test_current_price_is_the_last_regular_price_and_disabled_pricing_holds_it():
    fc = _one_store_case()[0]
    hist = pd.DataFrame(
        {
            "location_id": "S1",
            "sku_id": "A",
            "date": pd.to_datetime(["2025-04-28", "2025-04-29"]),
            "unit_price": [2.5, 2.0],
            "price_observed": True,
            "on_promo": [0, 1],
        }
    )
    products = pd.DataFrame({"sku_id": ["A"], "unit_cost": [1.5], "base_price": [2.9]})
    r = recommend_prices(fc, hist, products, "2025-04-30", PricingPolicy(enabled=False)).iloc[0]
    assert r["current_price"] == 2.5 and r["recommended_price"] == 2.5  # the promo price is not the shelf price
    assert r["expected_units_current"] == pytest.approx(140) and r["demand_multiplier"] == 1.0


def _log(planner=None, value=100.0):
    orders = pd.DataFrame(
        {
            "decision_type": ["purchase_order", "store_replenishment"],
            "sku_id": ["A", "A"],
            "source_id": ["SUP1", "DC1"],
            "location_id": ["DC1", "S1"],
            "units": [60, 6],
            "order_date": pd.Timestamp("2025-05-01"),
            "expected_date": pd.Timestamp("2025-05-06"),
            "order_value": [value * 100, value],
            "service_level": 0.95,
            "binding_constraint": "case_pack",
            "rationale": "why",
        }
    )
    empty_t = pd.DataFrame(columns=TRANSFER_COLUMNS)
    prices = pd.DataFrame({"location_id": ["S1"], "sku_id": ["A"], "current_price": [2.0], "recommended_price": [2.0]})
    return build_decision_log(orders, empty_t, prices, "2025-04-30", load_policy(DEFAULT_POLICY_PATH), "m/1", planner)


def test_decision_ids_are_deterministic_and_approval_follows_limits():
    a, b = _log(), _log(value=1.0)
    assert a["decision_id"].tolist() == b["decision_id"].tolist()  # ids do not depend on quantities
    assert a["decision_id"].str.match(r"^(PO|RP)-20250430-[0-9a-f]{12}$").all()
    st_ = a.set_index("decision_type")["status"]
    assert st_["purchase_order"] == "pending_review" and st_["store_replenishment"] == "auto_approved"
    assert a["policy_version"].str.startswith("2026.12.0+").all()


def test_planner_override_and_reject():
    ids = _log().set_index("decision_type")["decision_id"]
    planner = pd.DataFrame(
        {
            "decision_id": [ids["purchase_order"], ids["store_replenishment"]],
            "action": ["override", "reject"],
            "override_units_or_price": [120.0, None],
            "reason": ["promo next week", "shelf full"],
            "planner": ["ana", "ben"],
        }
    )
    log = _log(planner).set_index("decision_type")
    assert log.loc["purchase_order", "status"] == "overridden" and log.loc["purchase_order", "units"] == 120
    assert log.loc["store_replenishment", "status"] == "rejected"


def test_outbox_is_byte_identical_and_written_atomically(tmp_path):
    log = _log(value=1.0)
    files = render_outbox(log, "2025-04-30")
    assert list(files)[-1] == "manifest.json"
    folder, changed = write_local(files, tmp_path, "2025-04-30")
    first = {p.name: p.read_bytes() for p in folder.iterdir()}
    folder, changed_again = write_local(render_outbox(_log(value=1.0), "2025-04-30"), tmp_path, "2025-04-30")
    assert changed and not changed_again
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["2025-04-30"]  # no temp folders left
    m = json.loads(first["manifest.json"])
    assert m["files"]["purchase_orders.csv"]["rows"] == 1 and m["files"]["transfers.csv"]["rows"] == 1
    po = pd.read_csv(folder / "purchase_orders.csv")
    # outbox contract v1's columns, stated here as the ERP reads them
    contract = ["decision_id", "sku_id", "supplier_id", "ship_to_location_id", "units", "order_date", "expected_date"]
    assert po.columns.tolist() == contract


def test_pending_and_rejected_decisions_never_reach_the_outbox():
    log = _log()  # the purchase order is above the auto-approval limit
    files = render_outbox(log, "2025-04-30")
    assert json.loads(files["manifest.json"])["files"]["purchase_orders.csv"]["rows"] == 0


def test_policy_validation_errors_are_clear(tmp_path):
    p = tmp_path / "policy.yaml"
    p.write_text("version: x\nreplenishment:\n  service_level: 1.5\n")
    with pytest.raises(PolicyError, match=r"replenishment.service_level"):
        load_policy(p)
    p.write_text("version: x\nunknown_section: 1\n")
    with pytest.raises(PolicyError, match="unknown_section"):
        load_policy(p)
