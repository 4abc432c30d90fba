"""The digital twin's laws (property tests), common random numbers, scenarios and the evaluation."""

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inventory_pipeline.config import DEFAULT_POLICY_PATH
from inventory_pipeline.simulation import NetworkConfig, build_network
from inventory_pipeline.simulation.engine import (
    KIND_LAUNCH_DC,
    KIND_LAUNCH_STORE,
    KIND_STORE,
    KIND_SUPPLIER,
    KIND_TRANSFER,
    _lane_matrix,
    simulate,
)
from inventory_pipeline.simulation.evaluation import EvaluationConfig, EvaluationError, evaluate, write_report
from inventory_pipeline.simulation.policies import BaselinePolicy, Observation, Orders, SwitchingPolicy
from inventory_pipeline.simulation.scenarios import apply_demand_side, stress_scenarios
from inventory_pipeline_tests.helpers import random_transfers


class RandomPolicy:
    """Orders, transfers (some along no lane, some larger than the stock) and prices at random."""

    name = "random"

    def __init__(self, seed: int, transfers: bool = True, prices: bool = True):
        self.rng = np.random.default_rng(seed)
        self.transfers, self.prices = transfers, prices

    def decide(self, obs: Observation) -> Orders:
        L, S = obs.store_on_hand.shape
        D = obs.dc_on_hand.shape[0]
        r = self.rng
        tr = None
        if self.transfers:
            tr = random_transfers(r, L, S)
        pf = (
            np.where(r.random((L, S)) < 0.1, r.choice([0.8, 0.9, 1.1, 1.2], (L, S)), obs.price_factor)
            if self.prices
            else None
        )
        return Orders(
            store=r.integers(0, 3, (L, S)) * (r.random((L, S)) < 0.3) * 6,
            dc=r.integers(0, 4, (D, S)) * (r.random((D, S)) < 0.2) * 24,
            transfers=tr,
            price_factor=pf,
        )


def _records(net, policy, **kw):
    recs = []
    res = simulate(net, policy, sink=recs.append, **kw)
    return res, recs


def assert_stock_conserved(rec, prev_dc):
    """One day's stock laws: sales <= demand, no negative stock, and conservation -- store end =
    start + receipts (transfers in, launch fills) - sales - transfers out; DC end = yesterday's +
    receipts - shipped. Returns the units into each store today and the DC stock for tomorrow."""
    r = rec.receipts
    into_store = np.zeros_like(rec.store_on_hand)
    m = np.isin(r["kind"], (KIND_STORE, KIND_TRANSFER, KIND_LAUNCH_STORE))
    np.add.at(into_store, (r["dest"][m], r["sku"][m]), r["units"][m])
    assert (rec.sales <= rec.demand).all() and (rec.store_on_hand >= 0).all() and (rec.dc_on_hand >= 0).all()
    assert (rec.store_on_hand == rec.start_on_hand + into_store - rec.sales - rec.transfers_out).all()
    into_dc = np.zeros_like(rec.dc_on_hand)
    m = np.isin(r["kind"], (KIND_SUPPLIER, KIND_LAUNCH_DC))
    np.add.at(into_dc, (r["dest"][m], r["sku"][m]), r["units"][m])
    if prev_dc is not None:
        assert (rec.dc_on_hand == prev_dc + into_dc - rec.dc_shipped).all()
    return into_store, rec.dc_on_hand


small_networks = st.builds(
    lambda stores, skus, dcs, seed, days: NetworkConfig(
        regions=1,
        dcs=dcs,
        stores=max(stores, dcs),
        skus=skus,
        suppliers=2,
        days=days,
        seed=seed,
        burn_in_days=7,
        new_item_share=0.2,
        discontinued_share=0.2,
    ),
    stores=st.integers(1, 4),
    skus=st.integers(2, 8),
    dcs=st.integers(1, 2),
    seed=st.integers(0, 10_000),
    days=st.integers(20, 45),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cfg=small_networks, policy_seed=st.integers(0, 1000))
def test_stock_laws_hold_every_day_under_any_policy(cfg, policy_seed):
    net = build_network(cfg)
    lanes = _lane_matrix(net)
    _, recs = _records(net, RandomPolicy(policy_seed))
    prev_dc = None
    for rec in recs:
        r = rec.receipts
        into_store, prev_dc = assert_stock_conserved(rec, prev_dc)
        # sales never exceed demand nor the stock on the shelf
        assert (rec.sales <= rec.start_on_hand + into_store).all()
        # a sale is lost only when the shelf ran empty
        assert (rec.store_on_hand + rec.transfers_out)[rec.demand > rec.sales].sum() == 0
        # orders arrive exactly after their lead time
        age = rec.t - r["order_day"]
        st_ = r["kind"] == KIND_STORE
        assert (age[st_] == net.store_lead_time[r["dest"][st_]]).all()
        tr = r["kind"] == KIND_TRANSFER
        assert (age[tr] == lanes[r["src"][tr], r["dest"][tr]]).all() and (lanes[r["src"][tr], r["dest"][tr]] > 0).all()
        assert (age[r["kind"] == KIND_SUPPLIER] >= 1).all()


def test_transfers_follow_lanes_and_never_exceed_the_donor_stock():
    cfg = NetworkConfig(regions=2, dcs=2, stores=4, skus=5, suppliers=2, days=30, seed=3, burn_in_days=7)
    net = build_network(cfg)
    lanes = _lane_matrix(net)

    class Mover:
        name = "mover"

        def decide(self, obs):
            L, S = obs.store_on_hand.shape
            src = np.repeat(np.arange(L), L)
            dest = np.tile(np.arange(L), L)
            return Orders(
                store=np.zeros((L, S), int),
                dc=np.zeros((obs.dc_on_hand.shape[0], S), int),
                transfers={"sku": np.zeros(L * L, int), "src": src, "dest": dest, "units": np.full(L * L, 10**6)},
            )

    _, recs = _records(net, Mover())
    moved = sum(int(r.transfers_out.sum()) for r in recs)
    assert moved > 0
    for rec in recs:
        assert (rec.transfers_out[:, 1:] == 0).all()  # only the SKU asked for
        tr = rec.receipts["kind"] == KIND_TRANSFER
        assert (lanes[rec.receipts["src"][tr], rec.receipts["dest"][tr]] > 0).all()  # inside a region, on a lane


def test_common_random_numbers_same_demand_for_every_policy():
    net = build_network(NetworkConfig(stores=3, skus=12, days=40, seed=5, burn_in_days=14))
    _, a = _records(net, BaselinePolicy())
    _, b = _records(net, BaselinePolicy(safety_days=0))
    _, c = _records(net, RandomPolicy(1, prices=False))
    disc = net.sku_discontinue_day + net.config.burn_in_days
    for ra, rb, rc in zip(a, b, c):
        # the same draws wherever the item is listed; a discontinued item whose shelf emptied is
        # delisted and has no demand -- when its shelf empties depends on the policy
        live = ra.t < disc
        assert (ra.demand[:, live] == rb.demand[:, live]).all() and (ra.demand[:, live] == rc.demand[:, live]).all()
    assert sum(int((ra.sales != rb.sales).sum()) for ra, rb in zip(a, b)) > 0  # the policies did differ


def test_a_price_change_moves_only_its_own_demand_and_in_the_right_direction():
    net = build_network(NetworkConfig(stores=2, skus=6, days=60, seed=9, burn_in_days=7))

    class Dearer(BaselinePolicy):
        def decide(self, obs):
            o = super().decide(obs)
            pf = np.ones_like(obs.store_sales_ma)
            pf[0, 0] = 1.3  # 30% dearer (elasticity < 0: less demand)
            return dataclasses.replace(o, price_factor=pf)

    _, ref = _records(net, BaselinePolicy())
    _, dear = _records(net, Dearer())
    other = np.ones((2, 6), bool)
    other[0, 0] = False
    for r, d in zip(ref, dear):
        assert (r.demand[other] == d.demand[other]).all()
        assert d.demand[0, 0] <= r.demand[0, 0]
        assert d.price[0, 0] == pytest.approx(r.price[0, 0] * 1.3)
    assert sum(int(d.demand[0, 0]) for d in dear) < sum(int(r.demand[0, 0]) for r in ref)


def test_observation_never_shows_the_true_demand():
    assert not any("demand" in f for f in Observation.__dataclass_fields__)


def test_scenarios_bite_where_they_say():
    cfg = NetworkConfig(regions=1, dcs=2, stores=4, skus=20, suppliers=3, days=80, seed=2, burn_in_days=14)
    net = build_network(cfg)
    start = 14 + 20  # measurement starts 20 days into the history
    lt, surge, promo, outage = stress_scenarios(net, 60)
    a, b = lt.window(start)
    # supplier orders placed in the window take twice as long: on the window's first day the state
    # (and so the lead-time draws) is identical with and without the scenario

    def supplier_lead_times(recs):
        out = {}
        for r in recs:
            m = r.receipts["kind"] == KIND_SUPPLIER
            for oid, od in zip(r.receipts["order_id"][m], r.receipts["order_day"][m]):
                out[int(oid)] = (int(od), r.t - int(od))
        return out

    with_lt = supplier_lead_times(_records(net, BaselinePolicy(), scenario=lt, measure_from=start)[1])
    without = supplier_lead_times(_records(net, BaselinePolicy(), measure_from=start)[1])
    first_day = [oid for oid, (od, _) in without.items() if od == a]
    assert first_day and all(with_lt[o][1] == 2 * without[o][1] for o in first_day)
    assert all(age % 2 == 0 for od, age in with_lt.values() if a <= od < b)
    assert all(with_lt[o] == without[o] for o, (od, _) in without.items() if od < a)
    # a closed DC neither ships nor receives during the outage
    a, b = outage.window(start)
    _, recs = _records(net, BaselinePolicy(), scenario=outage, measure_from=start)
    for r in recs:
        if a <= r.t < b:
            assert r.dc_shipped[outage.dc_outage].sum() == 0
            assert not ((r.receipts["kind"] == KIND_SUPPLIER) & (r.receipts["dest"] == outage.dc_outage)).any()
    # the surge raises the category's expected demand by 60% inside its window only
    s = apply_demand_side(net, surge, start)
    cat = list(cfg.categories).index(surge.demand_category)
    a, b = surge.window(start)
    assert np.allclose(s.event_mult[a:b, cat], net.event_mult[a:b, cat] * 1.6)
    assert np.array_equal(s.event_mult[:a], net.event_mult[:a]) and np.array_equal(s.event_mult[b:], net.event_mult[b:])
    # the promotion change: every SKU of the category is promoted (cheaper) inside its window
    p = apply_demand_side(net, promo, start)
    a, b = promo.window(start)
    in_cat = net.sku_category == list(cfg.categories).index(promo.extra_promo_category)
    assert p.promo_path[a:b, in_cat].all() and (p.price_path[a:b, in_cat] < net.regular_price_path[a:b, in_cat]).all()
    assert net.promo_path is not p.promo_path  # the original network is untouched


class _Keep(BaselinePolicy):
    """The baseline rule, keeping the observed history it was shown."""

    def decide(self, obs):
        self.history, self.t = obs.history, obs.t
        return super().decide(obs)


def test_receipt_log_records_short_shipments_and_held_deliveries_on_their_real_receipt_day():
    """The observed receipt log (History.receipts, what lead times are estimated from) holds every
    order received, on the day it was really received: a short shipment with the units that
    arrived, a supplier delivery held by a closed DC on the day the DC reopened, and the doubled
    lead times of the lead-time scenario; lead_time_frame shows the same."""
    from inventory_pipeline.simulation.pipeline_policy import lead_time_frame
    from inventory_pipeline.simulation.policies import RECEIPT_COLS

    cfg = NetworkConfig(regions=1, dcs=2, stores=4, skus=20, suppliers=3, days=80, seed=2, burn_in_days=14)
    net = build_network(cfg)
    start = 14 + 20
    lt, _, _, outage = stress_scenarios(net, 60)

    def run(**kw):
        pol = _Keep()
        _, recs = _records(net, pol, measure_from=start, **kw)
        return pol, recs

    pol, recs = run()
    log = pol.history.receipts
    assert set(log) == set(RECEIPT_COLS)
    # the log is the engine's receipts, day by day (launch fills are not orders: not logged)
    for rec in recs:
        r = rec.receipts
        m = r["order_id"] > 0
        day = log["receipt_day"] == rec.t
        assert np.array_equal(np.sort(log["order_id"][day]), np.sort(r["order_id"][m]))
        o = np.argsort(r["order_id"][m])
        got = np.argsort(log["order_id"][day])
        for c_log, c_rec in (
            ("kind", "kind"),
            ("src", "src"),
            ("dest", "dest"),
            ("sku", "sku"),
            ("order_day", "order_day"),
            ("received", "units"),
        ):
            assert np.array_equal(log[c_log][day][got], r[c_rec][m][o]), c_log
    sup = log["kind"] == KIND_SUPPLIER
    assert (log["receipt_day"] > log["order_day"]).all()
    # short shipments: fewer units than ordered, never more; store orders and transfers arrive whole
    assert (log["received"][sup] < log["ordered"][sup]).any() and (log["received"] <= log["ordered"]).all()
    assert (log["received"][~sup] == log["ordered"][~sup]).all()
    # early and late deliveries against the ERP's expected day (supplier lead times are drawn)
    delay = log["receipt_day"] - log["expected_day"]
    assert (delay[sup] > 0).any() and (delay[sup] < 0).any() and (delay[~sup] == 0).all()

    # a closed DC: supplier deliveries due while it is closed are received the day it reopens
    oa, ob = outage.window(start)
    held, _ = run(scenario=outage)
    held_log = held.history.receipts
    due_in = (
        sup
        & (log["dest"] == outage.dc_outage)
        & (log["order_day"] < oa)
        & (log["receipt_day"] >= oa)
        & (log["receipt_day"] < ob)
    )
    assert due_in.any()
    where = {int(o): i for i, o in enumerate(held_log["order_id"])}
    idx = np.array([where[int(o)] for o in log["order_id"][due_in]])
    assert (held_log["receipt_day"][idx] == ob).all()
    assert np.array_equal(held_log["received"][idx], log["received"][due_in])  # same shipment, later
    assert np.array_equal(held_log["expected_day"][idx], log["expected_day"][due_in])  # the ERP still expected it then
    others = sup & (log["dest"] != outage.dc_outage) & (log["order_day"] < oa)
    idx = np.array([where[int(o)] for o in log["order_id"][others]])
    assert np.array_equal(held_log["receipt_day"][idx], log["receipt_day"][others])
    # lead times x2: supplier orders placed on the scenario's first day take twice as long
    a, _ = lt.window(start)
    slow = run(scenario=lt)[0].history.receipts
    first = sup & (log["order_day"] == a)
    assert first.any()
    where = {int(o): i for i, o in enumerate(slow["order_id"])}
    idx = np.array([where[int(o)] for o in log["order_id"][first]])
    assert np.array_equal(slow["receipt_day"][idx] - a, 2 * (log["receipt_day"][first] - a))

    # lead_time_frame: the same receipts as the mart has them (dates, units, lead time and delay)
    f = lead_time_frame(
        held.history, held.t, net.store_ids, net.dc_ids, net.sku_ids, net.suppliers["supplier_id"].to_numpy()
    )
    assert len(f) == int((held_log["received"] > 0).sum())
    f = f.set_index("order_id")
    ids = [f"PO{o:09d}" for o in log["order_id"][due_in]]
    dates = held.history.dates
    assert (f.loc[ids, "received_date"] == dates[ob]).all()
    assert (f.loc[ids, "lead_time_days"].to_numpy() == ob - log["order_day"][due_in]).all()
    assert (f.loc[ids, "lead_time_delay_days"].to_numpy() == ob - log["expected_day"][due_in]).all()
    short = sup & (log["received"] < log["ordered"]) & (log["received"] > 0) & (log["order_day"] < oa)
    ids = [f"PO{o:09d}" for o in log["order_id"][short]]
    assert ids and (f.loc[ids, "units_received"].to_numpy() < f.loc[ids, "units_ordered"].to_numpy()).all()
    assert set(f["order_type"]) == {"supplier", "store_replenishment"}


class _Scripted:
    """Store requests of `store(t)` units and purchase orders of `dc(t)` units for every item, every day."""

    name = "scripted"

    def __init__(self, store, dc):
        self.store, self.dc = store, dc

    def decide(self, obs):
        L, S = obs.store_on_hand.shape
        D = obs.dc_on_hand.shape[0]
        return Orders(store=np.full((L, S), self.store(obs.t)), dc=np.full((D, S), self.dc(obs.t)))


def test_order_stability_accumulators_on_scripted_policies():
    """Constant daily orders have no bullwhip and order every day; orders alternating 0 / 2c (a
    c-unit mean) have variance c^2, so the store bullwhip is sum(c^2) / sum(var demand) and the
    DC's is k^2 / (stores x c)^2 when its purchase orders alternate 0 / 2k in step with the
    requests; no order day follows another."""
    from inventory_pipeline.core.kpis import twin_kpis

    cfg = NetworkConfig(
        regions=1,
        dcs=1,
        stores=2,
        skus=5,
        suppliers=2,
        days=28,
        seed=3,
        burn_in_days=28,
        new_item_share=0.0,
        discontinued_share=0.0,
    )  # every item carried all along
    net = build_network(cfg)
    L, S = 2, 5
    # the DC orders far more than the stores request: it is never short, so every request ships whole
    res, recs = _records(net, _Scripted(lambda t: 1, lambda t: 10))
    assert all((r.dc_shipped == L).all() for r in recs)
    k = twin_kpis(res.store, res.dc, res.measured_days, 0.25)
    assert k["bullwhip_store"] == 0.0 and k["bullwhip_store_median"] == 0.0
    assert np.isnan(k["bullwhip_dc"])  # the requests reaching the DC never varied
    assert k["order_days_share"] == 1.0 and k["consecutive_order_share"] == 1.0 and k["consecutive_po_share"] == 1.0
    assert k["order_lines_per_item_week_store"] == pytest.approx(7.0) and k[
        "order_lines_per_item_week_dc"
    ] == pytest.approx(7.0)
    assert res.store["launched_days"].tolist() == np.full((L, S), 28.0).tolist()

    c, kk = 3, 20
    res, recs = _records(net, _Scripted(lambda t: 2 * c * (t % 2 == 0), lambda t: 2 * kk * (t % 2 == 0)))
    assert all((r.dc_shipped == (2 * c * L if r.t % 2 == 0 else 0)).all() for r in recs)
    demand = np.stack([r.demand for r in recs])  # the 28 measured days (an even number: c^2 exactly)
    k = twin_kpis(res.store, res.dc, res.measured_days, 0.25)
    assert k["bullwhip_store"] == pytest.approx(L * S * c**2 / demand.var(axis=0).sum())
    assert k["bullwhip_store_median"] == pytest.approx(np.median(c**2 / demand.var(axis=0)))
    assert k["bullwhip_dc"] == pytest.approx(kk**2 / (L * c) ** 2) and k["bullwhip_dc_median"] == pytest.approx(
        kk**2 / (L * c) ** 2
    )
    assert k["order_days_share"] == 0.5 and k["consecutive_order_share"] == 0.0 and k["consecutive_po_share"] == 0.0
    assert k["order_lines_per_item_week_store"] == pytest.approx(3.5) and k[
        "order_lines_per_item_week_dc"
    ] == pytest.approx(3.5)


def test_switching_policy_shares_history_up_to_the_switch():
    net = build_network(NetworkConfig(stores=2, skus=6, days=50, seed=4, burn_in_days=7))
    _, a = _records(net, SwitchingPolicy(BaselinePolicy(), BaselinePolicy(safety_days=0), 40))
    _, b = _records(net, BaselinePolicy())
    for ra, rb in zip(a, b):
        if ra.t <= 40:  # decisions of day 40 arrive later, so day 40 itself is still identical
            assert (ra.store_on_hand == rb.store_on_hand).all()
    assert any((ra.store_on_hand != rb.store_on_hand).any() for ra, rb in zip(a, b))


@pytest.fixture(scope="module")
def small_report(tmp_path_factory):
    net = build_network(
        NetworkConfig(regions=1, dcs=1, stores=2, skus=8, suppliers=2, days=100, seed=7, burn_in_days=14)
    )
    ecfg = EvaluationConfig(
        days=21, cadence_days=7, frontier_safety_days=(0.0, 7.0), frontier_service_levels=(0.8, 0.99), jobs=1
    )
    report = evaluate(net, DEFAULT_POLICY_PATH, ecfg)
    out = tmp_path_factory.mktemp("eval")
    return net, report, write_report(report, out)


def test_evaluation_report_has_every_kpi_and_section(small_report):
    net, report, paths = small_report
    k = json.loads(paths["kpis"].read_text())
    need = {
        "stockout_rate",
        "fill_rate",
        "lost_sales_units",
        "carrying_cost",
        "carrying_cost_pct_inventory_value",
        "carrying_cost_pct_revenue",
        "avg_inventory_value",
        "inventory_turns",
        "revenue",
        "gross_margin",
        "wape_h1",
        "mase_h7",
        "mape_h7",
        "orders",
        "transfers",
        "price_changes",
    }
    assert need <= set(k["baseline"]) and need <= set(k["pipeline"]) and need <= set(k["change"])
    assert set(k["by_abc"]) <= {"A", "B", "C"} and "A" in k["by_abc"]
    # the oracle knows the true mean: the floor under both runs' forecasts (the rule's is its moving average)
    for run in ("baseline", "pipeline"):
        assert 0 < k[run]["oracle_wape_h14"] < k[run]["wape_h14"]
        assert k[run]["oracle_wape_sum14"] < k[run]["wape_sum14"]
    assert set(k["by_store"]) == set(net.store_ids)
    fb, fp = k["frontier"]["baseline"], k["frontier"]["pipeline"]
    assert [q["safety_days"] for q in fb] == [0.0, 7.0] and [q["service_level"] for q in fp] == [0.8, 0.99]
    # the headline run uses the policy file's service levels: a point of its own, not on the fixed-level curve
    assert k["frontier"]["pipeline_policy"]["service_level"] == "policy file (cost_optimal)"
    assert k["frontier"]["pipeline_policy"]["avg_inventory_value"] == pytest.approx(
        k["pipeline"]["avg_inventory_value"]
    )
    t = k["frontier"]["targets"]
    assert t["baseline"]["stockout_rate"] == pytest.approx(fb[1]["stockout_rate"])
    assert t["stockout_target_met"] == (t["stockout_reduction_at_baseline_inventory"] >= 0.40)
    # every pipeline run's order and transfer rules re-checked every day: none broken
    assert k["replenishment"]["constraint_violations_total"] == 0 and k["replenishment"]["pipeline_runs"] >= 7
    assert "Replenishment targets and rules" in paths["report"].read_text()
    # more protection holds more stock and loses no more sales (same demand for every point)
    assert fb[0]["avg_inventory_value"] < fb[1]["avg_inventory_value"] and fb[0]["fill_rate"] <= fb[1]["fill_rate"]
    # (the pipeline's order-up-to is monotone in its service level: a property test in test_stages)
    assert set(k["scenarios"]) == {"supplier_lead_time_x2", "demand_surge", "promo_calendar_change", "dc_outage"}
    for p in paths.values():
        assert p.exists() and p.stat().st_size > 0
    assert "Headline KPIs" in paths["report"].read_text()
    # both policies faced the same demand in the same window (at the same prices: when the pipeline
    # prices, its static-price run; a price change moves demand through the elasticity)
    same_prices = k["pricing"]["static"] if k["pricing"]["enabled"] else k["pipeline"]
    assert k["baseline"]["demand_units"] == same_prices["demand_units"]
    assert k["pipeline"]["orders"] > 0 and k["meta"]["pipeline_forecasts_made"] == 3  # 21 days, weekly
    # ABC and store breakdowns add up to the whole
    assert sum(v["baseline"]["demand_units"] for v in k["by_abc"].values()) == k["baseline"]["demand_units"]
    assert sum(v["pipeline"]["lost_sales_units"] for v in k["by_store"].values()) == k["pipeline"]["lost_sales_units"]


def test_evaluation_refuses_a_window_without_enough_history():
    net = build_network(NetworkConfig(stores=2, skus=4, days=60, seed=1, burn_in_days=7))
    with pytest.raises(EvaluationError, match="leaves .* days of history"):
        evaluate(net, DEFAULT_POLICY_PATH, EvaluationConfig(days=30, jobs=1))


def test_a_discontinued_item_with_an_empty_shelf_has_no_demand():
    net = build_network(NetworkConfig(stores=3, skus=12, days=40, seed=5, burn_in_days=14))
    disc = net.sku_discontinue_day + net.config.burn_in_days
    _, recs = _records(net, BaselinePolicy(safety_days=0))
    gone = [r for r in recs if (r.t >= disc).any()]
    assert gone  # SKU 8 is discontinued on day 33 of this network
    for r in gone:
        off = r.t >= disc
        # at the close of a day a delisted cell neither sold nor lost anything once its shelf stayed empty
        empty = (r.start_on_hand[:, off] == 0) & (r.store_on_hand[:, off] == 0) & (r.sales[:, off] == 0)
        assert (r.demand[:, off][empty] == 0).all()


def test_common_random_numbers_for_supply_the_same_order_line_meets_the_same_lead_time_and_short_shipment():
    import pandas

    net = build_network(NetworkConfig(stores=4, skus=20, days=120, seed=11, burn_in_days=14))
    logs = []
    for policy in (BaselinePolicy(), BaselinePolicy(safety_days=2), BaselinePolicy(safety_days=14)):
        seen = {}

        class Keep(type(policy)):
            def decide(self, obs, seen=seen):
                seen["h"] = obs.history
                return super().decide(obs)

        simulate(net, Keep(**policy.__dict__))
        r = seen["h"].receipts
        po = r["kind"] == KIND_SUPPLIER
        logs.append(
            pandas.DataFrame({k: r[k][po] for k in ("dest", "sku", "order_day", "receipt_day", "ordered", "received")})
        )
    a, b, c = logs
    for other in (b, c):
        m = a.merge(other, on=["dest", "sku", "order_day"], suffixes=("_a", "_b"))
        assert len(m) > 20  # the rules ordered the same item at the same DC on the same day often
        # the same lead time, and short-shipped (or not) alike, whatever else each policy ordered
        assert (m["receipt_day_a"] == m["receipt_day_b"]).all()
        assert ((m["received_a"] < m["ordered_a"]) == (m["received_b"] < m["ordered_b"])).all()


class _NoForecast:
    """The rule's orders without its forecast (as a policy that only returns an outbox would)."""

    name = "no forecast"

    def __init__(self):
        self.rule = BaselinePolicy()

    def decide(self, obs):
        return dataclasses.replace(self.rule.decide(obs), forecast=None)


def test_a_policy_without_a_forecast_is_not_scored_on_one():
    """After the switch the policy gives no forecast: no day is scored against it (before, the
    14-day totals were scored against a stale ring), the seasonal naive and the oracle still are."""
    net = build_network(NetworkConfig(stores=2, skus=6, days=80, seed=4, burn_in_days=7))
    # the rule's last forecasts (made on day 39) target days up to 53: the window starts after them
    res = simulate(net, SwitchingPolicy(BaselinePolicy(), _NoForecast(), 40), measure_from=40 + 14)
    assert res.store["fc_hsum14_n"].sum() == 0 and res.store["fc_h1_n"].sum() == 0
    assert res.store["snaive_h1_n"].sum() > 0 and res.store["snaive_hsum14_n"].sum() > 0


def test_expected_demand_puts_each_horizon_on_its_day_and_prices_it():
    from inventory_pipeline.simulation.pipeline_policy import FORECAST_RECORD_DAYS, expected_demand

    fc = pd.DataFrame(
        {
            "location_id": ["S1", "S1", "S2", "S9", "S1"],
            "sku_id": ["A", "A", "B", "A", "A"],
            "horizon": [1, 3, 2, 1, 0],
            "mean": [2.0, 4.0, 5.0, 7.0, 9.0],
        }
    )
    pr = pd.DataFrame({"location_id": ["S1"], "sku_id": ["A"], "demand_multiplier": [0.5]})
    e = expected_demand(fc, pr, {"S1": 0, "S2": 1}, {"A": 0, "B": 1}, (2, 2))
    assert e.shape == (FORECAST_RECORD_DAYS, 2, 2)
    assert e[0, 0, 0] == 1.0 and e[2, 0, 0] == 2.0  # halved by the price's multiplier
    assert e[1, 1, 1] == 5.0  # no recommendation: the forecast as it is
    assert e.sum() == 8.0  # the unknown store and horizon 0 (today) are left out
