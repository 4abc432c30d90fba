"""Rebalancing core: store -> store transfers. Hand-checkable cases, the rules
as properties of random small networks, solver trouble, and an M5-size run."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

from inventory_pipeline.core.policy import RebalancingPolicy
from inventory_pipeline.core.rebalancing import (
    TRANSFER_COLUMNS,
    plan_transfers,
    transfer_violations,
)

DAY = "2025-03-10"
Z95 = stats.norm.ppf(0.95)


def _loss(y, mu, sigma):
    """E[(D - y)^+], D ~ N(mu, sigma), computed here independently of the core."""
    y, mu, sigma = np.broadcast_arrays(*(np.asarray(a, float) for a in (y, mu, sigma)))
    spread = sigma > 1e-12  # below: a point mass at mu
    s = np.where(spread, sigma, 1.0)
    k = (y - mu) / s
    return np.where(spread, s * (stats.norm.pdf(k) - k * stats.norm.sf(k)), np.maximum(mu - y, 0.0))


def _row(loc, sku="A", on_hand=0, on_order=0, mu=10.0, sigma=3.0, P=3, L=2, rop=None, sc=5.0, band=0.0):
    rop = mu + Z95 * sigma if rop is None else rop
    return dict(
        location_id=loc,
        sku_id=sku,
        on_hand=on_hand,
        on_order=on_order,
        mu_daily=mu / P,
        mu_P=mu,
        sigma_P=sigma,
        protection_days=P,
        lead_time_days=L,
        reorder_point=rop,
        order_up_to=rop + band,
        service_level=0.95,
        unit_cost=2.0,
        unit_price=4.0,
        shortage_cost=sc,
        holding_cost_daily=0.002,
    )


def _locations(regions: dict[str, str], capacity=100_000):
    rows = [
        dict(location_id=s, location_type="store", region=r, supplying_dc_id=f"DC_{r}", capacity_units=capacity)
        for s, r in regions.items()
    ]
    rows += [
        dict(location_id=f"DC_{r}", location_type="dc", region=r, supplying_dc_id=None, capacity_units=10**7)
        for r in sorted(set(regions.values()))
    ]
    return pd.DataFrame(rows)


def _lanes(*rows):
    """(from, to, lead time, cost) store lanes, plus DC->store lanes that are never transfer lanes."""
    dc = [("DC_R1", s, 2, 0.05) for s in ("S1", "S2", "S3")]
    return pd.DataFrame(
        list(rows) + dc, columns=["from_location_id", "to_location_id", "lead_time_days", "cost_per_unit"]
    )


LOC = _locations({"S1": "R1", "S2": "R1", "S3": "R1"})
EXACT = RebalancingPolicy(min_transfer_units=1, pwl_breakpoints=50)  # a breakpoint per unit: the curves are exact


def _planned(targets, lanes, cfg=EXACT, locations=LOC, orders=None):
    plan = plan_transfers(pd.DataFrame(targets), lanes, locations, DAY, cfg, orders=orders)
    v = transfer_violations(plan.transfers, pd.DataFrame(targets), lanes, cfg, orders=orders)
    assert v.empty, v
    return plan


def _plan(targets, lanes, cfg=EXACT, locations=LOC, orders=None):
    return _planned(targets, lanes, cfg, locations, orders).transfers


# ---- hand-checkable cases -------------------------------------------------------------------


def test_one_donor_one_receiver_moves_every_unit_worth_its_lane_cost():
    # S1 holds 40, needs ceil(10 + 1.645 x 3) = 15: 25 spare. S2 holds 2 of that need.
    # unit k lifts S2 from 1 + k to 2 + k and saves 5 x (LS(1 + k) - LS(2 + k)) expected lost sales;
    # at a lane cost of 1.0 the units worth sending are those saving more than 1.0
    targets = [_row("S1", on_hand=40), _row("S2", on_hand=2)]
    out = _plan(targets, _lanes(("S1", "S2", 1, 1.0)))
    k = np.arange(1, 14)
    worth = 5.0 * (_loss(1 + k, 10, 3) - _loss(2 + k, 10, 3)) > 1.0
    expected = int(worth.sum())
    assert expected == 11  # the 12th unit would save 5 x (LS(13) - LS(14)) = 0.83 < 1.0
    assert len(out) == 1
    line = out.iloc[0]
    assert (line["from_location_id"], line["to_location_id"], line["units"]) == ("S1", "S2", expected)
    assert line["binding_constraint"] == "marginal_value"
    assert line["ship_date"] == pd.Timestamp("2025-03-11") and line["expected_date"] == pd.Timestamp("2025-03-12")
    saved = _loss(2, 10, 3) - _loss(2 + expected, 10, 3)
    assert line["expected_shortage_saved"] == pytest.approx(saved, rel=1e-6)
    assert line["transfer_cost"] == pytest.approx(expected * 1.0)
    assert line["net_value"] > 0
    assert "S1" in line["rationale"] and "S2" in line["rationale"] and f"move {expected}" in line["rationale"]
    assert list(out.columns[: len(TRANSFER_COLUMNS)]) == TRANSFER_COLUMNS


def test_a_cheap_lane_fills_the_receiver_to_its_need():
    out = _plan([_row("S1", on_hand=40), _row("S2", on_hand=2)], _lanes(("S1", "S2", 1, 0.1)))
    assert out["units"].tolist() == [13] and out["binding_constraint"].iloc[0] == "receiver_need"
    assert out["receiver_position_after"].iloc[0] == 15


def test_no_transfer_when_the_lane_costs_more_than_the_shortage_it_saves():
    # a unit can save at most its shortage cost (5.0): a 6.0 lane never pays
    plan = _planned([_row("S1", on_hand=40), _row("S2", on_hand=0)], _lanes(("S1", "S2", 1, 6.0)))
    out = plan.transfers
    assert out.empty and plan.summary["status"] == "no_candidates"


def test_no_transfer_without_a_lane_or_across_regions():
    targets = [_row("S1", on_hand=40), _row("S2", on_hand=0)]
    assert _plan(targets, _lanes(("S2", "S1", 1, 0.1))).empty  # only the opposite direction exists
    two_regions = _locations({"S1": "R1", "S2": "R2", "S3": "R1"})
    assert _plan(targets, _lanes(("S1", "S2", 1, 0.1)), locations=two_regions).empty
    assert not _plan(targets, _lanes(("S1", "S2", 1, 0.1))).empty  # the same lane inside a region


def test_no_transfer_on_a_lane_no_faster_than_the_receivers_next_replenishment():
    # S2's protection period is 3 days (lead time 2 + review 1): a 3-day transfer arrives with the
    # next replenishment it can order itself
    targets = [_row("S1", on_hand=40), _row("S2", on_hand=0, P=3)]
    assert _plan(targets, _lanes(("S1", "S2", 3, 0.1))).empty
    assert _plan(targets, _lanes(("S1", "S2", 2, 0.1)))["units"].sum() > 0


def test_minimum_transfer_quantity():
    # S2 lacks one unit of its need (14 of 15)
    targets = [_row("S1", on_hand=40), _row("S2", on_hand=14)]
    lanes = _lanes(("S1", "S2", 1, 0.0))
    assert _plan(targets, lanes, RebalancingPolicy(min_transfer_units=2)).empty
    one = _plan(targets, lanes, RebalancingPolicy(min_transfer_units=1))
    assert one["units"].tolist() == [1]
    # two donors with 2 spare each could fill a gap of 5 with two lines of 2, which a minimum of 3 forbids
    targets = [_row("S1", on_hand=17), _row("S3", on_hand=17), _row("S2", on_hand=10)]
    lanes = _lanes(("S1", "S2", 1, 0.0), ("S3", "S2", 1, 0.0))
    assert _plan(targets, lanes, RebalancingPolicy(min_transfer_units=3)).empty
    assert _plan(targets, lanes, RebalancingPolicy(min_transfer_units=2))["units"].tolist() == [2, 2]


def test_a_donor_is_never_pushed_below_its_need_nor_past_its_on_hand():
    # S1 needs 15 and holds 17 (2 spare); S2 lacks 13
    out = _plan([_row("S1", on_hand=17), _row("S2", on_hand=2)], _lanes(("S1", "S2", 1, 0.0)))
    assert out["units"].tolist() == [2] and out["donor_position_after"].iloc[0] == 15
    assert out["binding_constraint"].iloc[0] == "donor_excess"
    # stock on order is not stock on hand: S1 can only give the 3 it holds
    out = _plan([_row("S1", on_hand=3, on_order=40), _row("S2", on_hand=0)], _lanes(("S1", "S2", 1, 0.0)))
    assert out["units"].tolist() == [3]


def test_todays_replenishment_counts_as_arriving():
    targets = [_row("S1", on_hand=40), _row("S2", on_hand=2)]
    orders = pd.DataFrame(
        {
            "decision_type": ["store_replenishment", "purchase_order"],
            "location_id": ["S2", "DC_R1"],
            "sku_id": ["A", "A"],
            "units": [13, 500],
        }
    )
    assert _plan(targets, _lanes(("S1", "S2", 1, 0.1)), orders=orders).empty
    orders.loc[0, "units"] = 10  # 3 short of the need
    assert _plan(targets, _lanes(("S1", "S2", 1, 0.1)), orders=orders)["units"].tolist() == [3]


def test_the_cheaper_donor_gives_first():
    # S1 has 5 spare on a 0.1 lane, S3 25 on a 0.5 lane; S2 lacks 13. S1's 5 go first (each saves
    # more than 0.5), then S3 sends the units that still save more than 0.5 each
    targets = [_row("S1", on_hand=20), _row("S3", on_hand=40), _row("S2", on_hand=2)]
    out = _plan(targets, _lanes(("S1", "S2", 1, 0.1), ("S3", "S2", 1, 0.5)))
    by = out.set_index("from_location_id")["units"]
    k = np.arange(1, 9)  # S3's k-th unit lifts S2 from 6 + k to 7 + k
    from_s3 = int((5.0 * (_loss(6 + k, 10, 3) - _loss(7 + k, 10, 3)) > 0.5).sum())
    assert by["S1"] == 5 and from_s3 == 7 and by["S3"] == from_s3


def test_line_cap_and_store_capacity():
    targets = [_row("S1", on_hand=40), _row("S2", on_hand=2)]
    capped = _plan(targets, _lanes(("S1", "S2", 1, 0.1)), RebalancingPolicy(min_transfer_units=1, max_units_per_line=5))
    assert capped["units"].tolist() == [5] and capped["binding_constraint"].iloc[0] == "max_units_per_line"
    # S2 may hold 10 units in all (it holds 2; S1's 40 do not count): 8 more at most
    small = _locations({"S1": "R1", "S2": "R1", "S3": "R1"}).assign(capacity_units=[100, 10, 100, 0])
    out = _plan(targets, _lanes(("S1", "S2", 1, 0.1)), locations=small)
    assert out["units"].tolist() == [8] and out["binding_constraint"].iloc[0] == "store_capacity"


def test_disabled_stage_proposes_nothing_and_says_so():
    plan = _planned(
        [_row("S1", on_hand=40), _row("S2", on_hand=2)], _lanes(("S1", "S2", 1, 0.1)), RebalancingPolicy(enabled=False)
    )
    out = plan.transfers
    assert out.empty and plan.summary["status"] == "disabled"
    assert list(out.columns[: len(TRANSFER_COLUMNS)]) == TRANSFER_COLUMNS


# ---- solver trouble -------------------------------------------------------------------------


def _failing_solve(status=None, exc=None, only_mip=False):
    import cvxpy as cp

    real = cp.Problem.solve

    def solve(self, *a, **k):
        if only_mip and not self.is_mixed_integer():
            return real(self, *a, **k)
        if exc is not None:
            raise exc
        self._status = status
        return None

    return solve


def _one_lane_plan():
    """S1 holds 40, S2 holds 2, one lane S1 -> S2 (1 day, 0.10 a unit)."""
    return _planned(
        [_row("S1", on_hand=40), _row("S2", on_hand=2)],
        _lanes(("S1", "S2", 1, 0.1)),
        RebalancingPolicy(min_transfer_units=2),
    )


def test_solver_error_gives_no_transfers_and_a_reason(monkeypatch):
    import cvxpy as cp

    monkeypatch.setattr(cp.Problem, "solve", _failing_solve(exc=cp.error.SolverError("HiGHS crashed")))
    plan = _one_lane_plan()
    s = plan.summary
    assert plan.transfers.empty and s["status"] == "solver_failed" and "HiGHS crashed" in s["reason"]


def test_infeasible_answer_gives_no_transfers_and_a_reason(monkeypatch):
    import cvxpy as cp

    monkeypatch.setattr(cp.Problem, "solve", _failing_solve(status="infeasible"))
    plan = _one_lane_plan()
    s = plan.summary
    assert plan.transfers.empty and s["status"] == "solver_failed" and "infeasible" in s["reason"]


def test_a_failed_milp_falls_back_to_the_rounded_lp_relaxation(monkeypatch):
    import cvxpy as cp

    monkeypatch.setattr(cp.Problem, "solve", _failing_solve(status="user_limit", only_mip=True))
    plan = _one_lane_plan()
    out, s = plan.transfers, plan.summary
    assert s["status"] == "ok" and s["method"] == "lp_relaxation" and "fell back" in s["reason"]
    assert out["units"].tolist() == [13] and out["binding_constraint"].iloc[0].endswith("+lp_relaxation")


def test_size_guard_solves_the_lp_relaxation_and_says_so():
    targets = [_row("S1", on_hand=40), _row("S3", on_hand=20), _row("S2", on_hand=2)]
    lanes = _lanes(("S1", "S2", 1, 0.1), ("S3", "S2", 1, 0.1))
    plan = _planned(targets, lanes, RebalancingPolicy(min_transfer_units=2, milp_max_variables=1))  # 2 binaries > 1
    out = plan.transfers
    s = plan.summary
    assert s["method"] == "lp_relaxation" and s["binaries"] == 0 and "milp_max_variables" in s["reason"]
    assert (out["units"] >= 2).all() and out["rationale"].str.contains("LP relaxation").all()
    assert out["units"].sum() == 13


# ---- the checker ----------------------------------------------------------------------------


def test_checker_flags_every_broken_rule():
    targets = pd.DataFrame([_row("S1", on_hand=20), _row("S2", on_hand=2), _row("S3", on_hand=2)])
    lanes = _lanes(("S1", "S2", 1, 0.1), ("S2", "S3", 1, 0.1), ("S1", "S3", 5, 0.1))
    bad = pd.DataFrame(
        {
            "sku_id": "A",
            "from_location_id": ["S1", "S1", "S2", "S3", "S1"],
            "to_location_id": ["S2", "S3", "S3", "S1", "S1"],
            "units": [9, 1, 2, -1, 1.5],
            "lead_time_days": [1, 5, 1, 1, 1],
        }
    )
    v = transfer_violations(bad, targets, lanes, RebalancingPolicy(min_transfer_units=2))
    rules = set(v["rule"])
    assert {
        "units_positive_integer",
        "min_transfer_units",
        "lane",
        "lane_too_slow",
        "donor_below_need",
        "sends_and_receives",
    } <= rules
    # S1 sends 9 + 1 + 1.5 with 5 spare above its need of 15; S2 sends while short itself
    assert {"S1", "S2"} <= set(v.loc[v["rule"] == "donor_below_need", "from_location_id"])
    assert transfer_violations(bad.iloc[:0], targets, lanes).empty
    over = pd.DataFrame(
        {"sku_id": "A", "from_location_id": ["S1"], "to_location_id": ["S2"], "units": [3], "lead_time_days": [1]}
    )
    assert (
        transfer_violations(over, targets.assign(on_hand=[2, 2, 2], on_order=[40, 0, 0]), lanes)["rule"]
        .eq("donor_on_hand")
        .any()
    )


# ---- config -----------------------------------------------------------------------------------


def test_config_validation_and_policy_section(tmp_path):
    from inventory_pipeline.config import DEFAULT_POLICY_PATH
    from inventory_pipeline.core.policy import PolicyError, load_policy

    with pytest.raises(ValueError, match="min_transfer_units"):
        RebalancingPolicy(min_transfer_units=0)
    with pytest.raises(ValueError, match="max_units_per_line"):
        RebalancingPolicy(min_transfer_units=5, max_units_per_line=3)
    cfg = load_policy(DEFAULT_POLICY_PATH).rebalancing  # the stage's config is the policy's section
    assert cfg.enabled and cfg.min_transfer_units >= 1
    p = tmp_path / "p.yaml"
    p.write_text('version: "t"\nrebalancing:\n  min_transfer_units: 4\n  max_units_per_line: 2\n')
    with pytest.raises(PolicyError, match="max_units_per_line"):
        load_policy(p)
    p.write_text('version: "t"\nrebalancing:\n  min_transfer_units: 4\n  milp_max_variables: 10\n  enabled: false\n')
    cfg = load_policy(p).rebalancing
    assert (cfg.min_transfer_units, cfg.milp_max_variables, cfg.enabled) == (4, 10, False)


# ---- properties on random small networks -------------------------------------------------------


@st.composite
def networks(draw):
    """2-5 stores (mostly one region), 1-4 SKUs, a random set of lanes; stock drawn relative to the
    need (empty, short, about right, overstocked) so that most draws have something to move."""
    n = draw(st.integers(2, 5))
    stores = [f"S{i + 1}" for i in range(n)]
    region = {s: draw(st.sampled_from(["R1", "R1", "R2"])) for s in stores}
    skus = [f"K{j}" for j in range(draw(st.integers(1, 4)))]
    pairs = [(a, b) for a in stores for b in stores if a != b]
    chosen = draw(st.lists(st.sampled_from(pairs), unique=True, min_size=1, max_size=len(pairs)))
    lanes = pd.DataFrame(
        [(a, b, draw(st.integers(0, 3)), draw(st.floats(0, 3).map(lambda x: round(x, 2)))) for a, b in chosen],
        columns=["from_location_id", "to_location_id", "lead_time_days", "cost_per_unit"],
    )
    rows = []
    for s in stores:
        for k in skus:
            mu = draw(st.floats(0, 30))
            sigma = draw(st.floats(0, 10))
            P = draw(st.integers(1, 5))
            rop = mu + draw(st.floats(0, 2.5)) * sigma
            stock = int(rop * draw(st.sampled_from([0.0, 0.3, 0.8, 1.0, 1.3, 2.0, 4.0]))) + draw(st.integers(0, 3))
            on_order = draw(st.integers(0, stock))
            rows.append(
                _row(
                    s,
                    k,
                    on_hand=stock - on_order,
                    on_order=on_order,
                    mu=mu,
                    sigma=sigma,
                    P=P,
                    L=max(P - 1, 0),
                    rop=rop,
                    sc=draw(st.floats(0, 10)),
                )
            )
    targets = pd.DataFrame(rows)
    orders = None
    if draw(st.booleans()):
        pick = targets.sample(frac=0.5, random_state=draw(st.integers(0, 1000)))
        orders = pd.DataFrame(
            {
                "decision_type": "store_replenishment",
                "location_id": pick["location_id"],
                "sku_id": pick["sku_id"],
                "units": draw(st.integers(1, 10)),
            }
        )
    cap = draw(st.sampled_from([0, 50, 10**6]))  # 0: no capacity given
    cfg = RebalancingPolicy(
        min_transfer_units=draw(st.integers(1, 4)),
        max_units_per_line=draw(st.sampled_from([0, 5])),
        pwl_breakpoints=draw(st.integers(1, 8)),
        milp_max_variables=draw(st.sampled_from([0, 10_000])),
    )
    if 0 < cfg.max_units_per_line < cfg.min_transfer_units:
        cfg = RebalancingPolicy(
            min_transfer_units=cfg.min_transfer_units,
            pwl_breakpoints=cfg.pwl_breakpoints,
            milp_max_variables=cfg.milp_max_variables,
        )
    return targets, lanes, _locations(region, capacity=cap), orders, cfg


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(networks())
def test_transfer_rules_hold_on_random_networks(net):
    targets, lanes, locations, orders, cfg = net
    plan = plan_transfers(targets, lanes, locations, DAY, cfg, orders=orders)
    out = plan.transfers
    assert plan.summary["status"] in ("ok", "no_candidates")
    assert transfer_violations(out, targets, lanes, cfg, orders=orders).empty
    if out.empty:
        return
    # integral, positive, at least the minimum
    assert out["units"].dtype.kind == "i" and (out["units"] >= cfg.min_transfer_units).all()
    # positions, recomputed here
    key = ["location_id", "sku_id"]
    t = targets.set_index(key)
    today = (
        (orders.groupby(key)["units"].sum() if orders is not None else pd.Series(dtype=float))
        .reindex(t.index)
        .fillna(0)
    )
    pos = t["on_hand"] + t["on_order"] + today
    need = np.ceil(t["reorder_point"] - 1e-9).clip(lower=0)
    sent = out.groupby(["from_location_id", "sku_id"])["units"].sum().rename_axis(key)
    got = out.groupby(["to_location_id", "sku_id"])["units"].sum().rename_axis(key)
    # conservation: a donor sends at most what it holds; every unit sent is received
    assert (sent <= t["on_hand"].reindex(sent.index)).all()
    assert sent.sum() == got.sum() == out["units"].sum()
    # no donor below its need; no store both sends and receives a SKU
    assert (pos.reindex(sent.index) - sent >= need.reindex(sent.index)).all()
    assert not set(sent.index) & set(got.index)
    # along lanes inside a region, faster than the receiver's next replenishment
    reg = locations.set_index("location_id")["region"]
    assert (out["from_location_id"].map(reg) == out["to_location_id"].map(reg)).all()
    prot = t["protection_days"].reindex(pd.MultiIndex.from_frame(out[["to_location_id", "sku_id"]])).to_numpy()
    assert (out["lead_time_days"].to_numpy() < prot).all()
    # the value: every line saves more than it costs, and so does the plan, valued here
    assert (out["net_value"] > 0).all() and (out["expected_cost_saved"] > out["transfer_cost"]).all()
    r = t.loc[got.index]
    d = t.loc[sent.index]
    yr, yd = pos.loc[got.index].to_numpy(), pos.loc[sent.index].to_numpy()
    gain = (
        r["shortage_cost"].to_numpy()
        * (_loss(yr, r["mu_P"], r["sigma_P"]) - _loss(yr + got.to_numpy(), r["mu_P"], r["sigma_P"]))
    ).sum()
    pain = (
        d["shortage_cost"].to_numpy()
        * (_loss(yd - sent.to_numpy(), d["mu_P"], d["sigma_P"]) - _loss(yd, d["mu_P"], d["sigma_P"]))
    ).sum()
    cost = (out["units"] * out["cost_per_unit"]).sum()
    assert gain - pain - cost > 0
    assert gain - pain - cost == pytest.approx(out["net_value"].sum(), rel=1e-6, abs=1e-6)


# ---- M5 size ------------------------------------------------------------------------------------


def m5_size_frames(seed: int = 0, skus: int = 3049):
    """10 stores in 3 regions (4, 3, 3) x 3,049 SKUs: 30,490 store x SKUs, ~15% short, ~25% overstocked."""
    rng = np.random.default_rng(seed)
    regions = {"CA": 4, "TX": 3, "WI": 3}
    stores = {f"{r}_{i + 1}": r for r, n in regions.items() for i in range(n)}
    locations = _locations(stores)
    lanes = pd.DataFrame(
        [
            (a, b, int(rng.integers(1, 3)), round(float(rng.uniform(0.1, 0.6)), 2))
            for a in stores
            for b in stores
            if a != b and stores[a] == stores[b]
        ],
        columns=["from_location_id", "to_location_id", "lead_time_days", "cost_per_unit"],
    )
    n = len(stores) * skus
    mu_d = rng.lognormal(0, 1.2, n) * 0.5
    mu_P = mu_d * 3
    sigma_P = np.sqrt(mu_P) * 1.2 + 0.1
    rop = mu_P + Z95 * sigma_P
    state = rng.choice(3, n, p=[0.6, 0.25, 0.15])  # balanced, overstocked, short
    on_hand = np.floor(
        rop
        * np.select(
            [state == 0, state == 1], [rng.uniform(1.0, 1.5, n), rng.uniform(1.5, 4, n)], rng.uniform(0, 0.7, n)
        )
    )
    price = np.tile(rng.uniform(1, 20, skus), len(stores))
    targets = pd.DataFrame(
        dict(
            location_id=np.repeat(list(stores), skus),
            sku_id=np.tile([f"SKU{i:05d}" for i in range(skus)], len(stores)),
            on_hand=on_hand,
            on_order=0.0,
            mu_daily=mu_d,
            mu_P=mu_P,
            sigma_P=sigma_P,
            protection_days=3,
            lead_time_days=2,
            reorder_point=rop,
            order_up_to=rop + mu_d,
            service_level=0.95,
            unit_cost=price * 0.6,
            unit_price=price,
            shortage_cost=price * 0.4,
            holding_cost_daily=price * 0.6 * 0.25 / 365,
        )
    )
    return targets, lanes, locations


def test_m5_size_network_plans_in_one_problem():
    targets, lanes, locations = m5_size_frames()
    assert len(targets) == 30_490
    cfg = RebalancingPolicy(min_transfer_units=2)
    plan = plan_transfers(targets, lanes, locations, DAY, cfg)
    out = plan.transfers
    s = plan.summary
    assert s["status"] == "ok" and s["method"] == "milp" and s["skus_solved"] > 500 and len(out) > 500
    assert transfer_violations(out, targets, lanes, cfg).empty
    assert (out["net_value"] > 0).all()


def test_a_donor_keeps_its_order_up_to_level():
    # s = 14.93 -> 15, S = s + 10 -> 25: a donor with 30 on hand can give 5, not 15
    targets = [_row("S1", on_hand=30, band=10.0), _row("S2", on_hand=0, band=10.0)]
    tr = _plan(targets, _lanes(("S1", "S2", 1, 0.0)))
    assert tr["units"].sum() == 5 and tr["donor_need"].iloc[0] == 25
    assert transfer_violations(tr, pd.DataFrame(targets), _lanes(("S1", "S2", 1, 0.0))).empty
    # a line that takes the donor below S is a violation
    bad = tr.assign(units=8)
    assert "donor_below_need" in set(
        transfer_violations(bad, pd.DataFrame(targets), _lanes(("S1", "S2", 1, 0.0)))["rule"]
    )
