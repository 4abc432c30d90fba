"""The inventory floor of an evaluation window: the least stock any policy can hold at regular prices.

A window that starts from a takeover starts every policy from the same stock: on hand at the
stores and DCs, in transit between them, and the purchase orders the warm-up placed, which arrive
whatever the new policy does. A policy's own orders can only add to that; stock leaves only by
sales; and the network's sales of an item never exceed the network's demand for it. So, per item
and day, with `a_t` the inherited purchase orders and launch fills arriving on day t and `d_t` the
network's demand,

    x_t = max(0, x_{t-1} + a_t - d_t)

is below every policy's stock `y_t`: by induction `y_t >= y_{t-1} + a_t - d_t >= x_{t-1} + a_t - d_t`
and `y_t >= 0`. `x` is the stock of a policy that never buys again and sells every unit asked for
while it lasts. Its average value over the window is the deepest cut of average inventory any
policy can make there: what the window can show of a policy's inventory, and what it only shows
of the stock the policy took over (docs/evaluation.md, "The inventory floor").

Two caveats, both small and stated where the floor is reported: the twin's inventory value counts
stock on hand, not the one to three days of DC-to-store transit the floor counts as held; and the
demand is the rule run's, at regular prices (a markdown raises demand and can sell below the
floor, which the targets forbid for stock that sells through at the regular price).
"""

from __future__ import annotations

import numpy as np

from .engine import KIND_LAUNCH_DC, KIND_LAUNCH_STORE, KIND_STORE, KIND_SUPPLIER, KIND_TRANSFER, DayRecord

INTERNAL_KINDS = (KIND_STORE, KIND_TRANSFER)  # owned stock on its way from a DC or a store to a store
FILL_KINDS = (KIND_LAUNCH_DC, KIND_LAUNCH_STORE)  # planogram fills of a launch: outside any policy


def drain_floor(start: np.ndarray, arrivals: np.ndarray, demand: np.ndarray) -> np.ndarray:
    """Per day and item, the stock of a network that starts with `start` (S,), receives
    `arrivals` (T, S), never buys and meets `demand` (T, S) while it has stock (module docstring).
    Vectorised over items; the loop is over the window's days."""
    x = np.asarray(start, dtype=float).copy()
    out = np.empty(np.shape(demand), dtype=float)
    for t in range(out.shape[0]):
        x = np.maximum(0.0, x + arrivals[t] - demand[t])
        out[t] = x
    return out


def _per_sku(sku: np.ndarray, units: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(sku, weights=units, minlength=n).astype(float)


class FloorRecorder:
    """A `simulate` sink that records what the floor needs: the stock owned at the end of the day
    before `takeover_day` (when the new policy decides first) with the purchase orders then open,
    and from the takeover on each day's launch fills and network demand."""

    def __init__(self, takeover_day: int, n_skus: int) -> None:
        self.takeover_day, self.n = takeover_day, n_skus
        self.start: np.ndarray | None = None
        self._orders: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # arrival day, sku, units
        self._days: list[int] = []
        self._fills: list[np.ndarray] = []
        self._demand: list[np.ndarray] = []

    def __call__(self, rec: DayRecord) -> None:
        if rec.t == self.takeover_day - 1:
            book = rec.open_orders
            internal = np.isin(book["kind"], INTERNAL_KINDS)
            self.start = (
                rec.store_on_hand.sum(axis=0)
                + rec.dc_on_hand.sum(axis=0)
                + _per_sku(book["sku"][internal], book["units"][internal], self.n)
            )
            sup = book["kind"] == KIND_SUPPLIER
            self._orders = (book["arrival_day"][sup], book["sku"][sup], book["units"][sup])
        elif rec.t >= self.takeover_day and self.start is not None:
            fill = np.isin(rec.receipts["kind"], FILL_KINDS)
            self._days.append(rec.t)
            self._fills.append(_per_sku(rec.receipts["sku"][fill], rec.receipts["units"][fill], self.n))
            self._demand.append(rec.demand.sum(axis=0).astype(float))

    def daily_value(self, unit_cost: np.ndarray) -> np.ndarray:
        """The floor's stock at cost on each recorded day from the takeover on (empty before it)."""
        if self.start is None or not self._days:
            return np.zeros(0)
        days = np.asarray(self._days)
        arrival, sku, units = self._orders
        slot = np.searchsorted(days, arrival)  # the recorded day each inherited order lands on
        arrivals = np.zeros((len(days) + 1, self.n))  # the last row: due after the window
        np.add.at(arrivals, (slot, sku), units)
        arrivals = arrivals[:-1] + np.asarray(self._fills)
        return drain_floor(self.start, arrivals, np.asarray(self._demand)) @ np.asarray(unit_cost, dtype=float)
