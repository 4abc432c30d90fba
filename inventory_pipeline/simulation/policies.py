"""Replenishment policies the simulator can run. Every policy sees only what a retailer sees.

`BaselinePolicy` is the rule a retailer runs today (DESIGN.md, KPI baseline):

    avg   = 28-day moving average of observed sales (of store requests, at a DC)
    ROP   = avg x (lead time + review period) + 7 x avg
    OUT   = ROP + 14 x avg
    order = OUT - inventory position, when inventory position <= ROP,
            rounded up to whole case packs (and to the supplier MOQ for DC orders).

One extension, documented: a carried item whose inventory position reaches zero is reordered
up to at least one unit (`min_presentation_units`), otherwise a moving average on censored sales
drops to zero and the item would never come back (the classic death spiral of sales-based rules).
A store delivered weekly (regime `store_delivery_days=7`, `Observation.store_review_days`) uses a
review period of 7 days: what it orders on its order day must last until the next delivery.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd

# reason codes of a price (`Orders.price_reason`, index = code); the twin reports margin per reason
PRICE_REASONS = ("regular", "margin_raise", "margin_cut", "markdown")

# the receipt log's columns (`History.receipts`); `kind` uses the engine's codes: 0 supplier ->
# DC purchase order, 1 DC -> store replenishment, 4 store -> store transfer
RECEIPT_COLS = (
    "order_id",
    "kind",
    "src",
    "dest",
    "sku",
    "order_day",
    "expected_day",
    "receipt_day",
    "ordered",
    "received",
)


class History:
    """What a retailer has observed so far, per day x store x SKU: units sold, end-of-day stock,
    whether the item was carried, the shelf price; and per day x SKU whether it was promoted.
    Arrays cover the whole horizon; rows after the current day are still zero.

    `receipts`: the log of orders received so far (every order of the book: purchase orders,
    store replenishments, transfers; launch fills are not orders and are not logged), one row per
    order line, columns `RECEIPT_COLS` as int64 arrays -- order id, kind, source (supplier
    position for purchase orders, DC position for store replenishments, store position for
    transfers), destination (DC or store position), SKU position, the day it was ordered, the day
    the ERP expected it, the day it was received (a delivery held by a closed DC counts on the day
    it was received, not the day it reached the dock), the units ordered and the units received
    (fewer when the supplier short-shipped). What a retailer learns lead times from."""

    def __init__(self, dates: pd.DatetimeIndex, L: int, S: int) -> None:
        T = len(dates)
        self.dates = dates
        self.sales = np.zeros((T, L, S), dtype=np.int32)
        self.on_hand = np.zeros((T, L, S), dtype=np.int32)
        self.carried = np.zeros((T, L, S), dtype=bool)
        self.price = np.zeros((T, L, S), dtype=np.float32)
        self.promo = np.zeros((T, S), dtype=bool)
        # the receipt log in arrays that double when full (amortised O(1) appends, reads are views)
        self._receipt_buf = {c: np.zeros(0, dtype=np.int64) for c in RECEIPT_COLS}
        self._receipt_n = 0

    def record(self, t: int, sales, on_hand, carried, price, promo) -> None:
        self.sales[t], self.on_hand[t], self.carried[t], self.price[t], self.promo[t] = (
            sales,
            on_hand,
            carried,
            price,
            promo,
        )

    def record_receipts(self, t: int, due: dict) -> None:
        """Log the order lines received on day t. `due`: the engine's order-book arrays (order_id,
        kind, src, dest, sku, order_day, expected_day, ordered; units = what arrived)."""
        k = len(due["order_id"])
        if k == 0:
            return
        n = self._receipt_n
        buf = self._receipt_buf
        if n + k > len(buf["order_id"]):
            cap = max(2 * len(buf["order_id"]), n + k, 1024)
            for c in RECEIPT_COLS:
                grown = np.zeros(cap, dtype=np.int64)
                grown[:n] = buf[c][:n]
                buf[c] = grown
        for c in ("order_id", "kind", "src", "dest", "sku", "order_day", "expected_day", "ordered"):
            buf[c][n : n + k] = due[c]
        buf["receipt_day"][n : n + k] = t
        buf["received"][n : n + k] = due["units"]
        self._receipt_n = n + k

    @property
    def receipts(self) -> dict:
        """The receipt log so far (see the class docstring), in order of receipt day: read-only
        views of the log's arrays."""
        out = {}
        for c in RECEIPT_COLS:
            v = self._receipt_buf[c][: self._receipt_n].view()
            v.flags.writeable = False
            out[c] = v
        return out


@dataclass
class Observation:
    """What a policy may look at on day t after the store closes (never the true demand)."""

    t: int
    date: pd.Timestamp
    store_on_hand: np.ndarray  # (L, S)
    store_on_order: np.ndarray  # (L, S)
    dc_on_hand: np.ndarray  # (D, S)
    dc_on_order: np.ndarray  # (D, S)
    store_sales_ma: np.ndarray  # (L, S) moving average of sales over the window
    dc_requests_ma: np.ndarray  # (D, S) moving average of store requests at the DC
    store_lead_time: np.ndarray  # (L,) DC->store days
    supplier_lead_time: np.ndarray  # (S,) mean days, from the supplier master
    case_pack: np.ndarray  # (S,)
    min_order_qty: np.ndarray  # (S,)
    orderable: np.ndarray  # (S,) launched and not discontinued: suppliers still deliver
    launched: np.ndarray  # (S,) launched: stores may still pull what their DC holds
    history: History | None = None  # sales, stock, prices and promotions up to and including day t
    price_factor: np.ndarray | None = None  # (L, S) today's shelf price / the chain's price
    # weekly store deliveries (regime): days between a store's deliveries, and whether a request
    # placed today ships (lands on the store's delivery weekday); None = every store daily
    store_review_days: np.ndarray | None = None  # (L,)
    store_ships_today: np.ndarray | None = None  # (L,) bool


@dataclass
class Orders:
    store: np.ndarray  # (L, S) units requested from the supplying DC
    dc: np.ndarray  # (D, S) units ordered from suppliers
    transfers: dict | None = None  # arrays sku, src, dest (store positions), units
    price_factor: np.ndarray | None = None  # (L, S) tomorrow's shelf price / the chain's price; None = keep
    forecast: np.ndarray | None = None  # (H, L, S) mean demand the policy expects for days t+1..t+H
    # (L, S) reason code (PRICE_REASONS index) of tomorrow's price; taken where the price changes
    price_reason: np.ndarray | None = None


class Policy(Protocol):
    name: str

    def decide(self, obs: Observation) -> Orders: ...


@dataclass
class SwitchingPolicy:
    """Run `warmup` before absolute day `switch_day`, then `main`: both policies of an
    evaluation share the same history (same demand, same state) up to the switch."""

    warmup: Policy
    main: Policy
    switch_day: int

    @property
    def name(self) -> str:
        return self.main.name

    def decide(self, obs: Observation) -> Orders:
        return (self.main if obs.t >= self.switch_day else self.warmup).decide(obs)


def round_up_to_pack(qty: np.ndarray, case_pack: np.ndarray, moq: np.ndarray | None = None) -> np.ndarray:
    """Round positive quantities up to whole case packs, then up to the MOQ (itself in packs)."""
    qty = np.maximum(np.asarray(qty, dtype=float), 0.0)
    packs = np.ceil(qty / case_pack - 1e-9) * case_pack
    if moq is not None:
        moq_packs = np.ceil(moq / case_pack - 1e-9) * case_pack
        packs = np.where(packs > 0, np.maximum(packs, moq_packs), 0)
    return packs.astype(np.int64)


def baseline_order_quantity(
    avg_daily: np.ndarray,
    lead_time_days: np.ndarray,
    review_period_days: float,
    inventory_position: np.ndarray,
    case_pack: np.ndarray,
    moq: np.ndarray | None = None,
    safety_days: float = 7.0,
    order_up_days: float = 14.0,
    min_presentation_units: float = 1.0,
) -> np.ndarray:
    """The baseline (s, S) rule of DESIGN.md, vectorised over items. Returns units to order."""
    avg = np.maximum(np.asarray(avg_daily, dtype=float), 0.0)
    rop = avg * (lead_time_days + review_period_days) + safety_days * avg
    out = np.maximum(rop + order_up_days * avg, min_presentation_units)
    ip = np.asarray(inventory_position, dtype=float)
    trigger = (ip <= rop) | (ip < min_presentation_units)
    return round_up_to_pack(np.where(trigger, out - ip, 0.0), case_pack, moq)


@dataclass
class BaselinePolicy:
    review_period_days: int = 1
    safety_days: float = 7.0
    order_up_days: float = 14.0
    min_presentation_units: float = 1.0
    name: str = "baseline"
    forecast_days: int = 14

    def decide(self, obs: Observation) -> Orders:
        kw = dict(
            safety_days=self.safety_days,
            order_up_days=self.order_up_days,
            min_presentation_units=self.min_presentation_units,
        )
        # a store delivered weekly reviews weekly: its order must last until the next delivery
        review = self.review_period_days
        if obs.store_review_days is not None:
            review = np.maximum(review, obs.store_review_days)[:, None]
        store = baseline_order_quantity(
            obs.store_sales_ma,
            obs.store_lead_time[:, None],
            review,
            obs.store_on_hand + obs.store_on_order,
            obs.case_pack[None, :],
            **kw,
        )
        dc = baseline_order_quantity(
            obs.dc_requests_ma,
            obs.supplier_lead_time[None, :],
            self.review_period_days,
            obs.dc_on_hand + obs.dc_on_order,
            obs.case_pack[None, :],
            obs.min_order_qty[None, :],
            **kw,
        )
        return Orders(
            store=np.where(obs.launched[None, :], store, 0),
            dc=np.where(obs.orderable[None, :], dc, 0),
            # the rule's forecast is its moving average, flat over every horizon
            forecast=np.broadcast_to(obs.store_sales_ma, (self.forecast_days, *obs.store_sales_ma.shape)),
        )
