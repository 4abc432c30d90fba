"""The inventory floor (simulation/floor.py): the least stock any policy can hold in a window that
starts from a stock it did not choose. A hand-made case, and the bound itself: on a tiny world,
no policy -- the rule at any safety stock, a policy that never buys -- holds less stock (on hand
and in transit between DCs and stores) than the floor on any day of the window."""

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inventory_pipeline.config import DEFAULT_POLICY_PATH
from inventory_pipeline.simulation.engine import simulate
from inventory_pipeline.simulation.evaluation import RunSpec, _build, run_spec, takeover_warmup
from inventory_pipeline.simulation.floor import INTERNAL_KINDS, FloorRecorder, drain_floor
from inventory_pipeline.simulation.policies import BaselinePolicy, SwitchingPolicy
from inventory_pipeline.simulation.regimes import world_config

WINDOW = 56


def test_drain_floor_by_hand():
    """Two items: the first drains, runs dry, and restarts from an inherited delivery; demand met
    from nothing is lost, never owed (the second item does not go negative)."""
    start = np.array([5.0, 0.0])
    arrivals = np.array([[0, 3], [0, 0], [2, 0]])
    demand = np.array([[2, 1], [4, 5], [1, 0]])
    np.testing.assert_array_equal(drain_floor(start, arrivals, demand), [[3, 2], [0, 0], [1, 0]])


@pytest.fixture(scope="module")
def world():
    cfg = world_config("promo_lifecycle", stores=2, skus=8, days=140, seed=202)  # launches: fills count as inherited
    return cfg, _build(cfg)


class _NeverBuys:
    """The rule at the stores, and no purchase order after the takeover: a policy whose stock only drains."""

    name = "never_buys"

    def __init__(self, rule: BaselinePolicy) -> None:
        self.rule = rule

    def decide(self, obs):
        orders = self.rule.decide(obs)
        return replace(orders, dc=np.zeros_like(orders.dc))


class _OwnedStock:
    """A sink: per day from the takeover on, each item's stock at stores and DCs and in transit to stores."""

    def __init__(self, takeover_day: int, floor: FloorRecorder) -> None:
        self.takeover_day, self.floor, self.days = takeover_day, floor, []

    def __call__(self, rec) -> None:
        self.floor(rec)
        if rec.t >= self.takeover_day:
            book = rec.open_orders
            internal = np.isin(book["kind"], INTERNAL_KINDS)
            transit = np.bincount(book["sku"][internal], weights=book["units"][internal], minlength=rec.demand.shape[1])
            self.days.append(rec.store_on_hand.sum(0) + rec.dc_on_hand.sum(0) + transit)


def _run(world, main) -> tuple[np.ndarray, np.ndarray]:
    cfg, net = world
    switch = cfg.burn_in_days + cfg.days - WINDOW
    owned = _OwnedStock(switch, FloorRecorder(switch, len(net.sku_ids)))
    simulate(
        net,
        SwitchingPolicy(takeover_warmup("rule", cfg.review_period_days), main, switch),
        sink=owned,
        measure_from=switch,
    )
    cost = np.asarray(net.unit_cost, float)
    return np.asarray(owned.days) @ cost, owned.floor.daily_value(cost)


@settings(max_examples=8, deadline=None)
@given(safety_days=st.floats(0.0, 21.0))
def test_no_rule_holds_less_than_the_floor(world, safety_days):
    owned, floor = _run(world, BaselinePolicy(review_period_days=world[0].review_period_days, safety_days=safety_days))
    assert len(owned) == len(floor) == WINDOW
    assert np.all(owned >= floor - 1e-6)


def test_a_policy_that_never_buys_sits_near_the_floor(world):
    """Its stock is the floor's plus what its stores could not sell while other stock sat elsewhere:
    at least the floor, and far below the rule's."""
    rule = BaselinePolicy(review_period_days=world[0].review_period_days)
    never, floor = _run(world, _NeverBuys(rule))
    owned_rule, _ = _run(world, rule)
    assert np.all(never >= floor - 1e-6)
    assert owned_rule.mean() > 1.2 * floor.mean()  # the rule buys again inside the window
    assert never.mean() < 0.5 * owned_rule.mean() + 0.5 * floor.mean()  # closer to the floor than to the rule


def test_the_rule_run_reports_its_floor(world):
    cfg, _ = world
    spec = RunSpec(
        "baseline", "baseline", cfg, str(DEFAULT_POLICY_PATH), switch_day=cfg.burn_in_days + cfg.days - WINDOW
    )
    r = run_spec(spec)
    d = r["daily"]
    assert len(r["inventory_floor"]) == len(d) == WINDOW
    assert r["inventory_floor"].mean() < (d["store_inventory_value"] + d["dc_inventory_value"]).mean()
