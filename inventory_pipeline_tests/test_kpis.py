"""KPI functions on hand-computed cases (DESIGN.md definitions)."""

import math

import numpy as np
import pytest

from inventory_pipeline.core.kpis import (
    LOWER_IS_BETTER,
    TWIN_KPIS,
    abc_classes,
    bullwhip,
    forecast_error_kpis,
    item_variance,
    order_stability_kpis,
    relative_change,
    twin_kpis,
)
from inventory_pipeline.simulation.evaluation import frontier_dominance


def _store(**over):
    base = dict(
        demand=[[10, 0], [5, 5]],
        sales=[[8, 0], [5, 4]],
        lost=[[2, 0], [0, 1]],
        revenue=[[80, 0], [50, 40]],
        cogs=[[40, 0], [25, 20]],
        stockout_days=[[1, 0], [0, 1]],
        active_days=[[10, 10], [10, 10]],
        inventory_value_days=[[100, 50], [30, 20]],
        order_lines=[[2, 0], [1, 1]],
        transfer_lines=[[0, 1], [0, 0]],
        price_changes=[[0, 0], [1, 0]],
    )
    base.update(over)
    return {k: np.asarray(v, float) for k, v in base.items()}


def test_twin_kpis_hand_computed():
    dc = {"inventory_value_days": np.array([[200.0, 0.0]]), "order_lines": np.array([[3.0, 1.0]])}
    k = twin_kpis(_store(), dc, days=10, annual_holding_rate=0.365)
    assert k["stockout_rate"] == pytest.approx(2 / 40)
    assert k["fill_rate"] == pytest.approx(17 / 20)
    assert k["lost_sales_units"] == 3
    assert k["revenue"] == 170 and k["gross_margin"] == 85 and k["gross_margin_pct"] == pytest.approx(0.5)
    # inventory value-days: stores 200 + DC 200 = 400 over 10 days -> average 40
    assert k["avg_inventory_value"] == pytest.approx(40) and k["avg_store_inventory_value"] == pytest.approx(20)
    # carrying cost = 400 value-days x 0.365 / 365 = 0.4; 1% of average inventory; share of revenue
    assert k["carrying_cost"] == pytest.approx(0.4)
    assert k["carrying_cost_pct_inventory_value"] == pytest.approx(0.01)
    assert k["carrying_cost_pct_revenue"] == pytest.approx(0.4 / 170)
    # turns: COGS 85 over 10 days -> 3102.5 a year / 40 average inventory
    assert k["inventory_turns"] == pytest.approx(85 * 36.5 / 40)
    assert (k["orders"], k["purchase_orders"], k["store_replenishments"]) == (8, 4, 4)
    assert k["transfers"] == 1 and k["price_changes"] == 1


def test_store_only_view_has_no_dc_inventory():
    k = twin_kpis(_store(), None, days=10, annual_holding_rate=0.25)
    assert k["avg_inventory_value"] == pytest.approx(20) and k["purchase_orders"] == 0


def test_order_stability_hand_computed():
    # two store x SKU items over 4 days:
    #   item 1: demand (1, 3, 1, 3) -> var 1; shipped (0, 4, 0, 4) -> var 4 (orders every other day)
    #   item 2: demand (2, 2, 2, 2) -> var 0; shipped (2, 2, 2, 2) -> var 0 (every day, constant)
    store = _store(
        demand=[8, 8],
        sales=[8, 8],
        lost=[0, 0],
        revenue=[0, 0],
        cogs=[0, 0],
        stockout_days=[0, 0],
        active_days=[4, 4],
        inventory_value_days=[0, 0],
        order_lines=[2, 4],
        transfer_lines=[0, 0],
        price_changes=[0, 0],
        ship_units=[8, 8],
        ship_sq=[32, 16],
        demand_sq=[20, 16],
        launched_days=[4, 4],
        active_order_days=[2, 4],
        consecutive_order_days=[0, 3],
    )
    # one DC x SKU over 4 days: requests (4, 0, 4, 0) -> var 4; purchase orders (0, 0, 6, 0) -> var 6.75
    dc = {
        k: np.array(v, float)
        for k, v in dict(
            inventory_value_days=[0],
            order_lines=[1],
            po_units=[6],
            po_sq=[36],
            request_units=[8],
            request_sq=[32],
            launched_days=[4],
            active_days=[4],
            consecutive_order_days=[0],
        ).items()
    }
    k = order_stability_kpis(store, dc)
    assert k["bullwhip_store"] == pytest.approx((4 + 0) / (1 + 0))  # summed variances
    assert k["bullwhip_store_median"] == pytest.approx(4.0)  # item 2's demand never varied: not in the median
    assert k["bullwhip_dc"] == pytest.approx(6.75 / 4) and k["bullwhip_dc_median"] == pytest.approx(6.75 / 4)
    assert k["order_days_share"] == pytest.approx(6 / 8)
    assert k["consecutive_order_share"] == pytest.approx(3 / 6)  # item 2 ordered the day before on 3 of its 4 days
    assert k["consecutive_po_share"] == 0.0
    assert k["order_lines_per_item_week_store"] == pytest.approx(7 * 6 / 8)
    assert k["order_lines_per_item_week_dc"] == pytest.approx(7 * 1 / 4)
    assert item_variance(np.array([6.0, 0.0]), np.array([36.0, 0.0]), np.array([4.0, 0.0])).tolist() == [6.75, 0.0]
    assert math.isnan(bullwhip([1.0], [1.0], [2.0], [4.0], [1.0])[0])  # one day: no variance anywhere
    # the store-only view and runs without the accumulators give nan, not an error
    only = twin_kpis(store, None, days=4, annual_holding_rate=0.25)
    assert only["bullwhip_store"] == pytest.approx(4.0) and math.isnan(only["bullwhip_dc"])
    assert math.isnan(only["consecutive_po_share"]) and math.isnan(only["order_lines_per_item_week_dc"])
    old = twin_kpis(_store(), None, days=10, annual_holding_rate=0.25)
    assert math.isnan(old["bullwhip_store"]) and math.isnan(old["order_days_share"])
    assert {
        "bullwhip_store",
        "bullwhip_dc",
        "order_days_share",
        "consecutive_order_share",
        "order_lines_per_item_week_store",
    } <= set(TWIN_KPIS) & LOWER_IS_BETTER


def test_forecast_errors_hand_computed():
    # two series, forecast f vs actual a over 2 days each
    # series 1: a = (4, 0), f = (2, 1) -> |e| = 2 + 1, e = -2 + 1; series 2: a = (2, 2), f = (2, 3)
    acc = {
        "fc_h1_abs_err": np.array([3.0, 1.0]),
        "fc_h1_err": np.array([-1.0, 1.0]),
        "fc_h1_actual": np.array([4.0, 4.0]),
        "fc_h1_n": np.array([2.0, 2.0]),
        "fc_h1_ape_sum": np.array([0.5, 0.5]),
        "fc_h1_ape_n": np.array([1.0, 2.0]),
        # seasonal-naive scale: series 1 MAE 2, series 2 MAE 0 (left out of MASE)
        "naive_abs_err": np.array([4.0, 0.0]),
        "naive_n": np.array([2.0, 2.0]),
    }
    k = forecast_error_kpis(acc, 1)
    assert forecast_error_kpis(acc, 7) == {}  # nothing scored at that horizon
    assert k["wape_h1"] == pytest.approx(4 / 8)
    assert k["bias_h1"] == pytest.approx(0.0)
    assert k["mape_h1"] == pytest.approx(1.0 / 3)
    assert k["mase_h1"] == pytest.approx((3 / 2) / 2)


def test_relative_change_and_abc():
    ch = relative_change({"a": 10.0, "b": 0.0, "c": -4.0}, {"a": 12.0, "b": 1.0, "c": -2.0})
    assert ch["a"] == pytest.approx(0.2) and math.isnan(ch["b"]) and ch["c"] == pytest.approx(0.5)
    assert abc_classes(np.array([50, 30, 10, 5, 3, 2, 0])).tolist() == ["A", "A", "B", "B", "C", "C", "C"]
    assert abc_classes(np.zeros(3)).tolist() == ["C", "C", "C"]


def test_frontier_dominance_interpolates_inside_the_frontiers_only():
    base = [
        {"avg_inventory_value": 100.0, "stockout_rate": 0.04},
        {"avg_inventory_value": 200.0, "stockout_rate": 0.01},
    ]
    pipe = [
        {"avg_inventory_value": 80.0, "stockout_rate": 0.03},
        {"avg_inventory_value": 150.0, "stockout_rate": 0.005},
    ]
    d = frontier_dominance(base, pipe)
    at_b = d["at_baseline_points"]
    assert at_b[0]["pipeline_better"] is True  # at 100 the pipeline line gives 0.03 - 0.025*20/70
    assert at_b[0]["pipeline_stockout_rate"] == pytest.approx(0.03 - 0.025 * 20 / 70)
    assert at_b[1]["pipeline_better"] is None  # 200 is outside the pipeline's range: no extrapolation
    at_p = d["at_pipeline_points"]
    # the baseline needs 100 + 100 * (0.04 - 0.03) / 0.03 inventory for a 3% stockout rate
    assert at_p[0]["baseline_inventory_value_same_stockout"] == pytest.approx(100 + 100 / 3)
    assert at_p[1]["pipeline_better"] is None  # 0.5% is below the baseline's lowest rate
    assert d["pipeline_dominates"] is True and d["comparable_points"] == 2
    worse = frontier_dominance(
        base,
        [{"avg_inventory_value": 150.0, "stockout_rate": 0.05}, {"avg_inventory_value": 250.0, "stockout_rate": 0.02}],
    )
    assert worse["pipeline_dominates"] is False
    # Pareto: a pipeline frontier entirely left of the baseline's still dominates each point it beats
    left = frontier_dominance(base, [{"avg_inventory_value": 10.0, "stockout_rate": 0.001}])
    assert left["pipeline_dominates"] is None  # nothing to interpolate against
    assert left["dominates_every_baseline_point"] is True and left["baseline_points_dominated"] == 2
    assert d["baseline_points_dominated"] == 2  # 100 -> (80, 3%) < 4%; 200 -> (150, 0.5%) < 1%
    assert worse["baseline_points_dominated"] == 0 and worse["dominates_every_baseline_point"] is False
    assert [v["pipeline_best_at_or_below"] for v in left["at_baseline_points"]] == [0.001] * len(base)
