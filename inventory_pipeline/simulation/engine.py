"""Day-by-day simulation of a store network under a replenishment policy.

Each day t:
  1. orders due today arrive (suppliers -> DCs, DCs -> stores) and are logged as receipts;
  2. demand is drawn (common random numbers) and served from store stock; unmet demand is lost;
  3. the end-of-day inventory snapshot is taken;
  4. the policy sees sales, on hand and open orders (never the true demand) and orders:
     stores request from their DC (shipped today if the DC has the stock, shortages allocated
     in proportion to the requests), DCs order from suppliers whose real lead time is drawn
     from N(mean, std) while the ERP records the expected date from the mean;
  5. the open-orders snapshot is taken.

Everything is vectorised over SKU x location; the only Python loop is over days.
A `DayRecord` per simulated day (burn-in excluded) goes to an optional sink, e.g. the
landing-zone writer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from .demand import DemandModel
from .network import Network, day_dates
from .policies import Observation, Orders, Policy

KIND_SUPPLIER, KIND_STORE, KIND_LAUNCH_DC, KIND_LAUNCH_STORE = 0, 1, 2, 3
TO_STORE_KINDS = (KIND_STORE, KIND_LAUNCH_STORE)
MA_WINDOW = 28


@dataclass
class DayRecord:
    """What happened on one day, in positional arrays (locations: DCs first, then stores)."""

    t: int
    date: pd.Timestamp
    demand: np.ndarray  # (L, S)
    sales: np.ndarray  # (L, S)
    price: np.ndarray  # (S,)
    promo: np.ndarray  # (S,)
    store_on_hand: np.ndarray  # (L, S) end of day
    dc_on_hand: np.ndarray  # (D, S) end of day
    store_carried: np.ndarray  # (L, S) bool
    dc_carried: np.ndarray  # (D, S) bool
    receipts: dict  # arrays: order_id, kind, dest, sku, units (dest is store or DC position)
    open_orders: dict  # arrays of the pending book after today's orders
    dc_shipped: np.ndarray  # (D, S) units shipped to stores today


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

    def pop_due(self, t: int) -> dict:
        due = self.a["arrival_day"] <= t
        out = {c: v[due] for c, v in self.a.items()}
        self.a = {c: v[~due] for c, v in self.a.items()}
        return out

    def on_order(self, kind: int, shape: tuple[int, int]) -> np.ndarray:
        m = self.a["kind"] == kind
        out = np.zeros(shape, dtype=np.int64)
        np.add.at(out, (self.a["dest"][m], self.a["sku"][m]), self.a["ordered"][m])
        return out

    def snapshot(self) -> dict:
        return {c: v.copy() for c, v in self.a.items()}


def simulate(
    network: Network,
    policy: Policy,
    sink: Callable[[DayRecord], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SimulationResult:
    cfg = network.config
    dm = DemandModel(network)
    dates = day_dates(cfg)
    T, B = len(dates), cfg.burn_in_days
    L, S, D = len(network.store_ids), len(network.sku_ids), len(network.dc_ids)
    case_pack, moq = network.case_pack, network.min_order_qty
    sup_mean = network.supplier_lt_mean[network.sku_supplier]
    sup_std = network.supplier_lt_std[network.sku_supplier]
    store_dc = network.store_dc
    store_lt = network.store_lead_time
    launch_abs = network.sku_launch_day + B
    disc_abs = network.sku_discontinue_day + B
    lt_rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 3]))

    # steady-state start: stock for the lead time plus the rule's buffers
    mu0 = dm.mean(0)
    launched0 = launch_abs <= 0
    store_oh = np.where(launched0, np.ceil(mu0 * (store_lt[:, None] + 14)), 0).astype(np.int64)
    dc_mu0 = np.stack([mu0[store_dc == d].sum(axis=0) for d in range(D)])
    dc_oh = np.where(launched0, np.ceil(dc_mu0 * (sup_mean + 14)), 0).astype(np.int64)
    sales_ring = np.repeat(mu0[None], MA_WINDOW, axis=0)
    req_ring = np.repeat(dc_mu0[None], MA_WINDOW, axis=0)
    ring_days = np.full(S, MA_WINDOW)  # days of history inside the ring, per SKU (launches)
    book = _OrderBook()
    next_id = 1
    res = SimulationResult(days=cfg.days)

    for t in range(T):
        launched = launch_abs <= t
        orderable = launched & (t < disc_abs)
        # 0. launch fills: a planogram fill of two weeks of expected demand
        new = np.flatnonzero(launch_abs == t)
        launch_receipts = None
        if len(new):
            mu = dm.mean(t)[:, new]
            fill = np.maximum(np.ceil(mu * 14), 1).astype(np.int64)
            store_oh[:, new] += fill
            dc_fill = np.stack([fill[store_dc == d].sum(axis=0) for d in range(D)])
            dc_oh[:, new] += dc_fill
            li, si = np.meshgrid(np.arange(L), new, indexing="ij")
            di, sj = np.meshgrid(np.arange(D), new, indexing="ij")
            launch_receipts = dict(
                order_id=-np.concatenate([si.ravel(), sj.ravel()]) - 1,  # negative: launch fill
                kind=np.concatenate([np.full(L * len(new), KIND_LAUNCH_STORE), np.full(D * len(new), KIND_LAUNCH_DC)]),
                dest=np.concatenate([li.ravel(), di.ravel()]),
                sku=np.concatenate([si.ravel(), sj.ravel()]),
                units=np.concatenate([fill.ravel(), dc_fill.ravel()]),
            )
            sales_ring[:, :, new] = 0
            req_ring[:, :, new] = 0
            ring_days[new] = 0

        # 1. arrivals
        due = book.pop_due(t)
        to_store = due["kind"] == KIND_STORE
        np.add.at(store_oh, (due["dest"][to_store], due["sku"][to_store]), due["units"][to_store])
        to_dc = due["kind"] == KIND_SUPPLIER
        np.add.at(dc_oh, (due["dest"][to_dc], due["sku"][to_dc]), due["units"][to_dc])

        # 2. demand and sales
        mean = dm.mean(t)
        demand = dm.draw(t, mean)
        sales = np.minimum(demand, store_oh)
        store_oh -= sales

        # 3. observe and order
        slot = t % MA_WINDOW
        sales_ring[slot] = sales
        ring_days = np.minimum(ring_days + 1, MA_WINDOW)
        denom = np.maximum(ring_days, 1)
        store_ma = sales_ring.sum(axis=0) / denom
        obs = Observation(
            t=t,
            store_on_hand=store_oh,
            store_on_order=book.on_order(KIND_STORE, (L, S)),
            dc_on_hand=dc_oh,
            dc_on_order=book.on_order(KIND_SUPPLIER, (D, S)),
            store_sales_ma=store_ma,
            dc_requests_ma=req_ring.sum(axis=0) / denom,
            store_lead_time=store_lt,
            supplier_lead_time=sup_mean,
            case_pack=case_pack,
            min_order_qty=moq,
            orderable=orderable,
            launched=launched,
        )
        orders: Orders = policy.decide(obs)
        req = np.asarray(orders.store, dtype=np.int64)
        dc_req = np.stack([req[store_dc == d].sum(axis=0) for d in range(D)])
        req_ring[slot] = dc_req
        # DC fulfils store requests; a short DC allocates in proportion to the requests
        ratio = np.where(dc_req > 0, np.minimum(1.0, dc_oh / np.maximum(dc_req, 1)), 0.0)
        ship = np.floor(req * ratio[store_dc]).astype(np.int64)
        dc_shipped = np.stack([ship[store_dc == d].sum(axis=0) for d in range(D)])
        dc_oh -= dc_shipped
        li, si = np.nonzero(ship)
        n = len(li)
        book.add(
            order_id=np.arange(next_id, next_id + n), kind=KIND_STORE, src=store_dc[li], dest=li, sku=si,
            ordered=ship[li, si], units=ship[li, si], order_day=t, expected_day=t + store_lt[li], arrival_day=t + store_lt[li],
        )
        next_id += n
        po = np.asarray(orders.dc, dtype=np.int64)
        di, sj = np.nonzero(po)
        n = len(di)
        real_lt = np.maximum(1, np.rint(lt_rng.normal(sup_mean[sj], sup_std[sj]))).astype(np.int64)
        # suppliers sometimes short-ship: the ERP expects the ordered units, fewer arrive
        short = lt_rng.random(n) > network.supplier_fill_prob[network.sku_supplier[sj]]
        shipped = np.where(short, np.floor(po[di, sj] * lt_rng.uniform(0.3, 0.9, n)), po[di, sj])
        book.add(
            order_id=np.arange(next_id, next_id + n), kind=KIND_SUPPLIER, src=network.sku_supplier[sj], dest=di,
            sku=sj, ordered=po[di, sj], units=shipped, order_day=t, expected_day=t + sup_mean[sj].astype(np.int64),
            arrival_day=t + real_lt,
        )
        next_id += n

        if t < B:
            continue
        store_carried = launched[None, :] & ((t < disc_abs)[None, :] | (store_oh > 0))
        dc_carried = launched[None, :] & ((t < disc_abs)[None, :] | (dc_oh > 0))
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
            receipts = {k: due[k] for k in ("order_id", "kind", "dest", "sku", "units")}
            if launch_receipts is not None:
                receipts = {k: np.concatenate([receipts[k], launch_receipts[k]]) for k in receipts}
            sink(
                DayRecord(
                    t=t, date=dates[t], demand=demand, sales=sales, price=network.price_path[t],
                    promo=network.promo_path[t], store_on_hand=store_oh.copy(), dc_on_hand=dc_oh.copy(),
                    store_carried=store_carried, dc_carried=dc_carried, receipts=receipts,
                    open_orders=book.snapshot(), dc_shipped=dc_shipped,
                )
            )
    return res
