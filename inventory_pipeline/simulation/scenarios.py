"""Stress scenarios for the digital twin: what happens to a policy when the world changes.

A scenario is data, not code: a window (days after the measurement start) and what changes in
it. Demand-side changes (a surge, a new promotion calendar) rewrite the network's hidden demand
drivers for every policy alike; supply-side changes (slower suppliers, a closed DC) are applied
by the engine. No policy is told: each sees only sales, stock and open orders, as in real life.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .network import Network


@dataclass(frozen=True)
class Scenario:
    name: str = "base"
    description: str = "no disruption"
    start: int = 0  # first affected day, counted from the measurement start
    days: int = 0  # length of the window
    lead_time_factor: float = 1.0  # supplier orders placed in the window take this much longer
    demand_factor: float = 1.0  # demand multiplier in the window ...
    demand_category: str | None = None  # ... for this category (None: every category)
    promo_shift_days: int = 0  # promotions in the window run this many days later than planned
    extra_promo_category: str | None = None  # an unplanned promotion of this category in the window
    extra_promo_discount: float = 0.20
    dc_outage: int | None = None  # DC position closed in the window: ships nothing, receives nothing

    def window(self, measure_from: int) -> tuple[int, int]:
        """Absolute day range [a, b) of the disruption."""
        a = measure_from + self.start
        return a, a + self.days

    def active(self, t: int, measure_from: int) -> bool:
        a, b = self.window(measure_from)
        return a <= t < b


BASE = Scenario()


def stress_scenarios(network: Network, eval_days: int) -> list[Scenario]:
    """The four stress tests, placed a third into the evaluation window.

    The surge and the unplanned promotion hit the network's largest category by demand, the
    outage its busiest DC, so every scenario bites.
    """
    cats = list(network.config.categories)
    vol = np.bincount(network.sku_category, weights=network.sku_base_rate, minlength=len(cats))
    top_cat = cats[int(np.argmax(vol))]
    dc_load = np.bincount(network.store_dc, weights=network.store_factor, minlength=len(network.dc_ids))
    busiest = int(np.argmax(dc_load))
    s = max(1, eval_days // 3)
    return [
        Scenario(
            "supplier_lead_time_x2",
            "supplier lead times double for 3 weeks (the ERP still expects the usual dates)",
            start=s,
            days=21,
            lead_time_factor=2.0,
        ),
        Scenario(
            "demand_surge",
            f"+60% demand in category {top_cat} for 2 weeks",
            start=s,
            days=14,
            demand_factor=1.6,
            demand_category=top_cat,
        ),
        Scenario(
            "promo_calendar_change",
            f"planned promotions run 7 days late and {top_cat} gets an unplanned 20% promotion, over 4 weeks",
            start=s,
            days=28,
            promo_shift_days=7,
            extra_promo_category=top_cat,
        ),
        Scenario(
            "dc_outage",
            f"{network.dc_ids[busiest]} closed for 3 days: no shipments to stores, no receipts",
            start=s,
            days=3,
            dc_outage=busiest,
        ),
    ]


def apply_demand_side(network: Network, scenario: Scenario, measure_from: int) -> Network:
    """A copy of the network with the scenario's demand-side changes (the original is untouched)."""
    if scenario.demand_factor == 1.0 and not scenario.promo_shift_days and scenario.extra_promo_category is None:
        return network
    a, b = scenario.window(measure_from)
    T = network.price_path.shape[0]
    a, b = max(0, min(a, T)), max(0, min(b, T))
    cats = list(network.config.categories)
    changes = {}
    if scenario.demand_factor != 1.0:
        ev = network.event_mult.copy()
        cols = [cats.index(scenario.demand_category)] if scenario.demand_category else slice(None)
        ev[a:b, cols] *= scenario.demand_factor
        changes["event_mult"] = ev
    if scenario.promo_shift_days or scenario.extra_promo_category is not None:
        promo = network.promo_path.copy()
        k = scenario.promo_shift_days
        if k:
            promo[a:b] = network.promo_path[max(0, a - k) : max(0, b - k)] if a - k >= 0 else promo[a:b]
        discount = network.sku_promo_discount.copy()
        if scenario.extra_promo_category is not None:
            in_cat = network.sku_category == cats.index(scenario.extra_promo_category)
            promo[a:b, in_cat] = True
            discount = np.where(in_cat & ~promo_ever(network), scenario.extra_promo_discount, discount)
        regular = network.regular_price_path
        changes["promo_path"] = promo
        changes["price_path"] = np.where(promo, np.round(regular * (1 - discount[None, :]), 2), regular)
    return dataclasses.replace(network, **changes)


def promo_ever(network: Network) -> np.ndarray:
    return network.promo_path.any(axis=0)
