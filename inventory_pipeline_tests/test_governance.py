"""Governance: the decision lifecycle as events, approvals and planner answers, runtime guards,
the inventory ledger, explanations and the outbox's crash safety — on small hand-made cases."""

import json
import os

import boto3
import pandas as pd
import pytest
from botocore.exceptions import ReadTimeoutError
from botocore.stub import Stubber
from hypothesis import given, settings
from hypothesis import strategies as st

from inventory_pipeline.config import DEFAULT_POLICY_PATH
from inventory_pipeline.core import outbox as outbox_mod
from inventory_pipeline.core.decisions import (
    TypicalOrders,
    export_events,
    forecast_confidence,
    guard_violations,
    merge_events,
    override_rates,
    planner_events,
    proposal_events,
    propose,
    replay,
    route,
)
from inventory_pipeline.core.explain import (
    BedrockExplainer,
    numbers,
    rephrase_explanations,
)
from inventory_pipeline.core.ledger import (
    LedgerTolerance,
    ledger_summary,
    reconcile_ledger,
)
from inventory_pipeline.core.outbox import render_outbox, write_local, write_s3
from inventory_pipeline.core.policy import PolicyError, load_policy
from inventory_pipeline.core.rebalancing import TRANSFER_COLUMNS
from inventory_pipeline.core.warehouse import Warehouse

D = "2025-04-30"
POLICY = load_policy(DEFAULT_POLICY_PATH)


def _policy(tmp_path, text: str):
    p = tmp_path / "policy.yaml"
    p.write_text(DEFAULT_POLICY_PATH.read_text() + text)
    return load_policy(p)


def _orders(units=(60, 6, 12), values=(6000.0, 60.0, 120.0)):
    return pd.DataFrame(
        {
            "decision_type": [
                "purchase_order",
                "store_replenishment",
                "store_replenishment",
            ],
            "sku_id": ["A", "A", "B"],
            "source_id": ["SUP1", "DC1", "DC1"],
            "location_id": ["DC1", "S1", "S1"],
            "units": list(units),
            "order_date": pd.Timestamp("2025-05-01"),
            "expected_date": pd.Timestamp("2025-05-06"),
            "order_value": list(values),
            "service_level": 0.95,
            "expected_service": 0.97,
            "expected_cost": 3.0,
            "mean_demand_protection": 20.0,
            "sigma_demand_protection": 5.0,
            "binding_constraint": "case_pack",
            "rationale": ["po", "rp A", "rp B"],
        }
    )


_NO_T = pd.DataFrame(columns=TRANSFER_COLUMNS)
_PRICES = pd.DataFrame(
    {
        "location_id": ["S1", "S1"],
        "sku_id": ["A", "B"],
        "current_price": [2.0, 3.0],
        "recommended_price": [2.19, 3.0],
        "expected_margin_current": [10.0, 5.0],
        "expected_margin_recommended": [11.0, 5.0],
        "elasticity_confidence": [0.8, 0.8],
        "binding_guardrail": ["max_change", "none"],
        "rationale": ["price A", "held"],
    }
)
FORECAST = {
    "model_version": "demand_forecaster/v3",
    "series": 2,
    "cv_wape": 0.4,
    "coverage_80": 0.81,
    "gate": "champion",
    "mlflow_run_id": "abc",
}


def _events(orders=None, policy=POLICY, at="2025-04-30T22:00:00", fp="fp1", existing=None):
    p = propose(
        _orders() if orders is None else orders,
        _NO_T,
        _PRICES,
        D,
        "demand_forecaster/v3",
        policy.tag,
        fp,
        forecast=FORECAST,
    )
    return proposal_events(route(p, policy), at, "run1", existing)


def _ids(state):
    return state.set_index(["decision_type", "sku_id"])["decision_id"]


def _planner(rows):
    return pd.DataFrame(
        rows,
        columns=[
            "decision_id",
            "action",
            "override_units_or_price",
            "reason",
            "planner",
        ],
    )


def test_forecast_confidence_hand_computed():
    # mean 20, sigma 5: P(|D - 20| <= 10) = 2 Phi(2) - 1
    assert forecast_confidence(pd.Series([20.0]), pd.Series([5.0])).iloc[0] == pytest.approx(0.9545, abs=1e-4)
    assert forecast_confidence(pd.Series([3.0, 0.0]), pd.Series([0.0, 0.0])).tolist() == [1.0, 0.0]


def test_every_decision_is_proposed_routed_and_carries_its_versions():
    state, na = replay(_events())
    assert len(na) == 0
    s = state.set_index("decision_type")
    assert set(state["decision_type"]) == {
        "forecast",
        "purchase_order",
        "store_replenishment",
        "price_change",
    }
    assert s.loc["purchase_order", "status"] == "pending_review"  # 6000 > 5000
    assert "order value 6000.0 > 5000" in s.loc["purchase_order", "review_reason"]
    assert s.loc["forecast", "status"] == "auto_approved" and "demand_forecaster/v3" in s.loc["forecast", "explanation"]
    assert (state["model_version"] == "demand_forecaster/v3").all() and (state["inputs_fingerprint"] == "fp1").all()
    assert state["policy_version"].str.startswith("2026.12.0+").all()
    assert state["status_history"].isin(["proposed>pending_review", "proposed>auto_approved"]).all()
    assert len(state) == 5  # the held price is not a decision


def test_lifecycle_through_every_status_and_the_outbox():
    ev = _events()
    state, _ = replay(ev)
    ids = _ids(state)
    # the plan's outbox: only auto-approved decisions
    files = render_outbox(state, D)
    assert json.loads(files["manifest.json"])["files"]["purchase_orders.csv"]["rows"] == 0
    ev = merge_events(ev, export_events(state, "m1" * 32, D, "2025-04-30T22:01:00"))
    # a planner overrides the pending PO and rejects an exported replenishment (too late: refused)
    ev = merge_events(
        ev,
        planner_events(
            _planner(
                [
                    [
                        ids["purchase_order", "A"],
                        "override",
                        72,
                        "promo next week",
                        "ana",
                    ],
                    [
                        ids["store_replenishment", "B"],
                        "reject",
                        None,
                        "shelf full",
                        "ben",
                    ],
                    ["PO-20250430-ffffffffffff", "approve", None, "", "ana"],
                ]
            ),
            "2025-05-01",
            "2025-05-01T08:00:00",
        ),
    )
    state, na = replay(ev)
    s = state.set_index("decision_id")
    po = s.loc[ids["purchase_order", "A"]]
    assert po["status"] == "overridden" and po["units"] == 72 and po["planner"] == "ana"
    assert po["reviewed_on"] == pd.Timestamp("2025-05-01")
    rp = s.loc[ids["store_replenishment", "B"]]
    assert rp["status"] == "auto_approved" and rp["state"] == "exported"
    assert rp["status_history"] == "proposed>auto_approved>exported"
    assert sorted(na["reason"]) == [
        "already exported: the ERP has this decision",
        "unknown decision id",
    ]
    files = render_outbox(state, D)
    po_csv = pd.read_csv(pd.io.common.BytesIO(files["purchase_orders.csv"]))
    assert po_csv["units"].tolist() == [72]  # the override reached the outbox
    ev = merge_events(ev, export_events(state, "m2" * 32, D, "2025-05-01T08:01:00"))
    state, _ = replay(ev)
    assert (
        state.set_index("decision_id").loc[ids["purchase_order", "A"], "status_history"]
        == "proposed>pending_review>overridden>exported"
    )
    rates = override_rates(state).set_index("decision_type")
    assert rates.loc["purchase_order", "override_rate"] == 1.0 and rates.loc["all", "sent_for_review"] == 1
    # a decision's state is its own events' replay (the console's decision page replays only those)
    for did, row in state.set_index("decision_id").iterrows():
        alone = replay(ev[ev["decision_id"] == did])[0].set_index("decision_id").loc[did]
        pd.testing.assert_series_equal(alone, row, check_names=False)


def test_approve_and_reject_of_pending_decisions(tmp_path):
    pol = _policy(tmp_path, "")  # same policy; every order pending with a tiny limit:
    pol = pol.model_copy(update={"approval": pol.approval.model_copy(update={"max_order_value": 1.0})})
    ev = _events(policy=pol)
    ids = _ids(replay(ev)[0])
    ev = merge_events(
        ev,
        planner_events(
            _planner(
                [
                    [ids["store_replenishment", "A"], "approve", None, "ok", "ana"],
                    [ids["store_replenishment", "B"], "reject", None, "no", "ana"],
                ]
            ),
            D,
            "2025-04-30T23:00:00",
        ),
    )
    state = replay(ev)[0].set_index("decision_id")
    assert state.loc[ids["store_replenishment", "A"], "status"] == "approved"
    assert state.loc[ids["store_replenishment", "B"], "status"] == "rejected"
    files = render_outbox(state.reset_index(), D)
    tr = pd.read_csv(pd.io.common.BytesIO(files["transfers.csv"]))
    assert tr["decision_id"].tolist() == [ids["store_replenishment", "A"]]
    rates = override_rates(state.reset_index()).set_index("decision_type")
    assert rates.loc["all", "sent_for_review"] == 3 and rates.loc["all", "override_rate"] == 0.0
    assert rates.loc["all", "pending"] == 1  # the PO nobody answered


def test_rerun_adds_no_event_and_a_new_revision_needs_a_new_review(tmp_path):
    ev = _events()
    assert len(merge_events(ev, _events(at="2025-05-02T00:00:00"))) == len(ev)  # same inputs: nothing new
    wh = Warehouse(tmp_path)
    wh.append("decision_events", ev, D, merge_events)
    mtime = wh.path("decision_events", D).stat().st_mtime_ns
    again = wh.append("decision_events", _events(at="2025-05-02T00:00:00"), D, merge_events).table
    assert len(again) == len(ev) and wh.path("decision_events", D).stat().st_mtime_ns == mtime  # not rewritten
    ids = _ids(replay(ev)[0])
    ev = merge_events(
        ev,
        planner_events(
            _planner([[ids["purchase_order", "A"], "approve", None, "", "ana"]]),
            D,
            "2025-04-30T23:00:00",
        ),
    )
    assert replay(ev)[0].set_index("decision_id").loc[ids["purchase_order", "A"], "status"] == "approved"
    # new data: the PO's numbers change -> a new revision, back to review; the old answer does not carry over
    ev = merge_events(
        ev,
        _events(
            orders=_orders(units=(120, 6, 12), values=(12000.0, 60.0, 120.0)),
            at="2025-05-01T00:00:00",
            fp="fp2",
        ),
    )
    state = replay(ev)[0].set_index("decision_id")
    assert state.loc[ids["purchase_order", "A"], "status"] == "pending_review"
    assert state.loc[ids["purchase_order", "A"], "units"] == 120
    assert state.index.is_unique and len(state) == 5


def test_numbers_that_return_after_others_are_proposed_and_exported_again():
    """A late file changes a plan's numbers (A -> B, both exported); its correction brings A back:
    A is the current proposal again and is exported again; re-running that adds nothing."""

    def plan(ev, units, at):
        o = _orders(units=(60, units, 12), values=(6000.0, units * 10.0, 120.0))  # the replenishment auto-approves
        ev = merge_events(ev, _events(orders=o, at=at, existing=ev))
        state = replay(ev)[0]
        return merge_events(ev, export_events(state, "m" * 64, D, at)), state

    ev, _ = plan(None, 6, "2025-04-30T22:00:00")
    ev, _ = plan(ev, 5, "2025-05-01T22:00:00")
    ev, back = plan(ev, 6, "2025-05-02T22:00:00")
    po = _ids(back)["store_replenishment", "A"]  # DC1 -> S1
    row = back.set_index("decision_id").loc[po]
    assert row["units"] == 6 and row["proposal_generation"] == 1 and row["status"] == "auto_approved"
    final = replay(ev)[0].set_index("decision_id").loc[po]
    assert final["state"] == "exported" and final["units"] == 6
    mine = ev[ev["decision_id"] == po]
    assert (mine["event"] == "proposed").sum() == 3 and (mine["event"] == "exported").sum() == 3
    again, _ = plan(ev, 6, "2025-05-03T22:00:00")
    assert len(again) == len(ev)  # the same numbers once more: nothing new


def test_an_answer_to_an_older_revision_is_not_applied_and_says_why():
    """Landing contract v1.1: a planner row may name the revision it answered. The numbers changed
    after the planner looked (a re-run proposed a new revision before the file was read): the
    answer is not applied, the decision waits, and planner_not_applied says why. An answer to the
    current revision applies; one without a revision applies as before."""
    ev = _events()
    state = replay(ev)[0].set_index("decision_id")
    ids = _ids(state.reset_index())
    po = ids["purchase_order", "A"]
    old = state.loc[po, "revision"]
    ev = merge_events(
        ev,
        _events(orders=_orders(units=(120, 6, 12), values=(12000.0, 60.0, 120.0)), at="2025-05-01T00:00:00", fp="fp2"),
    )
    new = replay(ev)[0].set_index("decision_id").loc[po, "revision"]
    assert new != old
    rows = _planner([[po, "approve", None, "looked at the old numbers", "ana"]]).assign(revision=[old])
    stale = merge_events(ev, planner_events(rows, D, "2025-05-01T01:00:00"))
    state, not_applied = replay(stale)
    assert state.set_index("decision_id").loc[po, "status"] == "pending_review"
    why = not_applied.set_index("decision_id").loc[po, "reason"]
    assert f"answered revision {old}" in why and f"now revision {new}" in why
    current = merge_events(ev, planner_events(rows.assign(revision=[new]), D, "2025-05-01T01:00:00"))
    assert replay(current)[0].set_index("decision_id").loc[po, "status"] == "approved"
    plain = merge_events(ev, planner_events(rows.drop(columns="revision"), D, "2025-05-01T01:00:00"))
    assert replay(plain)[0].set_index("decision_id").loc[po, "status"] == "approved"


def test_anomaly_caps_and_low_confidence_route_to_review(tmp_path):
    pol = _policy(tmp_path, "").model_copy()
    g = pol.guards.model_copy(update={"max_daily_order_value": 100.0})
    pol = pol.model_copy(update={"guards": g})
    typical = TypicalOrders(
        pd.DataFrame(
            {
                "location_id": ["S1"],
                "sku_id": ["B"],
                "median_units": [2.0],
                "orders": [10],
            }
        )
    )
    orders = _orders(values=(60.0, 60.0, 120.0))
    r = route(propose(orders, _NO_T, _PRICES, D, "m", pol.tag), pol, typical).set_index(["decision_type", "sku_id"])
    assert "5 x typical 2.0 (median of 10 past orders)" in r.loc[("store_replenishment", "B"), "review_reason"]
    assert r.loc[("purchase_order", "A"), "status"] == "auto_approved"  # 60 <= the cap of 100
    pol2 = pol.model_copy(update={"guards": g.model_copy(update={"max_daily_order_value": 50.0})})
    r2 = route(propose(orders, _NO_T, _PRICES, D, "m", pol.tag), pol2).set_index(["decision_type", "sku_id"])
    assert "daily purchase-order value cap 50.00" in r2.loc[("purchase_order", "A"), "review_reason"]
    # price-change cap: 0 allowed -> the change waits
    pol3 = pol.model_copy(update={"guards": g.model_copy(update={"max_daily_price_changes": 0})})
    r3 = route(propose(orders, _NO_T, _PRICES, D, "m", pol.tag), pol3).set_index(["decision_type", "sku_id"])
    assert "daily price-change cap 0" in r3.loc[("price_change", "A"), "review_reason"]
    # low confidence on a decision worth enough
    pol4 = pol.model_copy(
        update={"approval": pol.approval.model_copy(update={"min_confidence": 0.99, "min_confidence_value": 100.0})}
    )
    r4 = route(propose(orders, _NO_T, _PRICES, D, "m", pol.tag), pol4).set_index(["decision_type", "sku_id"])
    assert "confidence 0.95 < 0.99" in r4.loc[("store_replenishment", "B"), "review_reason"]
    assert r4.loc[("store_replenishment", "A"), "status"] == "auto_approved"  # worth 60 < 100


def test_relative_daily_value_cap_from_past_orders():
    past = pd.DataFrame(
        {
            "order_id": ["1", "2", "3"],
            "order_date": ["2025-04-01", "2025-04-01", "2025-04-02"],
            "location_id": ["DC1", "DC1", "DC1"],
            "sku_id": ["A", "A", "A"],
            "units": [10, 30, 20],
            "is_purchase_order": True,
        }
    )
    t = TypicalOrders.from_orders(past, pd.Series({"A": 2.0}))
    assert t.daily_po_value == pytest.approx(60.0)  # median of 80 and 40
    assert t.table.iloc[0]["median_units"] == 20 and t.table.iloc[0]["orders"] == 3
    r = route(
        propose(_orders(values=(200.0, 60.0, 120.0)), _NO_T, _PRICES, D, "m", POLICY.tag),
        POLICY,
        t,
    )
    assert (
        r.set_index("decision_type")
        .loc["purchase_order", "review_reason"]
        .startswith("daily purchase-order value cap 180.00 (3 x median daily PO value 60.00)")
    )


def test_runtime_guards_trip_on_crafted_auto_approvals():
    typical = TypicalOrders(
        pd.DataFrame(
            {
                "location_id": ["S1"],
                "sku_id": ["A"],
                "median_units": [1.0],
                "orders": [5],
            }
        ),
        daily_po_value=10.0,
    )
    state = replay(_events())[0]
    state.loc[state["decision_type"] == "purchase_order", "status"] = "auto_approved"  # bypassing the routing
    v = guard_violations(state, POLICY, typical)
    assert set(v["guard"]) == {"daily_order_value", "order_size_anomaly"}
    pol = POLICY.model_copy(update={"guards": POLICY.guards.model_copy(update={"max_daily_price_changes": 0})})
    assert "daily_price_changes" in set(guard_violations(state, pol)["guard"])
    ok = replay(_events())[0]
    assert guard_violations(ok, POLICY, typical)[lambda d: d["guard"] != "order_size_anomaly"].empty


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(1, 5000), min_size=1, max_size=12), st.floats(10, 20000))
def test_routing_never_auto_approves_past_the_daily_cap(values, cap):
    n = len(values)
    orders = pd.DataFrame(
        {
            "decision_type": "purchase_order",
            "sku_id": [f"S{i}" for i in range(n)],
            "source_id": "SUP",
            "location_id": "DC1",
            "units": 6,
            "order_date": pd.Timestamp("2025-05-01"),
            "expected_date": pd.Timestamp("2025-05-03"),
            "order_value": values,
            "service_level": 0.9,
            "binding_constraint": "none",
            "rationale": "x",
        }
    )
    pol = POLICY.model_copy(update={"guards": POLICY.guards.model_copy(update={"max_daily_order_value": cap})})
    r = route(propose(orders, _NO_T, _PRICES.iloc[0:0], D, "m", pol.tag), pol)
    assert r.loc[r["status"] == "auto_approved", "value"].sum() <= cap + 1e-6
    assert guard_violations(replay(proposal_events(r, "t"))[0], pol).empty


# ---- the ledger ------------------------------------------------------------------------------------


def _inv(rows):
    return pd.DataFrame(rows, columns=["location_id", "sku_id", "on_hand"])


def test_ledger_closes_on_a_hand_checked_day():
    opening = _inv([["S1", "A", 10], ["DC1", "A", 100]])
    closing = _inv([["S1", "A", 13], ["DC1", "A", 88]])
    receipts = pd.DataFrame({"location_id": ["S1"], "sku_id": ["A"], "units_received": [6]})
    sales = pd.DataFrame({"location_id": ["S1"], "sku_id": ["A"], "units_sold": [3]})
    oo = pd.DataFrame(
        {
            "order_id": ["ST1", "PO9"],
            "order_date": [D, "2025-04-20"],
            "source_id": ["DC1", "SUP1"],
            "location_id": ["S2", "DC1"],
            "sku_id": ["A", "A"],
            "units": [12, 500],
            "expected_date": ["2025-05-02", "2025-05-05"],
        }
    )
    led = reconcile_ledger(D, opening, closing, receipts, sales, oo).set_index(["location_id", "sku_id"])
    assert led.loc[("S1", "A"), "expected_on_hand"] == 13 and not led.loc[("S1", "A"), "flagged"]
    assert led.loc[("DC1", "A"), "shipped_out"] == 12 and led.loc[("DC1", "A"), "expected_on_hand"] == 88
    assert ("SUP1", "A") not in led.index  # a supplier keeps no ledger here


def test_ledger_flags_shrinkage_and_the_check_fails_past_the_share():
    opening = _inv([["S1", "A", 10], ["S1", "B", 50], ["S2", "A", 5]])
    closing = _inv([["S1", "A", 7], ["S1", "B", 50]])  # S1/A: 3 units gone; S2/A: the row vanished (5 missing)
    tol = LedgerTolerance(abs_units=0, rel=0.0, max_share=0.5)
    led = reconcile_ledger(D, opening, closing, None, None, None, tol)
    f = led[led["flagged"]].set_index(["location_id", "sku_id"])
    assert f["discrepancy"].to_dict() == {("S1", "A"): -3.0, ("S2", "A"): -5.0}
    assert "missing 3 units" in f.loc[("S1", "A"), "explanation"]
    s = ledger_summary(led, tol)
    assert s["discrepancies"] == 2 and not s["passed"] and s["units_missing"] == 8
    assert ledger_summary(
        reconcile_ledger(D, opening, closing, None, None, None, LedgerTolerance(5, 0, 0)),
        LedgerTolerance(5, 0, 0),
    )["passed"]
    assert reconcile_ledger(D, None, closing, None, None, None).empty  # the first day cannot be reconciled


def test_ledger_explains_the_lines_of_quarantined_rows_and_does_not_count_them():
    from inventory_pipeline.core.ingestion import quarantined_items

    opening = _inv([["S1", "A", 10], ["S1", "B", 50], ["S2", "A", 5]])
    closing = _inv([["S1", "A", 7], ["S1", "B", 48], ["S2", "A", 5]])  # S1/A sold 3, S1/B 2 gone
    sales = pd.DataFrame({"location_id": ["S1"], "sku_id": ["B"], "units_sold": [2]})  # S1/A's row was quarantined
    q = pd.DataFrame(
        {
            "file": ["/lz/daily/2025-04-30/pos_sales.csv"],
            "row": [4],
            "reason": ["units_sold failed"],
            "record": [json.dumps({"location_id": "S1", "sku_id": "A", "units_sold": "three"})],
            "disposition": ["rejected"],
        }
    )
    tol = LedgerTolerance(abs_units=0, rel=0.0, max_share=0.0)
    led = reconcile_ledger(D, opening, closing, None, sales, None, tol, quarantined_items(q))
    line = led.set_index(["location_id", "sku_id"]).loc[("S1", "A")]
    assert line["flagged"] and line["explained"]
    assert line["explanation"].startswith("explained by input quarantined: daily/2025-04-30/pos_sales.csv, row 4; ")
    s = ledger_summary(led, tol)
    assert s["passed"] and s["discrepancies"] == 0 and s["explained"] == 1
    # without the quarantine the same line counts and the day fails
    assert not ledger_summary(reconcile_ledger(D, opening, closing, None, sales, None, tol), tol)["passed"]


def test_file_usability_is_per_file_and_day(tmp_path):
    from inventory_pipeline.defs.ledger import file_usability

    wh = Warehouse(tmp_path)
    for f in ("pos_sales", "inventory", "receipts", "open_orders"):
        wh.write(f"raw_{f}", pd.DataFrame({"x": range(6)}), D)
    wh.write(
        "quarantine_pos_sales",
        pd.DataFrame(
            {
                "file": ["p"] * 3,
                "row": [1, 2, 3],
                "reason": "bad",
                "record": None,
                "disposition": "rejected",
            }
        ),
        D,
    )
    wh.write(
        "quarantine_inventory",
        pd.DataFrame(
            {
                "file": ["i"],
                "row": [1],
                "reason": "bad",
                "record": None,
                "disposition": "rejected",
            }
        ),
        D,
    )
    u = file_usability(wh, D, 0.25, 3).set_index("file")
    assert u.loc["pos_sales", "unusable"].startswith(f"daily/{D}/pos_sales: 3 of 9 rows quarantined (33.33% > 25.00%")
    assert u.loc["inventory", "unusable"] == ""  # 1 of 7: held items, not an unusable file
    assert (u.drop(index=["pos_sales"])["unusable"] == "").all()
    (tmp_path / "raw_receipts" / D / "data.parquet").unlink()
    assert "no validated rows" in file_usability(wh, D, 0.25, 3).set_index("file").loc["receipts", "unusable"]


def test_quarantined_and_master_held_items_hold_their_decisions_only():
    from inventory_pipeline.core.decisions import input_holds
    from inventory_pipeline.core.ingestion import quarantined_items

    q = pd.DataFrame(
        {
            "file": ["/lz/daily/2025-04-30/inventory.csv"],
            "row": [7],
            "reason": ["on_hand failed"],
            "record": [json.dumps({"location_id": "S1", "sku_id": "B", "on_hand": "-1"})],
            "disposition": ["rejected"],
        }
    )
    master = {
        "products": pd.DataFrame(
            {
                "file": ["/lz/master/products.csv"],
                "row": [2],
                "reason": ["case_pack 0 must be at least 1 (planned with 1)"],
                "record": [json.dumps({"sku_id": "A", "case_pack": "0"})],
                "disposition": ["held"],
            }
        )
    }
    p = propose(
        _orders(values=(60.0, 60.0, 120.0)),
        _NO_T,
        _PRICES,
        D,
        "m",
        POLICY.tag,
        forecast=FORECAST,
    )
    base = route(p, POLICY).set_index(["decision_type", "sku_id"])
    held = route(p, POLICY, holds=input_holds(quarantined_items(q), master)).set_index(["decision_type", "sku_id"])
    assert (base["status"] == "auto_approved").all()
    rp_b = held.loc[("store_replenishment", "B")]
    assert rp_b["status"] == "pending_review"
    assert rp_b["review_reason"].startswith("input quarantined: daily/2025-04-30/inventory.csv, row 7 (on_hand failed)")
    for key in (
        ("purchase_order", "A"),
        ("store_replenishment", "A"),
        ("price_change", "A"),
    ):
        assert held.loc[key, "status"] == "pending_review"
        assert "master data: master/products.csv, row 2: case_pack 0" in held.loc[key, "review_reason"]
    assert held.loc[("forecast", ""), "status"] == "auto_approved"
    # the held decisions are not exported; everything else is
    state = replay(proposal_events(held.reset_index(), "2025-04-30T22:00:00"))[0]
    out = pd.read_csv(pd.io.common.BytesIO(render_outbox(state, D)["purchase_orders.csv"]))
    assert out.empty


def test_a_price_below_cost_waits_unless_it_is_a_clearance_markdown():
    prices = _PRICES.assign(unit_cost=[2.5, 1.0], change_reason=["margin_raise", "hold"])  # A: 2.19 < cost 2.5
    r = route(
        propose(_orders(values=(60.0, 60.0, 120.0)), _NO_T, prices, D, "m", POLICY.tag),
        POLICY,
    )
    pc = r[r["decision_type"] == "price_change"].iloc[0]
    assert pc["status"] == "pending_review"
    assert (
        "negative expected margin: new price 2.19 below unit cost 2.5 (not a clearance markdown)" in pc["review_reason"]
    )
    clear = prices.assign(change_reason=["markdown", "hold"])
    r = route(
        propose(_orders(values=(60.0, 60.0, 120.0)), _NO_T, clear, D, "m", POLICY.tag),
        POLICY,
    )
    assert "negative expected margin" not in r.loc[r["decision_type"] == "price_change", "review_reason"].iloc[0]
    # the routing columns never reach the events (the payload is unchanged)
    assert "unit_cost" not in proposal_events(r, "2025-04-30T22:00:00").columns


# ---- policy --------------------------------------------------------------------------------------


def test_policy_guard_and_approval_errors_are_clear(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text("version: x\nguards:\n  anomaly_multiple: 0.5\n")
    with pytest.raises(PolicyError, match=r"guards.anomaly_multiple"):
        load_policy(p)
    p.write_text("version: x\napproval:\n  min_confidence: 2\n")
    with pytest.raises(PolicyError, match=r"approval.min_confidence"):
        load_policy(p)
    p.write_text("version: x\nexplanations:\n  llm: true\n")
    with pytest.raises(PolicyError, match=r"explanations.llm"):
        load_policy(p)
    a, b = (
        load_policy(DEFAULT_POLICY_PATH),
        _policy(tmp_path, "\n# a comment changes the hash\n"),
    )
    assert a.version == b.version and a.tag != b.tag  # every decision records version + content hash


# ---- explanations ----------------------------------------------------------------------------------


def _bedrock():
    return boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="y",
    )


def _answer(text):
    return {
        "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 10, "outputTokens": 10, "totalTokens": 20},
        "metrics": {"latencyMs": 5},
    }


TEMPLATE = "position 4 below reorder point 12.5: order 24 up to 30.0; expected shortage 0.12 units"


def test_llm_rephrasing_keeps_every_number_or_falls_back():
    client = _bedrock()
    with Stubber(client) as stub:
        stub.add_response(
            "converse",
            _answer(
                "Stock is 4, under the reorder point of 12.5, so we order 24 to reach "
                "30.0; about 0.12 units may still be short."
            ),
        )
        stub.add_response(
            "converse",
            _answer("Stock is 4, below 12.5: order 25 up to 30.0, shortage 0.12."),
        )
        stub.add_response("converse", _answer(""))
        stub.add_client_error("converse", service_error_code="ThrottlingException", http_status_code=429)
        ex = BedrockExplainer(client, "model-x")
        text, src = ex.rephrase(TEMPLATE)
        assert src == "llm:model-x" and numbers(text) == numbers(TEMPLATE) and text != TEMPLATE
        assert ex.rephrase(TEMPLATE) == (TEMPLATE, "template (llm changed a number)")
        assert ex.rephrase(TEMPLATE) == (TEMPLATE, "template (llm answered nothing)")
        assert ex.rephrase(TEMPLATE) == (
            TEMPLATE,
            "template (llm failed: ThrottlingException)",
        )


def test_llm_timeout_and_budget_fall_back_to_the_template():
    class Slow:
        def converse(self, **kw):
            raise ReadTimeoutError(endpoint_url="http://127.0.0.1:9")

    ex = BedrockExplainer(Slow(), "m", budget_seconds=0.0)
    assert ex.rephrase(TEMPLATE) == (TEMPLATE, "template (llm time budget spent)")
    ex = BedrockExplainer(Slow(), "m")
    assert ex.rephrase(TEMPLATE) == (
        TEMPLATE,
        "template (llm failed: ReadTimeoutError)",
    )
    log = replay(_events())[0]
    out = rephrase_explanations(log, ex, max_decisions=2)
    assert out[_NUMS].equals(log[_NUMS])  # numbers untouched
    assert (out["explanation_source"] != "template").sum() == 2  # the 2 tried; the pending PO first
    assert out.set_index("decision_type").loc["purchase_order", "explanation_source"].startswith("template (llm failed")


_NUMS = ["units", "old_price", "new_price", "value", "confidence"]


# ---- outbox crash safety ---------------------------------------------------------------------------


def test_a_crash_mid_write_leaves_no_manifest_and_the_old_folder(tmp_path, monkeypatch):
    state = replay(_events())[0]
    files = render_outbox(state, D)
    write_local(files, tmp_path, D)
    before = {p.name: p.read_bytes() for p in (tmp_path / D).iterdir()}
    calls = {"n": 0}
    real = os.fsync

    def crash(fd):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk gone")
        return real(fd)

    monkeypatch.setattr(outbox_mod.os, "fsync", crash)
    changed = dict(files, **{"purchase_orders.csv": files["purchase_orders.csv"] + b"x\n"})
    with pytest.raises(OSError):
        write_local(changed, tmp_path, D)
    assert {p.name: p.read_bytes() for p in (tmp_path / D).iterdir()} == before  # the old plan, whole
    assert [p.name for p in tmp_path.iterdir()] == [D]  # no half-written folder left
    calls["n"] = 0
    with pytest.raises(OSError):
        write_local(files, tmp_path, "2025-05-01")  # a first write that crashes leaves nothing
    assert not (tmp_path / "2025-05-01").exists()


def test_s3_crash_mid_write_leaves_no_manifest():
    class Flaky:
        def __init__(self):
            self.keys = []

        def put_object(self, Bucket, Key, Body):  # noqa: N803
            if len(self.keys) == 1:
                raise ConnectionError("network gone")
            self.keys.append(Key)

    c = Flaky()
    with pytest.raises(ConnectionError):
        write_s3(render_outbox(replay(_events())[0], D), c, "b", "outbox", D)
    assert c.keys == [f"outbox/{D}/purchase_orders.csv"] and not any(k.endswith("manifest.json") for k in c.keys)
