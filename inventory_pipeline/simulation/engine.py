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
    whose daily trajectories are kept for plots.
    """
    cfg = network.config
    B = cfg.burn_in_days
    measure_from = B if measure_from is None else measure_from
    network = apply_demand_side(network, scenario, measure_from)
    dm = DemandModel(network)
    dates = day_dates(cfg)
    T = len(dates)
    L, S, D = len(network.store_ids), len(network.sku_ids), len(network.dc_ids)
    case_pack, moq, unit_cost = network.case_pack, network.min_order_qty, network.unit_cost
    sup_mean = network.supplier_lt_mean[network.sku_supplier]
    sup_std = network.supplier_lt_std[network.sku_supplier]
    store_dc = network.store_dc
    store_lt = network.store_lead_time
    lanes = _lane_matrix(network)
    launch_abs = network.sku_launch_day + B
    disc_abs = network.sku_discontinue_day + B
    dow = dates.dayofweek.to_numpy()
    deliv = network.store_delivery_weekday  # weekly store deliveries (regime), None = daily
    review_days = None if deliv is None else np.full(L, 7)
    outage = (scenario.window(measure_from), scenario.dc_outage) if scenario.dc_outage is not None else None

    # steady-state start: stock for the lead time plus the rule's buffers
    mu0 = dm.mean(0)
    launched0 = launch_abs <= 0
    store_oh = np.where(launched0, np.ceil(mu0 * (store_lt[:, None] + 14)), 0).astype(np.int64)
    dc_mu0 = _per_dc(mu0, store_dc, D)
    dc_oh = np.where(launched0, np.ceil(dc_mu0 * (sup_mean + 14)), 0).astype(np.int64)
    sales_ring = np.repeat(mu0[None], MA_WINDOW, axis=0)
    req_ring = np.repeat(dc_mu0[None], MA_WINDOW, axis=0)
    ring_days = np.full(S, MA_WINDOW)  # days of history inside the ring, per SKU (launches)
    price_factor = np.ones((L, S))
    price_reason = np.zeros((L, S), dtype=np.int64)  # reason code of the price in force (PRICE_REASONS)
    reason_acc = np.zeros((4, len(PRICE_REASONS)))  # revenue, cogs, units, store x SKU days per reason
    # true mean daily demand at the prices in force, trailing MA_WINDOW days (overstock KPI)
    mu_ring = np.zeros((MA_WINDOW, L, S))
    mu_sum = np.zeros((L, S))
    mu_days = np.zeros(S, dtype=np.int64)  # days inside the ring since launch, per SKU
    history = History(dates, L, S)
    book = _OrderBook()
    next_id = 1
    res = SimulationResult(days=cfg.days)
    res.store = {k: np.zeros((L, S)) for k in STORE_ACC}
    res.dc = {k: np.zeros((D, S)) for k in DC_ACC}
    H = FORECAST_HORIZONS
    R = max(H) + 1
    # the oracle: a forecaster that knows the demand model's true mean (at the prices in force),
    # scored on the days the policy's forecast is -- the floor no forecast can beat on average
    for src in (*SCORED, "oracle"):
        for h in (*H, f"sum{SUM_DAYS}"):
            for k in ("abs_err", "actual", "err", "ape_sum", "ape_n", "n"):
                res.store[f"{src}_h{h}_{k}"] = np.zeros((L, S))
    fc_ring = np.zeros((len(SCORED), len(H), R, L, S))
    fc_target = np.full((len(SCORED), len(H), R), -1)
    sum_ring = np.zeros((len(SCORED), R, L, S))  # forecast totals of days t+1..t+14, by target day t+14
    sum_carried = np.zeros((R, L, S), dtype=bool)
    sum_target = np.full((len(SCORED), R), -1)  # per source: a policy without a forecast has no total
    cum_demand = np.zeros((R, L, S))  # cumulative demand by day (ring), for realised 14-day totals
    running = np.zeros((L, S))
    res.store["naive_abs_err"] = np.zeros((L, S))
    res.store["naive_n"] = np.zeros((L, S))
    running_mu, cum_mu = np.zeros((L, S)), np.zeros((R, L, S))
    demand_ring = np.zeros((NAIVE_LAG, L, S), dtype=np.int64)
    ordered_yesterday = np.zeros((L, S), dtype=bool)  # a store line shipped the day before
    po_yesterday = np.zeros((D, S), dtype=bool)  # a purchase order placed the day before
    daily_rows = []
    samples = list(samples or [])
    sample_rows = {p: [] for p in samples}

    for t in range(T):
        launched = launch_abs <= t
        orderable = launched & (t < disc_abs)
        start_oh = store_oh.copy()
        # 0. launch fills: a planogram fill of two weeks of expected demand
        new = np.flatnonzero(launch_abs == t)
        launch_receipts = None
        if len(new):
            mu = dm.mean(t)[:, new]
            fill = np.maximum(np.ceil(mu * 14), 1).astype(np.int64)
            store_oh[:, new] += fill
            dc_fill = _per_dc(fill, store_dc, D)
            dc_oh[:, new] += dc_fill
            li, si = np.meshgrid(np.arange(L), new, indexing="ij")
            di, sj = np.meshgrid(np.arange(D), new, indexing="ij")
            launch_receipts = dict(
                order_id=-np.concatenate([si.ravel(), sj.ravel()]) - 1,  # negative: launch fill
                kind=np.concatenate([np.full(L * len(new), KIND_LAUNCH_STORE), np.full(D * len(new), KIND_LAUNCH_DC)]),
                dest=np.concatenate([li.ravel(), di.ravel()]),
                sku=np.concatenate([si.ravel(), sj.ravel()]),
                units=np.concatenate([fill.ravel(), dc_fill.ravel()]),
                order_day=np.full(L * len(new) + D * len(new), t),
                src=np.full(L * len(new) + D * len(new), -1),
            )
            sales_ring[:, :, new] = 0
            req_ring[:, :, new] = 0
            ring_days[new] = 0
            mu_ring[:, :, new] = 0
            mu_sum[:, new] = 0
            mu_days[new] = 0

        # 1. arrivals (a closed DC receives nothing: its deliveries wait for the reopening)
        dc_closed = outage is not None and outage[0][0] <= t < outage[0][1]
        if dc_closed:
            book.hold(KIND_SUPPLIER, outage[1], outage[0][1])
        due = book.pop_due(t)
        history.record_receipts(t, due)  # the observed receipt log: today is the receipt day
        to_store = np.isin(due["kind"], (KIND_STORE, KIND_TRANSFER))
        np.add.at(store_oh, (due["dest"][to_store], due["sku"][to_store]), due["units"][to_store])
        to_dc = due["kind"] == KIND_SUPPLIER
        np.add.at(dc_oh, (due["dest"][to_dc], due["sku"][to_dc]), due["units"][to_dc])

        # 2. demand and sales (prices set by the policy yesterday)
        ref_mean = dm.mean(t)
        demand = dm.draw(t, ref_mean)
        pp = network.price_path[t]
        price = (pp if pp.ndim == 2 else pp[None, :]) * price_factor
        true_mean = ref_mean
        if not np.all(price_factor == 1.0):
            true_mean = dm.mean(t, price_factor)
            demand = dm.draw_coupled(t, ref_mean, demand, true_mean)
        # a discontinued item whose shelf is empty is delisted: no customer can ask for it any more,
        # so no demand of it is lost (before, its demand ran on forever and counted as lost units,
        # most of the lost units of the base network -- and against every markdown that cleared it)
        delisted = (t >= disc_abs)[None, :] & (store_oh == 0)
        if delisted.any():
            demand = np.where(delisted, 0, demand)
        oracle = np.where(delisted, 0.0, np.broadcast_to(true_mean, (L, S)))
        mu_slot = t % MA_WINDOW
        mu_sum += true_mean - mu_ring[mu_slot]
        mu_ring[mu_slot] = true_mean
        mu_days = np.minimum(mu_days + 1, MA_WINDOW)
        sales = np.minimum(demand, store_oh)
        expedite = None
        if network.serve_recorded_sales and (sales < demand).any():
            # a replay of recorded sales: the store had them, so a shortfall of the replayed rule
            # arrives as an expedited receipt (outside the modelled network) and every sale is kept
            li, si = np.nonzero(sales < demand)
            short = (demand - sales)[li, si]
            store_oh[li, si] += short
            sales = demand.copy()
            res.extra["expedited_units"] = res.extra.get("expedited_units", 0) + int(short.sum())
            expedite = dict(
                order_id=np.full(len(li), t),
                kind=np.full(len(li), KIND_EXPEDITE),
                dest=li,
                sku=si,
                units=short,
                order_day=np.full(len(li), t),
                src=np.full(len(li), -1),
            )
        store_oh -= sales
        store_carried = launched[None, :] & ((t < disc_abs)[None, :] | (store_oh > 0))
        history.record(t, sales, store_oh, store_carried, price, network.promo_path[t])

        # 3. observe and decide
        slot = t % MA_WINDOW
        sales_ring[slot] = sales
        if deliv is not None:
            ships_today = (dow[t] + store_lt) % 7 == deliv
        ring_days = np.minimum(ring_days + 1, MA_WINDOW)
        denom = np.maximum(ring_days, 1)
        obs = Observation(
            t=t,
            date=dates[t],
            store_on_hand=store_oh,
            store_on_order=book.on_order((KIND_STORE, KIND_TRANSFER), (L, S)),
            dc_on_hand=dc_oh,
            dc_on_order=book.on_order((KIND_SUPPLIER,), (D, S)),
            store_sales_ma=sales_ring.sum(axis=0) / denom,
            dc_requests_ma=req_ring.sum(axis=0) / denom,
            store_lead_time=store_lt,
            supplier_lead_time=sup_mean,
            case_pack=case_pack,
            min_order_qty=moq,
            orderable=orderable,
            launched=launched,
            history=history,
            price_factor=price_factor,
            store_review_days=review_days,
            store_ships_today=None if deliv is None else ships_today,
        )
        orders: Orders = policy.decide(obs)

        # 4a. prices for tomorrow, and their reasons where the price changes
        reason_today = price_reason
        new_factor = price_factor if orders.price_factor is None else np.asarray(orders.price_factor, dtype=float)
        price_changed = ~np.isclose(new_factor, price_factor) & store_carried
        price_down = price_changed & (new_factor < price_factor)
        price_factor = np.where(store_carried, new_factor, price_factor)
        if orders.price_reason is not None:
            code = np.asarray(orders.price_reason, dtype=np.int64)
            if code.min(initial=0) < 0 or code.max(initial=0) >= len(PRICE_REASONS):
                raise ValueError(f"price_reason codes must index PRICE_REASONS {PRICE_REASONS}")
            price_reason = np.where(price_changed, code, price_reason)

        # 4b. DC -> store shipments; a short DC allocates in proportion to the requests
        req = np.where(launched[None, :], np.asarray(orders.store, dtype=np.int64), 0)
        if deliv is not None:  # weekly deliveries: only requests that land on the store's delivery day ship
            req = np.where(ships_today[:, None], req, 0)
        dc_req = _per_dc(req, store_dc, D)
        req_ring[slot] = dc_req
        ratio = np.where(dc_req > 0, np.minimum(1.0, dc_oh / np.maximum(dc_req, 1)), 0.0)
        if dc_closed:
            ratio[outage[1]] = 0.0
        ship = np.floor(req * ratio[store_dc]).astype(np.int64)
        dc_shipped = _per_dc(ship, store_dc, D)
        dc_oh -= dc_shipped
        li, si = np.nonzero(ship)
        n = len(li)
        book.add(
            order_id=np.arange(next_id, next_id + n),
            kind=KIND_STORE,
            src=store_dc[li],
            dest=li,
            sku=si,
            ordered=ship[li, si],
            units=ship[li, si],
            order_day=t,
            expected_day=t + store_lt[li],
            arrival_day=t + store_lt[li],
        )
        next_id += n

        # 4c. store -> store transfers: along lanes only, at most the donor's stock
        transfers_out = np.zeros((L, S), dtype=np.int64)
        if orders.transfers is not None and len(orders.transfers["units"]):
            tr = {k: np.asarray(v, dtype=np.int64) for k, v in orders.transfers.items()}
            lt = lanes[tr["src"], tr["dest"]]
            ok = (lt >= 0) & (tr["units"] > 0) & (tr["src"] != tr["dest"])
            tr = {k: v[ok] for k, v in tr.items()}
            lt = lt[ok]
            # cap each line at what the donor still holds, lines served in the order given
            units = _cap_by_stock(tr["src"], tr["sku"], tr["units"], store_oh)
            np.subtract.at(store_oh, (tr["src"], tr["sku"]), units)
            keep = units > 0
            np.add.at(transfers_out, (tr["src"][keep], tr["sku"][keep]), units[keep])
            n = int(keep.sum())
            book.add(
                order_id=np.arange(next_id, next_id + n),
                kind=KIND_TRANSFER,
                src=tr["src"][keep],
                dest=tr["dest"][keep],
                sku=tr["sku"][keep],
                ordered=units[keep],
                units=units[keep],
                order_day=t,
                expected_day=t + lt[keep],
                arrival_day=t + lt[keep],
            )
            next_id += n

        if transfers_out.any():  # the observed end-of-day stock is after today's transfers left
            history.on_hand[t] = store_oh

        # 4d. purchase orders: suppliers deliver only orderable items
        po = np.where(orderable[None, :], np.asarray(orders.dc, dtype=np.int64), 0)
        di, sj = np.nonzero(po)
        n = len(di)
        draws = _supply_draws(network, t, di, sj)
        real_lt = _supplier_lead_times(network, sj, sup_mean, sup_std, draws)
        if scenario.lead_time_factor != 1.0 and scenario.active(t, measure_from):
            real_lt = np.rint(real_lt * scenario.lead_time_factor).astype(np.int64)
        # suppliers sometimes short-ship: the ERP expects the ordered units, fewer arrive
        short = draws["short"] > network.supplier_fill_prob[network.sku_supplier[sj]]
        shipped = np.where(short, np.floor(po[di, sj] * draws["frac"]), po[di, sj])
        book.add(
            order_id=np.arange(next_id, next_id + n),
            kind=KIND_SUPPLIER,
            src=network.sku_supplier[sj],
            dest=di,
            sku=sj,
            ordered=po[di, sj],
            units=shipped,
            order_day=t,
            expected_day=t + sup_mean[sj].astype(np.int64),
            arrival_day=t + real_lt,
        )
        next_id += n

        # forecasts the policy acted on (and the seasonal-naive yardstick), scored when their
        # target day's demand is known
        snaive = history.sales[t + _SN_SHIFT].astype(float) if t >= 7 else None  # same weekday, last week
        for i, f in enumerate((None if orders.forecast is None else np.asarray(orders.forecast), snaive)):
            if f is None:
                continue
            for j, h in enumerate(H):
                if h <= f.shape[0]:
                    fc_ring[i, j, (t + h) % R] = f[h - 1]
                    fc_target[i, j, (t + h) % R] = t + h
            if f.shape[0] >= SUM_DAYS:
                sum_ring[i, (t + SUM_DAYS) % R] = f[:SUM_DAYS].sum(axis=0)
                sum_target[i, (t + SUM_DAYS) % R] = t + SUM_DAYS
        sum_carried[(t + SUM_DAYS) % R] = store_carried

        # 5. record
        dc_carried = launched[None, :] & ((t < disc_abs)[None, :] | (dc_oh > 0))
        if t >= measure_from:
            over_units, over_value = overstock(store_oh, mu_sum / np.maximum(mu_days, 1), unit_cost, OVERSTOCK_WEEKS)
            acc = res.store
            acc["demand"] += demand
            acc["sales"] += sales
            acc["lost"] += demand - sales
            acc["revenue"] += sales * price
            acc["cogs"] += sales * unit_cost[None, :]
            acc["stockout_days"] += store_carried & (store_oh == 0)
            acc["active_days"] += store_carried
            acc["inventory_value_days"] += store_oh * unit_cost[None, :]
            acc["inventory_units_days"] += store_oh
            acc["order_lines"] += ship > 0
            acc["transfer_lines"] += transfers_out > 0
            acc["transfer_units"] += transfers_out
            acc["price_changes"] += price_changed
            acc["price_decreases"] += price_down
            acc["overstock_units_days"] += over_units
            acc["overstock_value_days"] += over_value
            for i, w in enumerate((sales * price, sales * unit_cost[None, :], sales, store_carried)):
                reason_acc[i] += np.bincount(reason_today.ravel(), weights=w.ravel(), minlength=len(PRICE_REASONS))
            res.dc["inventory_value_days"] += dc_oh * unit_cost[None, :]
            # network overstock behind each DC: its stock plus its stores', against its stores' demand
            net_units, net_value = overstock(
                dc_oh + _per_dc(store_oh, store_dc, D),
                _per_dc(mu_sum, store_dc, D) / np.maximum(mu_days, 1),
                unit_cost,
                OVERSTOCK_WEEKS,
            )
            res.dc["overstock_units_days"] += net_units
            res.dc["overstock_value_days"] += net_value
            res.dc["order_lines"] += po > 0
            res.dc["order_value"] += po * unit_cost[None, :]
            # order stability (bullwhip, order days): moments over the days the item was launched
            live = launched[None, :]
            acc["ship_units"] += ship
            acc["ship_sq"] += np.square(ship, dtype=float)
            acc["demand_sq"] += np.square(demand * live, dtype=float)
            acc["launched_days"] += live
            acc["active_order_days"] += (ship > 0) & store_carried
            acc["consecutive_order_days"] += (ship > 0) & ordered_yesterday
            dc = res.dc
            dc["po_units"] += po
            dc["po_sq"] += np.square(po, dtype=float)
            dc["request_units"] += dc_req
            dc["request_sq"] += np.square(dc_req, dtype=float)
            dc["launched_days"] += live
            dc["active_days"] += dc_carried
            dc["consecutive_order_days"] += (po > 0) & po_yesterday
            for i, src in enumerate(SCORED):
                # scored where the item was carried (forecasts exist for carried series only)
                for j, h in enumerate(H):
                    if fc_target[i, j, t % R] == t:
                        _score(acc, f"{src}_h{h}", fc_ring[i, j, t % R], demand, store_carried)
                if sum_target[i, t % R] == t and t - SUM_DAYS >= measure_from:
                    realised = running - cum_demand[(t - SUM_DAYS) % R]
                    _score(acc, f"{src}_hsum{SUM_DAYS}", sum_ring[i, t % R], realised, sum_carried[t % R])
            for j, h in enumerate(H):
                if fc_target[0, j, t % R] == t:
                    _score(acc, f"oracle_h{h}", oracle, demand, store_carried)
            if sum_target[0, t % R] == t and t - SUM_DAYS >= measure_from:
                _score(
                    acc,
                    f"oracle_hsum{SUM_DAYS}",
                    running_mu - cum_mu[(t - SUM_DAYS) % R],
                    running - cum_demand[(t - SUM_DAYS) % R],
                    sum_carried[t % R],
                )
            if t - measure_from >= NAIVE_LAG:
                acc["naive_abs_err"] += np.abs(demand - demand_ring[t % NAIVE_LAG]) * store_carried
                acc["naive_n"] += store_carried
            res.measured_days += 1
            daily_rows.append(
                (
                    dates[t],
                    float((store_oh * unit_cost).sum()),
                    float((dc_oh * unit_cost).sum()),
                    int(demand.sum()),
                    int(sales.sum()),
                    int((store_carried & (store_oh == 0)).sum()),
                    int(store_carried.sum()),
                    float((sales * price).sum()),
                    int((ship > 0).sum() + (po > 0).sum()),
                    int((transfers_out > 0).sum()),
                    int(price_changed.sum()),
                    int(price_down.sum()),
                    float(over_units.sum()),
                )
            )
            f1 = fc_ring[0, 0, t % R] if fc_target[0, 0, t % R] == t else None
            for (l, s), rows in sample_rows.items():
                rows.append(
                    (
                        dates[t],
                        int(demand[l, s]),
                        int(sales[l, s]),
                        int(store_oh[l, s]),
                        float(f1[l, s]) if f1 is not None else np.nan,
                        float(price[l, s]),
                    )
                )
        demand_ring[t % NAIVE_LAG] = demand
        ordered_yesterday, po_yesterday = ship > 0, po > 0
        running = running + demand
        cum_demand[t % R] = running
        running_mu = running_mu + oracle
        cum_mu[t % R] = running_mu

        if t < B:
            continue
        res.demand_units += int(demand.sum())
        res.sales_units += int(sales.sum())
        res.lost_units += int((demand - sales).sum())
        res.store_orders += int((ship > 0).sum())
        res.dc_orders += int((po > 0).sum())
        res.active_days += int(store_carried.sum())
        res.stockout_days += int((store_carried & (store_oh == 0)).sum())
        if progress is not None and (t - B) % 30 == 0:
            progress(t - B, cfg.days)
        if sink is not None:
            receipts = {k: due[k] for k in ("order_id", "kind", "src", "dest", "sku", "units", "order_day")}
            for extra in (launch_receipts, expedite):
                if extra is not None:
                    receipts = {k: np.concatenate([receipts[k], extra[k]]) for k in receipts}
            sink(
                DayRecord(
                    t=t,
                    date=dates[t],
                    demand=demand,
                    sales=sales,
                    price=price,
                    promo=network.promo_path[t],
                    store_on_hand=store_oh.copy(),
                    dc_on_hand=dc_oh.copy(),
                    store_carried=store_carried,
                    dc_carried=dc_carried,
                    receipts=receipts,
                    open_orders=book.snapshot(),
                    dc_shipped=dc_shipped,
                    transfers_out=transfers_out,
                    start_on_hand=start_oh,
                )
            )
    res.daily = pd.DataFrame(
        daily_rows,
        columns=[
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
        ],
    )
    res.samples = {
        p: pd.DataFrame(r, columns=["date", "demand", "sales", "on_hand", "forecast_h1", "price"])
        for p, r in sample_rows.items()
    }
    res.extra["margin_by_reason"] = _margin_by_reason(reason_acc)
    return res
