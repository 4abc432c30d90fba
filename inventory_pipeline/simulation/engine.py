"""The digital twin: a store network simulated day by day under a policy.

Each day t:
  0. new items get their launch fill;
  1. orders due today arrive (suppliers -> DCs, DCs -> stores, store -> store transfers) and are
     logged as receipts (a closed DC receives nothing until it reopens), also in the observed
     history's receipt log (`History.receipts`: order and expected day, receipt day, units ordered
     and received -- what observed lead times are estimated from);
  2. demand is drawn (common random numbers, see demand.py) and served from store stock; unmet
     demand is lost (a discontinued item whose shelf is empty is delisted: nobody asks for it);
  3. the policy sees what a retailer sees -- sales, stock, open orders, prices, the observed
     history (never the true demand) -- and decides store requests, purchase orders, transfers,
     tomorrow's price factors, and (optionally) the forecast it acted on;
  4. decisions are executed: DCs ship store requests (a short DC allocates in proportion to the
     requests; a closed DC ships nothing), transfers leave the donor store (at most its stock,
     only along lanes), purchase orders go to suppliers whose real lead time is drawn from
     N(mean, std) (times a scenario factor; the draw of an order line comes from a stream keyed
     by (seed, day) and read at its DC x SKU cell, so every policy meets the same supply luck)
     while the ERP records the expected date from the mean,
     and some suppliers short-ship. Regimes (regimes.py): under weekly store deliveries a store's
     request ships only on the day that lands it on the store's delivery weekday (requests of
     other days are dropped: the store orders on its day); unreliable suppliers draw the real
     lead time around a true mean the master may understate, with a late tail;
  5. the end-of-day state is recorded (KPI accumulators from `measure_from` on, the observed
     history, optional day records for a sink such as the landing-zone writer).

Overstock (a KPI, never shown to the policy): units a store holds above `OVERSTOCK_WEEKS` (8)
weeks of supply, max(0, on_hand_end - 7 x 8 x mu), where mu is the demand the twin knows is
expected for that store x SKU: the demand model's true mean daily demand at the prices in force
each day (promotions, seasonality and scenario effects included), averaged over the trailing
`MA_WINDOW` (28) days up to and including today -- only days since the item's launch count, so a
new item is not judged against the zeros before it existed. Trailing, not forward-looking: the
yardstick is the demand the stock has just been facing, and it does not reward a policy for
stock that a later promotion happens to clear. Accumulated per store x SKU over measured days in
units and at unit cost (`overstock_units_days`, `overstock_value_days`). The same per DC x SKU
for the network behind the DC (`res.dc`): the DC's stock plus its stores', against the sum of its
stores' expected demand -- stock stuck at a DC is overstock too.

Margin by price reason: a policy may tag tomorrow's prices with reason codes (`Orders.price_reason`,
`policies.PRICE_REASONS`); where the price in force changes the store x SKU takes the new reason,
elsewhere the reason persists (every price starts "regular"). Over measured days the engine sums
revenue, cost of goods, units sold and carried store x SKU days per reason of the price in force
that day: `res.extra["margin_by_reason"] = {reason: {"revenue", "cogs", "units", "store_sku_days"}}`.

Everything is vectorised over SKU x location; the only Python loop is over days.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..core.kpis import overstock
from .demand import DemandModel
from .network import Network, day_dates
from .policies import PRICE_REASONS, History, Observation, Orders, Policy
from .scenarios import BASE, Scenario, apply_demand_side

KIND_SUPPLIER, KIND_STORE, KIND_LAUNCH_DC, KIND_LAUNCH_STORE, KIND_TRANSFER, KIND_EXPEDITE = 0, 1, 2, 3, 4, 5
TO_STORE_KINDS = (KIND_STORE, KIND_LAUNCH_STORE, KIND_TRANSFER, KIND_EXPEDITE)
MA_WINDOW = 28
FORECAST_HORIZONS = (1, 7, 14)  # forecast errors are scored at these horizons (days ahead)
SUM_DAYS = 14  # ... and on the total demand of the next 14 days (what lead-time planning needs)
# every forecast is scored twice: the policy's own ("fc") and, as a yardstick the policy cannot
# influence except through its stock, the seasonal naive of the policy's observed sales ("snaive");
# a third, "oracle", is the demand model's true mean on the same days (the floor of any forecast)
SCORED = ("fc", "snaive")
NAIVE_LAG = 7  # MASE scale: the seasonal-naive (lag 7) error of the realised demand
OVERSTOCK_WEEKS = 8.0  # overstock KPI: store stock above this many weeks of expected demand


@dataclass
class DayRecord:
    """What happened on one day, in positional arrays (locations: DCs first, then stores)."""

    t: int
    date: pd.Timestamp
    demand: np.ndarray  # (L, S)
    sales: np.ndarray  # (L, S)
    price: np.ndarray  # (L, S) shelf price
    promo: np.ndarray  # (S,)
    store_on_hand: np.ndarray  # (L, S) end of day
    dc_on_hand: np.ndarray  # (D, S) end of day
    store_carried: np.ndarray  # (L, S) bool
    dc_carried: np.ndarray  # (D, S) bool
    receipts: dict  # arrays: order_id, kind, src, dest, sku, units, order_day (positions by kind)
    open_orders: dict  # arrays of the pending book after today's orders
    dc_shipped: np.ndarray  # (D, S) units shipped to stores today
    transfers_out: np.ndarray  # (L, S) units that left each store on a transfer today
    start_on_hand: np.ndarray  # (L, S) store stock at the start of the day (before receipts)


STORE_ACC = (
    "demand",
    "sales",
    "lost",
    "revenue",
    "cogs",
    "stockout_days",
    "active_days",
    "inventory_value_days",
    "inventory_units_days",
    "order_lines",
    "transfer_lines",
    "transfer_units",
    "price_changes",
    "price_decreases",
    "overstock_units_days",
    "overstock_value_days",
    # order stability (core.kpis.order_stability_kpis): sums and sums of squares of the daily
    # shipped store requests and of demand over the days the item was launched, the order days
    # on active (carried) days, and the order days whose item also ordered the day before
    "ship_units",
    "ship_sq",
    "demand_sq",
    "launched_days",
    "active_order_days",
    "consecutive_order_days",
)
DC_ACC = (
    "inventory_value_days",
    "order_lines",
    "order_value",
    "overstock_units_days",
    "overstock_value_days",
    # order stability: purchase-order units and the store requests arriving at the DC (sums and
    # squares over launched days), carried days, and purchase orders on consecutive days
    "po_units",
    "po_sq",
    "request_units",
    "request_sq",
    "launched_days",
    "active_days",
    "consecutive_order_days",
)


@dataclass
class SimulationResult:
    days: int
    demand_units: int = 0
    sales_units: int = 0
    lost_units: int = 0
    store_orders: int = 0
    dc_orders: int = 0
    stockout_days: int = 0
    active_days: int = 0
    measured_days: int = 0
    store: dict = field(default_factory=dict)  # name -> (L, S) accumulator over measured days
    dc: dict = field(default_factory=dict)  # name -> (D, S) accumulator
    daily: pd.DataFrame | None = None  # one row per measured day (network totals)
    samples: dict = field(default_factory=dict)  # (l, s) -> frame of demand, sales, on hand, forecast
    extra: dict = field(default_factory=dict)


class _OrderBook:
    """Pending orders as parallel numpy arrays (one row per order line)."""

    # `ordered` is what the ERP shows as open; `units` is what will really arrive (short shipments)
    cols = ("order_id", "kind", "src", "dest", "sku", "ordered", "units", "order_day", "expected_day", "arrival_day")

    def __init__(self) -> None:
        self.a = {c: np.zeros(0, dtype=np.int64) for c in self.cols}

    def add(self, **arrays) -> None:
        n = len(arrays["units"])
        if n == 0:
            return
        for c in self.cols:
            self.a[c] = np.concatenate([self.a[c], np.broadcast_to(np.asarray(arrays[c], dtype=np.int64), (n,))])

    def hold(self, kind: int, dest: int, until: int) -> None:
        """Deliveries of `kind` to `dest` cannot arrive before `until` (a closed receiving dock)."""
        m = (self.a["kind"] == kind) & (self.a["dest"] == dest) & (self.a["arrival_day"] < until)
        self.a["arrival_day"] = np.where(m, until, self.a["arrival_day"])

    def pop_due(self, t: int) -> dict:
        due = self.a["arrival_day"] <= t
        out = {c: v[due] for c, v in self.a.items()}
        self.a = {c: v[~due] for c, v in self.a.items()}
        return out

    def on_order(self, kinds: tuple[int, ...], shape: tuple[int, int]) -> np.ndarray:
        m = np.isin(self.a["kind"], kinds)
        out = np.zeros(shape, dtype=np.int64)
        np.add.at(out, (self.a["dest"][m], self.a["sku"][m]), self.a["ordered"][m])
        return out

    def snapshot(self) -> dict:
        return {c: v.copy() for c, v in self.a.items()}


def _lane_matrix(network: Network) -> np.ndarray:
    """(L, L) store->store lane lead time in days, -1 where no lane exists."""
    pos = {s: i for i, s in enumerate(network.store_ids)}
    L = len(network.store_ids)
    m = np.full((L, L), -1, dtype=np.int64)
    lanes = network.lanes
    ss = lanes[lanes["from_location_id"].isin(pos) & lanes["to_location_id"].isin(pos)]
    m[ss["from_location_id"].map(pos).to_numpy(), ss["to_location_id"].map(pos).to_numpy()] = ss[
        "lead_time_days"
    ].to_numpy()
    return m


def _cap_by_stock(src: np.ndarray, sku: np.ndarray, units: np.ndarray, stock: np.ndarray) -> np.ndarray:
    """Ship each line up to what its donor still holds after the earlier lines (vectorised)."""
    key = src * stock.shape[1] + sku
    order = np.argsort(key, kind="stable")
    k, u = key[order], units[order]
    cum = np.cumsum(u)
    group_start = np.r_[True, k[1:] != k[:-1]]
    before = cum - u - np.maximum.accumulate(np.where(group_start, cum - u, 0))  # earlier lines, same group
    avail = stock.ravel()[k]
    capped = np.clip(avail - before, 0, u)
    out = np.empty_like(units)
    out[order] = capped
    return out


_SN_SHIFT = np.arange(1, SUM_DAYS + 1) - 7 * np.ceil(np.arange(1, SUM_DAYS + 1) / 7).astype(int)


def _score(acc: dict, key: str, f: np.ndarray, a: np.ndarray, mask: np.ndarray) -> None:
    e = (f - a) * mask
    acc[f"{key}_abs_err"] += np.abs(e)
    acc[f"{key}_err"] += e
    acc[f"{key}_actual"] += a * mask
    acc[f"{key}_n"] += mask
    pos = (a > 0) & mask
    acc[f"{key}_ape_sum"] += np.where(pos, np.abs(e) / np.maximum(a, 1), 0.0)
    acc[f"{key}_ape_n"] += pos


def _per_dc(x: np.ndarray, store_dc: np.ndarray, D: int) -> np.ndarray:
    out = np.zeros((D, x.shape[1]), dtype=x.dtype)
    np.add.at(out, store_dc, x)
    return out


def _supply_draws(network: Network, t: int, di: np.ndarray, sj: np.ndarray) -> dict:
    """The random numbers of day t's purchase-order lines (DC positions `di`, SKU positions `sj`),
    drawn as whole (D, S) arrays from a stream that depends only on (seed, t) and read at each
    line's cell: every policy that orders an item at a DC on a day meets the same lead time and the
    same short shipment (common random numbers for supply, as demand.py has them for demand; a
    sequential stream would hand a policy that orders more lines different luck)."""
    D, S = len(network.dc_ids), len(network.sku_ids)
    seed = network.config.seed
    r = np.random.default_rng(np.random.SeedSequence([seed, 3, t]))
    out = {
        "z": r.standard_normal((D, S))[di, sj],
        "short": r.random((D, S))[di, sj],
        "frac": r.uniform(0.3, 0.9, (D, S))[di, sj],
    }
    if network.supplier_late_prob is not None:  # unreliable suppliers: their own stream
        u = np.random.default_rng(np.random.SeedSequence([seed, 25, t]))
        out.update(late=u.random((D, S))[di, sj], late_by=u.uniform(0.3, 1.5, (D, S))[di, sj])
    return out


def _supplier_lead_times(
    network: Network, sj: np.ndarray, sup_mean: np.ndarray, sup_std: np.ndarray, draws: dict
) -> np.ndarray:
    """Real lead time (days, >= 1) of purchase-order lines of SKU positions `sj`: N(master mean,
    std); unreliable suppliers (regime): N(true mean, true std), and a share of the orders late by
    30-150% of it (a missed truck, a port queue: a long right tail the master never shows)."""
    if network.supplier_late_prob is None:
        return np.maximum(1, np.rint(sup_mean[sj] + sup_std[sj] * draws["z"])).astype(np.int64)
    v = network.sku_supplier[sj]
    lt = network.supplier_lt_true_mean[v] + network.supplier_lt_true_std[v] * draws["z"]
    late = draws["late"] < network.supplier_late_prob[v]
    lt = lt * np.where(late, 1.0 + draws["late_by"], 1.0)
    return np.maximum(1, np.rint(lt)).astype(np.int64)


def _margin_by_reason(acc: np.ndarray) -> dict:
    return {
        r: {
            "revenue": float(acc[0, i]),
            "cogs": float(acc[1, i]),
            "units": int(acc[2, i]),
            "store_sku_days": int(acc[3, i]),
        }
        for i, r in enumerate(PRICE_REASONS)
    }


@dataclass
class _Day:
    """What one day t carries from step to step of the day loop (`simulate`)."""

    t: int
    launched: np.ndarray  # (S,) items launched by today
    orderable: np.ndarray  # (S,) launched and not yet discontinued: suppliers deliver them
    start_oh: np.ndarray  # (L, S) store stock at the start of the day
    launch_receipts: dict | None = None
    dc_closed: bool = False
    due: dict | None = None  # order lines arriving today
    demand: np.ndarray | None = None
    sales: np.ndarray | None = None
    price: np.ndarray | None = None
    oracle: np.ndarray | None = None  # the demand model's true mean (0 where delisted)
    expedite: dict | None = None  # replayed sales beyond the replayed rule's stock
    store_carried: np.ndarray | None = None
    slot: int = 0  # today's row of the MA_WINDOW rings
    ships_today: np.ndarray | None = None  # weekly deliveries: stores whose request ships today
    reason_today: np.ndarray | None = None  # reason code of the price in force today
    price_changed: np.ndarray | None = None  # tomorrow's price differs from today's
    price_down: np.ndarray | None = None
    ship: np.ndarray | None = None  # (L, S) DC -> store units shipped today
    dc_req: np.ndarray | None = None  # (D, S) store requests per DC
    dc_shipped: np.ndarray | None = None
    transfers_out: np.ndarray | None = None  # (L, S) units that left each store on a transfer
    po: np.ndarray | None = None  # (D, S) purchase-order units placed today
    dc_carried: np.ndarray | None = None
    over_units: np.ndarray | None = None  # store overstock units (measured days)


class _Twin:
    """The simulated network's state over the horizon: stock, the order book, the rings behind the
    moving averages and forecast scores, and the KPI accumulators. `simulate` runs one day as the
    steps below, in the order of the module docstring."""

    def __init__(self, network: Network, scenario: Scenario, measure_from: int, samples) -> None:
        cfg = network.config
        self.B, self.measure_from, self.scenario = cfg.burn_in_days, measure_from, scenario
        self.net = network = apply_demand_side(network, scenario, measure_from)
        self.dm = DemandModel(network)
        self.dates = day_dates(cfg)
        self.T = len(self.dates)
        self.L, self.S, self.D = L, S, D = len(network.store_ids), len(network.sku_ids), len(network.dc_ids)
        self.sup_mean = network.supplier_lt_mean[network.sku_supplier]
        self.sup_std = network.supplier_lt_std[network.sku_supplier]
        self.store_dc, self.store_lt, self.unit_cost = network.store_dc, network.store_lead_time, network.unit_cost
        self.lanes = _lane_matrix(network)
        self.launch_abs = network.sku_launch_day + self.B
        self.disc_abs = network.sku_discontinue_day + self.B
        self.dow = self.dates.dayofweek.to_numpy()
        self.deliv = network.store_delivery_weekday  # weekly store deliveries (regime), None = daily
        self.review_days = None if self.deliv is None else np.full(L, 7)
        self.outage = (scenario.window(measure_from), scenario.dc_outage) if scenario.dc_outage is not None else None
        self._start_stock()
        self.price_factor = np.ones((L, S))
        self.price_reason = np.zeros((L, S), dtype=np.int64)  # reason code of the price in force
        self.reason_acc = np.zeros((4, len(PRICE_REASONS)))  # revenue, cogs, units, store x SKU days
        # true mean daily demand at the prices in force, trailing MA_WINDOW days (overstock KPI)
        self.mu_ring = np.zeros((MA_WINDOW, L, S))
        self.mu_sum = np.zeros((L, S))
        self.mu_days = np.zeros(S, dtype=np.int64)  # days inside the ring since launch, per SKU
        self.history = History(self.dates, L, S)
        self.book = _OrderBook()
        self.next_id = 1
        self.res = SimulationResult(days=cfg.days)
        self.res.store = {k: np.zeros((L, S)) for k in STORE_ACC}
        self.res.dc = {k: np.zeros((D, S)) for k in DC_ACC}
        self._forecast_rings()
        self.ordered_yesterday = np.zeros((L, S), dtype=bool)  # a store line shipped the day before
        self.po_yesterday = np.zeros((D, S), dtype=bool)  # a purchase order placed the day before
        self.daily_rows = []
        self.sample_rows = {p: [] for p in (samples or [])}

    def _start_stock(self) -> None:
        """Steady-state start: stock for the lead time plus the rule's buffers, and full rings."""
        mu0 = self.dm.mean(0)
        launched0 = self.launch_abs <= 0
        self.store_oh = np.where(launched0, np.ceil(mu0 * (self.store_lt[:, None] + 14)), 0).astype(np.int64)
        dc_mu0 = _per_dc(mu0, self.store_dc, self.D)
        self.dc_oh = np.where(launched0, np.ceil(dc_mu0 * (self.sup_mean + 14)), 0).astype(np.int64)
        self.sales_ring = np.repeat(mu0[None], MA_WINDOW, axis=0)
        self.req_ring = np.repeat(dc_mu0[None], MA_WINDOW, axis=0)
        self.ring_days = np.full(self.S, MA_WINDOW)  # days of history inside the ring, per SKU (launches)

    def _forecast_rings(self) -> None:
        """The forecasts the policy acted on, kept until their target day's demand is known. The
        oracle (a forecaster that knows the demand model's true mean at the prices in force) is
        scored on the days the policy's forecast is: the floor no forecast can beat on average."""
        L, S, H = self.L, self.S, FORECAST_HORIZONS
        self.R = R = max(H) + 1
        for src in (*SCORED, "oracle"):
            for h in (*H, f"sum{SUM_DAYS}"):
                for k in ("abs_err", "actual", "err", "ape_sum", "ape_n", "n"):
                    self.res.store[f"{src}_h{h}_{k}"] = np.zeros((L, S))
        self.fc_ring = np.zeros((len(SCORED), len(H), R, L, S))
        self.fc_target = np.full((len(SCORED), len(H), R), -1)
        self.sum_ring = np.zeros((len(SCORED), R, L, S))  # forecast totals of days t+1..t+14, by day t+14
        self.sum_carried = np.zeros((R, L, S), dtype=bool)
        self.sum_target = np.full((len(SCORED), R), -1)  # per source: a policy without a forecast has no total
        self.cum_demand = np.zeros((R, L, S))  # cumulative demand by day (ring), for realised 14-day totals
        self.running = np.zeros((L, S))
        self.res.store["naive_abs_err"] = np.zeros((L, S))
        self.res.store["naive_n"] = np.zeros((L, S))
        self.running_mu, self.cum_mu = np.zeros((L, S)), np.zeros((R, L, S))
        self.demand_ring = np.zeros((NAIVE_LAG, L, S), dtype=np.int64)

    # ---- the day's steps --------------------------------------------------------------------

    def start_day(self, t: int) -> _Day:
        launched = self.launch_abs <= t
        return _Day(t=t, launched=launched, orderable=launched & (t < self.disc_abs), start_oh=self.store_oh.copy())

    def launch(self, d: _Day) -> None:
        """0. launch fills: a planogram fill of two weeks of expected demand."""
        new = np.flatnonzero(self.launch_abs == d.t)
        if not len(new):
            return
        L, D, t = self.L, self.D, d.t
        fill = np.maximum(np.ceil(self.dm.mean(t)[:, new] * 14), 1).astype(np.int64)
        self.store_oh[:, new] += fill
        dc_fill = _per_dc(fill, self.store_dc, D)
        self.dc_oh[:, new] += dc_fill
        li, si = np.meshgrid(np.arange(L), new, indexing="ij")
        di, sj = np.meshgrid(np.arange(D), new, indexing="ij")
        d.launch_receipts = dict(
            order_id=-np.concatenate([si.ravel(), sj.ravel()]) - 1,  # negative: launch fill
            kind=np.concatenate([np.full(L * len(new), KIND_LAUNCH_STORE), np.full(D * len(new), KIND_LAUNCH_DC)]),
            dest=np.concatenate([li.ravel(), di.ravel()]),
            sku=np.concatenate([si.ravel(), sj.ravel()]),
            units=np.concatenate([fill.ravel(), dc_fill.ravel()]),
            order_day=np.full(L * len(new) + D * len(new), t),
            src=np.full(L * len(new) + D * len(new), -1),
        )
        for ring in (self.sales_ring, self.req_ring, self.mu_ring):
            ring[:, :, new] = 0
        self.ring_days[new] = 0
        self.mu_sum[:, new] = 0
        self.mu_days[new] = 0

    def arrive(self, d: _Day) -> None:
        """1. arrivals (a closed DC receives nothing: its deliveries wait for the reopening)."""
        outage = self.outage
        d.dc_closed = outage is not None and outage[0][0] <= d.t < outage[0][1]
        if d.dc_closed:
            self.book.hold(KIND_SUPPLIER, outage[1], outage[0][1])
        due = d.due = self.book.pop_due(d.t)
        self.history.record_receipts(d.t, due)  # the observed receipt log: today is the receipt day
        to_store = np.isin(due["kind"], (KIND_STORE, KIND_TRANSFER))
        np.add.at(self.store_oh, (due["dest"][to_store], due["sku"][to_store]), due["units"][to_store])
        to_dc = due["kind"] == KIND_SUPPLIER
        np.add.at(self.dc_oh, (due["dest"][to_dc], due["sku"][to_dc]), due["units"][to_dc])

    def demand_and_sales(self, d: _Day) -> None:
        """2. demand and sales (prices set by the policy yesterday)."""
        t, dm, net = d.t, self.dm, self.net
        ref_mean = dm.mean(t)
        demand = dm.draw(t, ref_mean)
        pp = net.price_path[t]
        d.price = (pp if pp.ndim == 2 else pp[None, :]) * self.price_factor
        true_mean = ref_mean
        if not np.all(self.price_factor == 1.0):
            true_mean = dm.mean(t, self.price_factor)
            demand = dm.draw_coupled(t, ref_mean, demand, true_mean)
        # a discontinued item whose shelf is empty is delisted: no customer can ask for it any more,
        # so no demand of it is lost (before, its demand ran on forever and counted as lost units,
        # most of the lost units of the base network -- and against every markdown that cleared it)
        delisted = (t >= self.disc_abs)[None, :] & (self.store_oh == 0)
        if delisted.any():
            demand = np.where(delisted, 0, demand)
        d.oracle = np.where(delisted, 0.0, np.broadcast_to(true_mean, (self.L, self.S)))
        mu_slot = t % MA_WINDOW
        self.mu_sum += true_mean - self.mu_ring[mu_slot]
        self.mu_ring[mu_slot] = true_mean
        self.mu_days = np.minimum(self.mu_days + 1, MA_WINDOW)
        d.demand, d.sales = demand, np.minimum(demand, self.store_oh)
        if net.serve_recorded_sales and (d.sales < demand).any():
            self._expedite(d)
        self.store_oh -= d.sales
        d.store_carried = d.launched[None, :] & ((t < self.disc_abs)[None, :] | (self.store_oh > 0))
        self.history.record(t, d.sales, self.store_oh, d.store_carried, d.price, net.promo_path[t])

    def _expedite(self, d: _Day) -> None:
        """A replay of recorded sales: the store had them, so a shortfall of the replayed rule
        arrives as an expedited receipt (outside the modelled network) and every sale is kept."""
        li, si = np.nonzero(d.sales < d.demand)
        short = (d.demand - d.sales)[li, si]
        self.store_oh[li, si] += short
        d.sales = d.demand.copy()
        self.res.extra["expedited_units"] = self.res.extra.get("expedited_units", 0) + int(short.sum())
        d.expedite = dict(
            order_id=np.full(len(li), d.t),
            kind=np.full(len(li), KIND_EXPEDITE),
            dest=li,
            sku=si,
            units=short,
            order_day=np.full(len(li), d.t),
            src=np.full(len(li), -1),
        )

    def observe(self, d: _Day) -> Observation:
        """3. what the policy sees: sales, stock, open orders, prices and the observed history."""
        t, L, S, D = d.t, self.L, self.S, self.D
        d.slot = t % MA_WINDOW
        self.sales_ring[d.slot] = d.sales
        if self.deliv is not None:
            d.ships_today = (self.dow[t] + self.store_lt) % 7 == self.deliv
        self.ring_days = np.minimum(self.ring_days + 1, MA_WINDOW)
        denom = np.maximum(self.ring_days, 1)
        return Observation(
            t=t,
            date=self.dates[t],
            store_on_hand=self.store_oh,
            store_on_order=self.book.on_order((KIND_STORE, KIND_TRANSFER), (L, S)),
            dc_on_hand=self.dc_oh,
            dc_on_order=self.book.on_order((KIND_SUPPLIER,), (D, S)),
            store_sales_ma=self.sales_ring.sum(axis=0) / denom,
            dc_requests_ma=self.req_ring.sum(axis=0) / denom,
            store_lead_time=self.store_lt,
            supplier_lead_time=self.sup_mean,
            case_pack=self.net.case_pack,
            min_order_qty=self.net.min_order_qty,
            orderable=d.orderable,
            launched=d.launched,
            history=self.history,
            price_factor=self.price_factor,
            store_review_days=self.review_days,
            store_ships_today=d.ships_today,
        )

    def set_prices(self, d: _Day, orders: Orders) -> None:
        """4a. prices for tomorrow, and their reasons where the price changes."""
        d.reason_today = self.price_reason
        old = self.price_factor
        new = old if orders.price_factor is None else np.asarray(orders.price_factor, dtype=float)
        d.price_changed = ~np.isclose(new, old) & d.store_carried
        d.price_down = d.price_changed & (new < old)
        self.price_factor = np.where(d.store_carried, new, old)
        if orders.price_reason is not None:
            code = np.asarray(orders.price_reason, dtype=np.int64)
            if code.min(initial=0) < 0 or code.max(initial=0) >= len(PRICE_REASONS):
                raise ValueError(f"price_reason codes must index PRICE_REASONS {PRICE_REASONS}")
            self.price_reason = np.where(d.price_changed, code, self.price_reason)

    def _book(self, kind: int, src, dest, sku, ordered, units, t: int, expected, arrival) -> None:
        n = len(units)
        self.book.add(
            order_id=np.arange(self.next_id, self.next_id + n),
            kind=kind,
            src=src,
            dest=dest,
            sku=sku,
            ordered=ordered,
            units=units,
            order_day=t,
            expected_day=expected,
            arrival_day=arrival,
        )
        self.next_id += n

    def ship_to_stores(self, d: _Day, orders: Orders) -> None:
        """4b. DC -> store shipments; a short DC allocates in proportion to the requests."""
        req = np.where(d.launched[None, :], np.asarray(orders.store, dtype=np.int64), 0)
        if self.deliv is not None:  # weekly deliveries: only requests that land on the delivery day ship
            req = np.where(d.ships_today[:, None], req, 0)
        d.dc_req = _per_dc(req, self.store_dc, self.D)
        self.req_ring[d.slot] = d.dc_req
        ratio = np.where(d.dc_req > 0, np.minimum(1.0, self.dc_oh / np.maximum(d.dc_req, 1)), 0.0)
        if d.dc_closed:
            ratio[self.outage[1]] = 0.0
        ship = d.ship = np.floor(req * ratio[self.store_dc]).astype(np.int64)
        d.dc_shipped = _per_dc(ship, self.store_dc, self.D)
        self.dc_oh -= d.dc_shipped
        li, si = np.nonzero(ship)
        lt = self.store_lt[li]
        self._book(KIND_STORE, self.store_dc[li], li, si, ship[li, si], ship[li, si], d.t, d.t + lt, d.t + lt)

    def transfer(self, d: _Day, orders: Orders) -> None:
        """4c. store -> store transfers: along lanes only, at most the donor's stock."""
        d.transfers_out = np.zeros((self.L, self.S), dtype=np.int64)
        if orders.transfers is None or not len(orders.transfers["units"]):
            return
        tr = {k: np.asarray(v, dtype=np.int64) for k, v in orders.transfers.items()}
        lt = self.lanes[tr["src"], tr["dest"]]
        ok = (lt >= 0) & (tr["units"] > 0) & (tr["src"] != tr["dest"])
        tr = {k: v[ok] for k, v in tr.items()}
        lt = lt[ok]
        # cap each line at what the donor still holds, lines served in the order given
        units = _cap_by_stock(tr["src"], tr["sku"], tr["units"], self.store_oh)
        np.subtract.at(self.store_oh, (tr["src"], tr["sku"]), units)
        keep = units > 0
        np.add.at(d.transfers_out, (tr["src"][keep], tr["sku"][keep]), units[keep])
        src, dest, sku, u, arrive = tr["src"][keep], tr["dest"][keep], tr["sku"][keep], units[keep], d.t + lt[keep]
        self._book(KIND_TRANSFER, src, dest, sku, u, u, d.t, arrive, arrive)
        if d.transfers_out.any():  # the observed end-of-day stock is after today's transfers left
            self.history.on_hand[d.t] = self.store_oh

    def purchase(self, d: _Day, orders: Orders) -> None:
        """4d. purchase orders: suppliers deliver only orderable items, after a drawn lead time,
        and sometimes short-ship (the ERP expects the ordered units, fewer arrive)."""
        t, net = d.t, self.net
        po = d.po = np.where(d.orderable[None, :], np.asarray(orders.dc, dtype=np.int64), 0)
        di, sj = np.nonzero(po)
        draws = _supply_draws(net, t, di, sj)
        real_lt = _supplier_lead_times(net, sj, self.sup_mean, self.sup_std, draws)
        if self.scenario.lead_time_factor != 1.0 and self.scenario.active(t, self.measure_from):
            real_lt = np.rint(real_lt * self.scenario.lead_time_factor).astype(np.int64)
        short = draws["short"] > net.supplier_fill_prob[net.sku_supplier[sj]]
        shipped = np.where(short, np.floor(po[di, sj] * draws["frac"]), po[di, sj])
        expected = t + self.sup_mean[sj].astype(np.int64)
        self._book(KIND_SUPPLIER, net.sku_supplier[sj], di, sj, po[di, sj], shipped, t, expected, t + real_lt)

    def note_forecasts(self, d: _Day, orders: Orders) -> None:
        """The forecasts the policy acted on (and the seasonal-naive yardstick), kept for scoring
        when their target day's demand is known."""
        t, R = d.t, self.R
        snaive = self.history.sales[t + _SN_SHIFT].astype(float) if t >= 7 else None  # same weekday, last week
        for i, f in enumerate((None if orders.forecast is None else np.asarray(orders.forecast), snaive)):
            if f is None:
                continue
            for j, h in enumerate(FORECAST_HORIZONS):
                if h <= f.shape[0]:
                    self.fc_ring[i, j, (t + h) % R] = f[h - 1]
                    self.fc_target[i, j, (t + h) % R] = t + h
            if f.shape[0] >= SUM_DAYS:
                self.sum_ring[i, (t + SUM_DAYS) % R] = f[:SUM_DAYS].sum(axis=0)
                self.sum_target[i, (t + SUM_DAYS) % R] = t + SUM_DAYS
        self.sum_carried[(t + SUM_DAYS) % R] = d.store_carried

    # ---- 5. record ----------------------------------------------------------------------------

    def record(self, d: _Day) -> None:
        """The end-of-day KPI accumulators, from `measure_from` on."""
        d.dc_carried = d.launched[None, :] & ((d.t < self.disc_abs)[None, :] | (self.dc_oh > 0))
        if d.t < self.measure_from:
            return
        self._record_store(d)
        self._record_dc(d)
        self._score_forecasts(d)
        self.res.measured_days += 1
        self._record_day_row(d)

    def _record_store(self, d: _Day) -> None:
        acc, cost, oh = self.res.store, self.unit_cost[None, :], self.store_oh
        d.over_units, over_value = overstock(
            oh, self.mu_sum / np.maximum(self.mu_days, 1), self.unit_cost, OVERSTOCK_WEEKS
        )
        sales, carried, ship = d.sales, d.store_carried, d.ship
        acc["demand"] += d.demand
        acc["sales"] += sales
        acc["lost"] += d.demand - sales
        acc["revenue"] += sales * d.price
        acc["cogs"] += sales * cost
        acc["stockout_days"] += carried & (oh == 0)
        acc["active_days"] += carried
        acc["inventory_value_days"] += oh * cost
        acc["inventory_units_days"] += oh
        acc["order_lines"] += ship > 0
        acc["transfer_lines"] += d.transfers_out > 0
        acc["transfer_units"] += d.transfers_out
        acc["price_changes"] += d.price_changed
        acc["price_decreases"] += d.price_down
        acc["overstock_units_days"] += d.over_units
        acc["overstock_value_days"] += over_value
        for i, w in enumerate((sales * d.price, sales * cost, sales, carried)):
            self.reason_acc[i] += np.bincount(d.reason_today.ravel(), weights=w.ravel(), minlength=len(PRICE_REASONS))
        # order stability (bullwhip, order days): moments over the days the item was launched
        live = d.launched[None, :]
        acc["ship_units"] += ship
        acc["ship_sq"] += np.square(ship, dtype=float)
        acc["demand_sq"] += np.square(d.demand * live, dtype=float)
        acc["launched_days"] += live
        acc["active_order_days"] += (ship > 0) & carried
        acc["consecutive_order_days"] += (ship > 0) & self.ordered_yesterday

    def _record_dc(self, d: _Day) -> None:
        dc, po, D = self.res.dc, d.po, self.D
        dc["inventory_value_days"] += self.dc_oh * self.unit_cost[None, :]
        # network overstock behind each DC: its stock plus its stores', against its stores' demand
        net_units, net_value = overstock(
            self.dc_oh + _per_dc(self.store_oh, self.store_dc, D),
            _per_dc(self.mu_sum, self.store_dc, D) / np.maximum(self.mu_days, 1),
            self.unit_cost,
            OVERSTOCK_WEEKS,
        )
        dc["overstock_units_days"] += net_units
        dc["overstock_value_days"] += net_value
        dc["order_lines"] += po > 0
        dc["order_value"] += po * self.unit_cost[None, :]
        dc["po_units"] += po
        dc["po_sq"] += np.square(po, dtype=float)
        dc["request_units"] += d.dc_req
        dc["request_sq"] += np.square(d.dc_req, dtype=float)
        dc["launched_days"] += d.launched[None, :]
        dc["active_days"] += d.dc_carried
        dc["consecutive_order_days"] += (po > 0) & self.po_yesterday

    def _score_forecasts(self, d: _Day) -> None:
        """Score the forecasts whose target day is today, where the item was carried (forecasts
        exist for carried series only); the oracle on the same days; the MASE scale."""
        acc, t, R, carried = self.res.store, d.t, self.R, d.store_carried
        realised = self.running - self.cum_demand[(t - SUM_DAYS) % R]
        sum_due = t - SUM_DAYS >= self.measure_from
        for i, src in enumerate(SCORED):
            for j, h in enumerate(FORECAST_HORIZONS):
                if self.fc_target[i, j, t % R] == t:
                    _score(acc, f"{src}_h{h}", self.fc_ring[i, j, t % R], d.demand, carried)
            if self.sum_target[i, t % R] == t and sum_due:
                _score(acc, f"{src}_hsum{SUM_DAYS}", self.sum_ring[i, t % R], realised, self.sum_carried[t % R])
        for j, h in enumerate(FORECAST_HORIZONS):
            if self.fc_target[0, j, t % R] == t:
                _score(acc, f"oracle_h{h}", d.oracle, d.demand, carried)
        if self.sum_target[0, t % R] == t and sum_due:
            oracle_sum = self.running_mu - self.cum_mu[(t - SUM_DAYS) % R]
            _score(acc, f"oracle_hsum{SUM_DAYS}", oracle_sum, realised, self.sum_carried[t % R])
        if t - self.measure_from >= NAIVE_LAG:
            acc["naive_abs_err"] += np.abs(d.demand - self.demand_ring[t % NAIVE_LAG]) * carried
            acc["naive_n"] += carried

    def _record_day_row(self, d: _Day) -> None:
        """The day's network totals (`res.daily`) and the sampled store x SKU trajectories."""
        oh, cost, t = self.store_oh, self.unit_cost, d.t
        self.daily_rows.append(
            (
                self.dates[t],
                float((oh * cost).sum()),
                float((self.dc_oh * cost).sum()),
                int(d.demand.sum()),
                int(d.sales.sum()),
                int((d.store_carried & (oh == 0)).sum()),
                int(d.store_carried.sum()),
                float((d.sales * d.price).sum()),
                int((d.ship > 0).sum() + (d.po > 0).sum()),
                int((d.transfers_out > 0).sum()),
                int(d.price_changed.sum()),
                int(d.price_down.sum()),
                float(d.over_units.sum()),
            )
        )
        f1 = self.fc_ring[0, 0, t % self.R] if self.fc_target[0, 0, t % self.R] == t else None
        for (l, s), rows in self.sample_rows.items():
            forecast = float(f1[l, s]) if f1 is not None else np.nan
            rows.append(
                (self.dates[t], int(d.demand[l, s]), int(d.sales[l, s]), int(oh[l, s]), forecast, float(d.price[l, s]))
            )

    def roll(self, d: _Day) -> None:
        """Carry today into the rings and running totals tomorrow reads."""
        t, R = d.t, self.R
        self.demand_ring[t % NAIVE_LAG] = d.demand
        self.ordered_yesterday, self.po_yesterday = d.ship > 0, d.po > 0
        self.running = self.running + d.demand
        self.cum_demand[t % R] = self.running
        self.running_mu = self.running_mu + d.oracle
        self.cum_mu[t % R] = self.running_mu

    def report(self, d: _Day, sink, progress) -> None:
        """After the burn-in: the run's totals, progress, and the day record for `sink`."""
        t, res = d.t, self.res
        if t < self.B:
            return
        res.demand_units += int(d.demand.sum())
        res.sales_units += int(d.sales.sum())
        res.lost_units += int((d.demand - d.sales).sum())
        res.store_orders += int((d.ship > 0).sum())
        res.dc_orders += int((d.po > 0).sum())
        res.active_days += int(d.store_carried.sum())
        res.stockout_days += int((d.store_carried & (self.store_oh == 0)).sum())
        if progress is not None and (t - self.B) % 30 == 0:
            progress(t - self.B, self.net.config.days)
        if sink is not None:
            sink(self._day_record(d))

    def _day_record(self, d: _Day) -> DayRecord:
        receipts = {k: d.due[k] for k in ("order_id", "kind", "src", "dest", "sku", "units", "order_day")}
        for extra in (d.launch_receipts, d.expedite):
            if extra is not None:
                receipts = {k: np.concatenate([receipts[k], extra[k]]) for k in receipts}
        return DayRecord(
            t=d.t,
            date=self.dates[d.t],
            demand=d.demand,
            sales=d.sales,
            price=d.price,
            promo=self.net.promo_path[d.t],
            store_on_hand=self.store_oh.copy(),
            dc_on_hand=self.dc_oh.copy(),
            store_carried=d.store_carried,
            dc_carried=d.dc_carried,
            receipts=receipts,
            open_orders=self.book.snapshot(),
            dc_shipped=d.dc_shipped,
            transfers_out=d.transfers_out,
            start_on_hand=d.start_oh,
        )

    def result(self) -> SimulationResult:
        res = self.res
        res.daily = pd.DataFrame(self.daily_rows, columns=DAILY_COLUMNS)
        res.samples = {p: pd.DataFrame(r, columns=SAMPLE_COLUMNS) for p, r in self.sample_rows.items()}
        res.extra["margin_by_reason"] = _margin_by_reason(self.reason_acc)
        return res


DAILY_COLUMNS = [
    "date",
    "store_inventory_value",
    "dc_inventory_value",
    "demand",
    "sales",
    "stockouts",
    "active",
    "revenue",
    "orders",
    "transfers",
    "price_changes",
    "price_decreases",
    "overstock_units",
]
SAMPLE_COLUMNS = ["date", "demand", "sales", "on_hand", "forecast_h1", "price"]


def simulate(
    network: Network,
    policy: Policy,
    sink: Callable[[DayRecord], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
    *,
    scenario: Scenario = BASE,
    measure_from: int | None = None,
    samples: list[tuple[int, int]] | None = None,
) -> SimulationResult:
    """Run the network's whole horizon (burn-in included) under `policy`.

    KPIs accumulate from absolute day `measure_from` (default: the end of the burn-in). Day
    records go to `sink` from the end of the burn-in on. `samples` are (store, sku) positions
    whose daily trajectories are kept for plots. Each day runs the steps of the module docstring
    on the network's state (`_Twin`).
    """
    twin = _Twin(network, scenario, network.config.burn_in_days if measure_from is None else measure_from, samples)
    for t in range(twin.T):
        day = twin.start_day(t)
        twin.launch(day)
        twin.arrive(day)
        twin.demand_and_sales(day)
        orders: Orders = policy.decide(twin.observe(day))
        twin.set_prices(day, orders)
        twin.ship_to_stores(day, orders)
        twin.transfer(day, orders)
        twin.purchase(day, orders)
        twin.note_forecasts(day, orders)
        twin.record(day)
        twin.roll(day)
        twin.report(day, sink, progress)
    return twin.result()
