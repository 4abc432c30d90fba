"""A simulated retail network: master data and the hidden parameters of its demand.

Everything is drawn from one seed, so a (config, seed) pair always yields the same network.
The master-data frames follow landing-zone contract v1 exactly (extra columns are allowed by
the contract and kept: `launch_date`, `discontinue_date` on products, `store_size` on stores;
under weekly store deliveries also `delivery_weekday` on DC -> store lanes and
`delivery_days_per_week` on stores). Regimes (`regimes.py`) are switched on by config fields, are
all off by default, and each draws from its own stream (listed at the regime builders below).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, timedelta

import numpy as np
import pandas as pd

# Category archetypes: share of the assortment, price range, margin, elasticity, weekly profile
# (Mon..Sun), yearly amplitude and peak day-of-year, holiday sensitivity.
_ARCHETYPES = {  # name: (share, price range, margin range, elasticity range, amp, peak, holiday)
    "grocery":       (0.35, (1.0, 8.0), (0.22, 0.35), (-2.6, -1.4), 0.06, 330, 1.0),
    "fresh":         (0.20, (0.8, 6.0), (0.3, 0.45), (-2.2, -1.2), 0.15, 200, 0.8),
    "household":     (0.20, (2.0, 20.0), (0.28, 0.42), (-2.0, -1.0), 0.05, 100, 0.4),
    "personal_care": (0.15, (2.0, 15.0), (0.35, 0.55), (-1.8, -0.8), 0.08, 180, 0.3),
    "seasonal":      (0.10, (3.0, 40.0), (0.35, 0.6), (-3.0, -1.5), 0.55, 345, 1.6),
}  # fmt: skip
_WEEKLY = {  # Mon..Sun
    "grocery":       (0.90, 0.85, 0.88, 0.95, 1.10, 1.25, 1.07),
    "fresh":         (0.88, 0.84, 0.87, 0.95, 1.12, 1.28, 1.06),
    "household":     (0.95, 0.92, 0.93, 0.97, 1.05, 1.12, 1.06),
    "personal_care": (0.96, 0.94, 0.95, 0.98, 1.04, 1.10, 1.03),
    "seasonal":      (0.85, 0.80, 0.85, 0.95, 1.10, 1.35, 1.20),
}  # fmt: skip
CATEGORIES: dict[str, dict] = {
    name: dict(
        share=a[0], price=a[1], margin=a[2], elasticity=a[3], weekly=_WEEKLY[name], amp=a[4], peak=a[5], holiday=a[6]
    )
    for name, a in _ARCHETYPES.items()
}


# Holidays: (name, function year -> date), demand multiplier on the day, days of pre-holiday
# build-up and the multiplier during it. Multipliers are scaled by category sensitivity.
def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    d = date(year, month, 1)
    d += timedelta(days=(weekday - d.weekday()) % 7)
    return d + timedelta(weeks=n - 1)


def _last_weekday(year: int, month: int, weekday: int) -> date:
    d = date(year, month + 1, 1) - timedelta(days=1) if month < 12 else date(year, 12, 31)
    return d - timedelta(days=(d.weekday() - weekday) % 7)


def _easter(year: int) -> date:
    from dateutil.easter import easter

    return easter(year)


HOLIDAYS: list[tuple[str, object, float, int, float]] = [
    ("new_year", lambda y: date(y, 1, 1), 0.6, 2, 1.15),
    ("super_bowl", lambda y: _nth_weekday(y, 2, 6, 2), 1.3, 2, 1.2),
    ("easter", _easter, 0.7, 4, 1.25),
    ("memorial_day", lambda y: _last_weekday(y, 5, 0), 1.1, 3, 1.15),
    ("independence_day", lambda y: date(y, 7, 4), 1.0, 3, 1.25),
    ("labor_day", lambda y: _nth_weekday(y, 9, 0, 1), 1.1, 3, 1.1),
    ("thanksgiving", lambda y: _nth_weekday(y, 11, 3, 4), 0.5, 4, 1.45),
    ("black_friday", lambda y: _nth_weekday(y, 11, 3, 4) + timedelta(days=1), 1.5, 0, 1.0),
    ("christmas", lambda y: date(y, 12, 25), 0.15, 6, 1.35),
]


SUPPLIER_RELIABILITY = ("master", "unreliable")


@dataclass(frozen=True)
class NetworkConfig:
    """Scale and behaviour of a simulated network. Defaults are the demo network."""

    regions: int = 2
    dcs: int = 2
    stores: int = 8
    skus: int = 60
    suppliers: int = 6
    days: int = 365
    start_date: str = "2025-01-01"
    seed: int = 42
    intermittent_share: float = 0.25  # slow movers with many zero-demand days
    new_item_share: float = 0.05  # launched during the history
    discontinued_share: float = 0.05  # replenishment stops during the history
    promo_share: float = 0.45  # share of SKUs that get promoted
    price_change_share: float = 0.30  # share of SKUs with one permanent price change
    review_period_days: int = 1
    level_volatility: float = 0.04  # daily shock sd of the latent log demand level
    burn_in_days: int = 56  # simulated before start_date so the history starts in steady state
    categories: tuple[str, ...] = field(default_factory=lambda: tuple(CATEGORIES))
    # regimes (simulation/regimes.py documents each): every default is off, and off leaves the network,
    # its demand draws and the landing files byte-identical (each regime draws from its own stream)
    season_peak: float = 0.0  # > 1: the "seasonal" category's peak months sell this many times its off-season
    seasonal_share: float = 0.0  # > 0: share of the assortment in "seasonal" (0 = the CATEGORIES share)
    level_shift_rate: float = 0.0  # unannounced permanent level shifts per SKU per year
    shock_rate: float = 0.0  # short regional category shocks per region per 90 days
    bulk_buy_rate: float = 0.0  # P(bulk basket) per store x SKU x day of a fast mover
    supplier_reliability: str = "master"  # "unreliable": long late tail, understated master lead times
    post_promo_dip: float = 0.0  # demand dip after a promotion ends (pantry loading), share
    store_weekday_profiles: bool = False  # each store its own weekday profile
    store_delivery_days: int = 1  # 7: each store receives on one weekday only

    def __post_init__(self) -> None:
        for name in ("regions", "dcs", "stores", "skus", "suppliers", "days"):
            if getattr(self, name) < 1:
                raise ValueError(f"NetworkConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.dcs < self.regions:
            raise ValueError(f"every region needs a DC: dcs ({self.dcs}) < regions ({self.regions})")
        if self.stores < self.dcs:
            raise ValueError(f"every DC needs a store: stores ({self.stores}) < dcs ({self.dcs})")
        unknown = set(self.categories) - set(CATEGORIES)
        if unknown:
            raise ValueError(f"unknown categories {sorted(unknown)}; known: {sorted(CATEGORIES)}")
        for name in ("season_peak", "level_shift_rate", "shock_rate", "bulk_buy_rate"):
            if getattr(self, name) < 0:
                raise ValueError(f"NetworkConfig.{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.seasonal_share < 1 or not 0 <= self.post_promo_dip < 1 or self.bulk_buy_rate > 1:
            raise ValueError("seasonal_share and post_promo_dip must be in [0, 1), bulk_buy_rate in [0, 1]")
        if self.supplier_reliability not in SUPPLIER_RELIABILITY:
            raise ValueError(
                f"supplier_reliability must be one of {SUPPLIER_RELIABILITY}, got {self.supplier_reliability!r}"
            )
        if self.store_delivery_days not in (1, 7):
            raise ValueError(f"store_delivery_days must be 1 (daily) or 7 (weekly), got {self.store_delivery_days}")

    @property
    def start(self) -> date:
        return date.fromisoformat(self.start_date)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Network:
    """Master data (contract frames) plus the hidden demand and supply parameters."""

    config: NetworkConfig
    locations: pd.DataFrame
    products: pd.DataFrame
    suppliers: pd.DataFrame
    lanes: pd.DataFrame
    calendar: pd.DataFrame
    # hidden parameters, indexed by position (stores in locations order, skus in products order)
    store_ids: np.ndarray
    dc_ids: np.ndarray
    store_dc: np.ndarray  # dc position of each store
    store_factor: np.ndarray  # (L,)
    store_lead_time: np.ndarray  # (L,) DC->store days
    sku_base_rate: np.ndarray  # (S,) units/day at an average store, base price
    sku_dispersion: np.ndarray  # (S,) negative-binomial shape k
    sku_category: np.ndarray  # (S,) category position
    sku_elasticity: np.ndarray  # (S,)
    sku_trend: np.ndarray  # (S,) annual growth
    sku_amp: np.ndarray  # (S,) yearly amplitude
    sku_peak: np.ndarray  # (S,) day-of-year of the yearly peak
    sku_promo_lift: np.ndarray  # (S,) uplift beyond the price effect while promoted
    sku_supplier: np.ndarray  # (S,) supplier position
    sku_launch_day: np.ndarray  # (S,) day index (may be negative: launched before history)
    sku_discontinue_day: np.ndarray  # (S,) day index when replenishment stops (large = never)
    weekly: np.ndarray  # (C, 7)
    cat_holiday: np.ndarray  # (C,)
    supplier_lt_mean: np.ndarray
    supplier_lt_std: np.ndarray
    price_path: np.ndarray = field(repr=False)  # (T_total, S) shelf price per day, or (T_total, L, S) per store
    promo_path: np.ndarray = field(repr=False)  # (T_total, S) bool
    event_mult: np.ndarray = field(repr=False)  # (T_total, C)
    level_path: np.ndarray = field(repr=False)  # (T_total, S) latent demand level (AR(1) in logs)
    supplier_fill_prob: np.ndarray = field(default=None)  # (V,) P(an order ships complete)
    regular_price_path: np.ndarray = field(default=None, repr=False)  # (T_total, S) shelf price without promotions
    sku_promo_discount: np.ndarray = field(default=None)  # (S,) discount while promoted
    # replayed networks (real data, realdata/m5.py): the demand of each day is recorded, not drawn
    replay_demand: np.ndarray | None = field(default=None, repr=False)  # (T_total, L, S) units
    replay_mean: np.ndarray | None = field(default=None, repr=False)  # (T_total, L, S) expected (centred 28-day mean)
    # an importer's replay: every recorded sale is served, a shortfall arriving as an expedited receipt
    serve_recorded_sales: bool = False
    # regimes (regimes.py); None = off
    season_mult: np.ndarray | None = field(default=None, repr=False)  # (T_total, S) yearly factor, replaces the cosine
    shock_mult: np.ndarray | None = field(default=None, repr=False)  # (T_total, L, C) regional category shocks
    demand_shocks: pd.DataFrame | None = field(default=None, repr=False)  # region, category, start, days, factor
    store_weekday: np.ndarray | None = None  # (L, 7) store weekday profile (mean 1), times the category's
    store_delivery_weekday: np.ndarray | None = None  # (L,) the one weekday a store receives (0 = Monday)
    supplier_lt_true_mean: np.ndarray | None = None  # (V,) real mean lead time (the master may understate it)
    supplier_lt_true_std: np.ndarray | None = None  # (V,)
    supplier_late_prob: np.ndarray | None = None  # (V,) P(an order is late by 30-150% of its lead time)

    @property
    def sku_ids(self) -> np.ndarray:
        return self.products["sku_id"].to_numpy()

    @property
    def unit_cost(self) -> np.ndarray:
        return self.products["unit_cost"].to_numpy(float)

    @property
    def base_price(self) -> np.ndarray:
        return self.products["base_price"].to_numpy(float)

    @property
    def case_pack(self) -> np.ndarray:
        return self.products["case_pack"].to_numpy(np.int64)

    @property
    def min_order_qty(self) -> np.ndarray:
        return self.products["min_order_qty"].to_numpy(np.int64)


def _day_index_dates(cfg: NetworkConfig) -> pd.DatetimeIndex:
    """All simulated days, burn-in included (day index 0 is start_date)."""
    first = pd.Timestamp(cfg.start) - pd.Timedelta(days=cfg.burn_in_days)
    return pd.date_range(first, periods=cfg.burn_in_days + cfg.days, freq="D")


def build_network(cfg: NetworkConfig) -> Network:
    """Draw a network from `cfg.seed`. Deterministic: same config, same network. The parts are
    drawn from one stream in a fixed order (locations, suppliers, products, lanes, prices and
    promotions, level path, seasonal shape, trends and fill rates): reordering them would change
    every network."""
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 1]))
    cats = list(cfg.categories)
    T_total = cfg.burn_in_days + cfg.days
    loc = _draw_locations(cfg, rng)
    sup = _draw_suppliers(cfg, rng)
    prod = _draw_products(cfg, rng, cats, sup["supplier_ids"])
    _set_capacities(loc, prod["base_rate"], cfg.dcs)
    lanes = _draw_lanes(rng, loc, cfg.regions)
    dates = _day_index_dates(cfg)
    calendar, event_mult, cat_holiday = _calendar(cfg, cats, dates, T_total)
    prices = _draw_prices_and_promotions(cfg, rng, prod["base_price"], T_total)
    level_path = _draw_level_path(cfg, rng, T_total)
    weekly, amp, peak = _draw_seasonal_shape(rng, cats, prod["sku_cat"])
    S, V = cfg.skus, cfg.suppliers
    net = Network(
        config=cfg,
        locations=loc["locations"],
        products=prod["products"],
        suppliers=sup["suppliers"],
        lanes=lanes,
        calendar=calendar,
        store_ids=loc["store_ids"],
        dc_ids=loc["dc_ids"],
        store_dc=loc["store_dc"],
        store_factor=loc["store_factor"],
        store_lead_time=loc["store_lead_time"],
        sku_base_rate=prod["base_rate"],
        sku_dispersion=prod["dispersion"],
        sku_category=prod["sku_cat"],
        sku_elasticity=prod["elasticity"],
        sku_trend=rng.normal(0.02, 0.10, S),
        sku_amp=amp,
        sku_peak=peak,
        sku_promo_lift=prices["promo_lift"],
        sku_supplier=prod["sku_supplier"],
        sku_launch_day=prod["launch"],
        sku_discontinue_day=prod["disc"],
        weekly=weekly,
        cat_holiday=cat_holiday,
        supplier_lt_mean=sup["lt_mean"],
        supplier_lt_std=sup["lt_std"],
        price_path=prices["price_path"],
        promo_path=prices["promo_path"],
        event_mult=event_mult,
        level_path=level_path,
        supplier_fill_prob=np.round(rng.uniform(0.80, 0.97, V), 3),
        regular_price_path=prices["regular_path"],
        sku_promo_discount=prices["discount"],
    )
    _add_regimes(net, loc["dc_region"][loc["store_dc"]], dates)
    return net


def _draw_locations(cfg: NetworkConfig, rng) -> dict:
    """DCs spread over regions, stores over DCs (capacities are set from demand later)."""
    D, L = cfg.dcs, cfg.stores
    dc_ids = np.array([f"DC{d + 1:02d}" for d in range(D)])
    dc_region = np.arange(D) % cfg.regions
    store_ids = np.array([f"S{s + 1:03d}" for s in range(L)])
    store_dc = np.arange(L) % D
    store_factor = np.round(rng.lognormal(0.0, 0.35, L), 3)
    store_lead_time = rng.integers(1, 4, L)
    region_names = np.array([f"R{r + 1}" for r in range(cfg.regions)])
    locations = pd.DataFrame(
        {
            "location_id": np.concatenate([dc_ids, store_ids]),
            "location_type": ["dc"] * D + ["store"] * L,
            "region": np.concatenate([region_names[dc_region], region_names[dc_region[store_dc]]]),
            "supplying_dc_id": [""] * D + list(dc_ids[store_dc]),
            "capacity_units": np.zeros(D + L, dtype=np.int64),  # set by _set_capacities
            "store_size": np.concatenate([np.full(D, np.nan), store_factor]),
        }
    )
    return dict(
        dc_ids=dc_ids,
        dc_region=dc_region,
        store_ids=store_ids,
        store_dc=store_dc,
        store_factor=store_factor,
        store_lead_time=store_lead_time,
        locations=locations,
    )


def _draw_suppliers(cfg: NetworkConfig, rng) -> dict:
    V = cfg.suppliers
    supplier_ids = np.array([f"SUP{v + 1:03d}" for v in range(V)])
    lt_mean = rng.integers(4, 15, V).astype(float)
    lt_std = np.round(rng.uniform(0.5, 3.0, V), 2)
    return dict(
        supplier_ids=supplier_ids,
        lt_mean=lt_mean,
        lt_std=lt_std,
        suppliers=suppliers_frame(supplier_ids, lt_mean, lt_std),
    )


def suppliers_frame(supplier_ids: np.ndarray, lt_mean: np.ndarray, lt_std: np.ndarray) -> pd.DataFrame:
    """The suppliers master file: id, the lead time the master states (whole days) and its spread."""
    return pd.DataFrame(
        {"supplier_id": supplier_ids, "lead_time_days": lt_mean.astype(int), "lead_time_std_days": lt_std}
    )


def _category_range(cats: list, key: str, sku_cat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per SKU, the (low, high) of its category's `key` range in CATEGORIES."""
    lo = np.array([CATEGORIES[c][key][0] for c in cats])[sku_cat]
    hi = np.array([CATEGORIES[c][key][1] for c in cats])[sku_cat]
    return lo, hi


def _draw_products(cfg: NetworkConfig, rng, cats: list, supplier_ids: np.ndarray) -> dict:
    """Category, price, cost, elasticity, demand rate and dispersion, packs, supplier, and the
    launch and discontinue days of every SKU."""
    S = cfg.skus
    shares = np.array([CATEGORIES[c]["share"] for c in cats])
    if cfg.seasonal_share > 0 and "seasonal" in cats:  # the same draws, only the split moves
        i = cats.index("seasonal")
        rest = np.delete(shares, i)
        shares = np.insert(rest / rest.sum() * (1 - cfg.seasonal_share), i, cfg.seasonal_share)
    sku_cat = rng.choice(len(cats), size=S, p=shares / shares.sum())
    lo, hi = _category_range(cats, "price", sku_cat)
    base_price = np.round(np.exp(rng.uniform(np.log(lo), np.log(hi))), 1) - 0.01
    mlo, mhi = _category_range(cats, "margin", sku_cat)
    unit_cost = np.round(base_price * (1 - rng.uniform(mlo, mhi)), 2)
    elo, ehi = _category_range(cats, "elasticity", sku_cat)
    elasticity = rng.uniform(elo, ehi)
    slow = rng.random(S) < cfg.intermittent_share
    base_rate = np.where(slow, rng.uniform(0.04, 0.6, S), rng.lognormal(np.log(4.0), 0.8, S))
    dispersion = np.where(slow, rng.uniform(0.2, 1.0, S), rng.uniform(0.8, 5.0, S))
    case_pack = np.where(
        base_rate > 8,
        rng.choice([12, 24], S),
        np.where(base_rate > 1.5, rng.choice([6, 12], S), rng.choice([1, 2, 4], S)),
    ).astype(np.int64)
    min_order_qty = (case_pack * rng.integers(1, 4, S)).astype(np.int64)
    sku_supplier = rng.integers(0, cfg.suppliers, S)
    launch, disc, new, gone = _draw_lifecycle(cfg, rng)
    start = pd.Timestamp(cfg.start)
    products = pd.DataFrame(
        {
            "sku_id": [f"SKU{s + 1:05d}" for s in range(S)],
            "category": np.array(cats)[sku_cat],
            "supplier_id": supplier_ids[sku_supplier],
            "unit_cost": unit_cost,
            "base_price": np.round(base_price, 2),
            "case_pack": case_pack,
            "min_order_qty": min_order_qty,
            "launch_date": [
                (start + pd.Timedelta(days=int(d))).date().isoformat() if n else "" for d, n in zip(launch, new)
            ],
            "discontinue_date": [
                (start + pd.Timedelta(days=int(d))).date().isoformat() if g else "" for d, g in zip(disc, gone)
            ],
        }
    )
    return dict(
        sku_cat=sku_cat,
        base_price=base_price,
        elasticity=elasticity,
        base_rate=base_rate,
        dispersion=dispersion,
        sku_supplier=sku_supplier,
        launch=launch,
        disc=disc,
        products=products,
    )


def _draw_lifecycle(cfg: NetworkConfig, rng) -> tuple:
    """Launch and discontinue days (relative to the history's start): new items launch, and some
    others are discontinued, between 20% and 80% of the history."""
    S = cfg.skus
    launch = np.full(S, -cfg.burn_in_days - 1)
    disc = np.full(S, 10**9)
    window = (int(cfg.days * 0.2), max(int(cfg.days * 0.8), int(cfg.days * 0.2) + 1))
    new = rng.random(S) < cfg.new_item_share
    launch[new] = rng.integers(*window, new.sum())
    gone = (~new) & (rng.random(S) < cfg.discontinued_share)
    disc[gone] = rng.integers(*window, gone.sum())
    return launch, disc, new, gone


def _set_capacities(loc: dict, base_rate: np.ndarray, D: int) -> None:
    """Generous capacities from expected demand: stores ~ 6 weeks, DCs ~ 10 weeks."""
    mean_store_demand = loc["store_factor"] * base_rate.sum()
    store_cap = np.ceil(mean_store_demand * 42 / 100) * 100
    dc_cap = np.array([mean_store_demand[loc["store_dc"] == d].sum() * 70 for d in range(D)])
    loc["locations"]["capacity_units"] = np.concatenate([np.ceil(dc_cap / 1000) * 1000, store_cap]).astype(np.int64)


def _draw_lanes(rng, loc: dict, regions: int) -> pd.DataFrame:
    """DC -> store lanes, and store <-> store lanes inside a region."""
    store_ids, store_dc, dc_ids = loc["store_ids"], loc["store_dc"], loc["dc_ids"]
    L = len(store_ids)
    rows = [
        (dc_ids[store_dc[s]], store_ids[s], int(loc["store_lead_time"][s]), round(float(rng.uniform(0.05, 0.3)), 2))
        for s in range(L)
    ]
    store_region = loc["dc_region"][store_dc]
    for a in range(L):
        for b in range(L):
            if a != b and store_region[a] == store_region[b]:
                rows.append(
                    (store_ids[a], store_ids[b], int(rng.integers(1, 3)), round(float(rng.uniform(0.1, 0.6)), 2))
                )
    return pd.DataFrame(rows, columns=["from_location_id", "to_location_id", "lead_time_days", "cost_per_unit"])


def _calendar(cfg: NetworkConfig, cats: list, dates: pd.DatetimeIndex, T_total: int):
    """The holiday calendar (a year past the history too: a retailer knows its holidays ahead) and
    the daily event multipliers per category, with each holiday's build-up days."""
    years = range(dates[0].year, dates[-1].year + 2)
    cat_holiday = np.array([CATEGORIES[c]["holiday"] for c in cats])
    event_mult = np.ones((T_total, len(cats)))
    cal_rows = []
    first, start = dates[0], pd.Timestamp(cfg.start)
    for y in years:
        for name, fn, day_mult, build_days, build_mult in HOLIDAYS:
            d = pd.Timestamp(fn(y))
            i = (d - first).days
            if 0 <= i < T_total + 366 and d >= start:
                cal_rows.append((d.date().isoformat(), name))
            for k in range(1, build_days + 1):
                if 0 <= i - k < T_total:
                    event_mult[i - k] *= 1 + (build_mult - 1) * cat_holiday
            if 0 <= i < T_total:
                event_mult[i] *= np.clip(1 + (day_mult - 1) * cat_holiday, 0.05, None)
    calendar = pd.DataFrame(cal_rows, columns=["date", "event"]).sort_values("date", ignore_index=True)
    return calendar, event_mult, cat_holiday


def _draw_prices_and_promotions(cfg: NetworkConfig, rng, base_price: np.ndarray, T_total: int) -> dict:
    """Chain-wide prices: permanent price changes, and promotions of 7-14 days at 10-30% off."""
    S = cfg.skus
    price_path = np.tile(base_price, (T_total, 1))
    changed = rng.random(S) < cfg.price_change_share
    change_day = rng.integers(0, T_total, S)
    change = rng.choice([-0.08, -0.05, 0.04, 0.06, 0.09], S)
    for s in np.flatnonzero(changed):
        price_path[change_day[s] :, s] = np.round(base_price[s] * (1 + change[s]), 1) - 0.01
    regular_path = price_path.copy()
    promo_path = np.zeros((T_total, S), dtype=bool)
    promoted = rng.random(S) < cfg.promo_share
    for s in np.flatnonzero(promoted):
        n_promos = max(1, int(rng.poisson(6 * T_total / 365)))
        for st in rng.integers(0, T_total, n_promos):
            promo_path[st : st + int(rng.integers(7, 15)), s] = True
    discount = rng.choice([0.10, 0.15, 0.20, 0.25, 0.30], S)
    price_path = np.where(promo_path, np.round(regular_path * (1 - discount), 2), regular_path)
    promo_lift = np.where(promoted, rng.uniform(1.1, 1.6, S), 1.0)
    return dict(
        price_path=price_path,
        regular_path=regular_path,
        promo_path=promo_path,
        discount=discount,
        promo_lift=promo_lift,
    )


def _draw_level_path(cfg: NetworkConfig, rng, T_total: int) -> np.ndarray:
    """Latent level: mean-reverting AR(1) in logs, so popularity drifts and the moving average
    lags; times the level shifts of the regime, if on."""
    S = cfg.skus
    shocks = rng.normal(0.0, cfg.level_volatility, (T_total, S))
    log_level = np.zeros((T_total, S))
    for t in range(1, T_total):
        log_level[t] = 0.985 * log_level[t - 1] + shocks[t]
    level_path = np.exp(log_level - log_level.var(axis=0) / 2)
    if cfg.level_shift_rate > 0:
        level_path = level_path * _level_shifts(cfg, T_total, S)
    return level_path


def _draw_seasonal_shape(rng, cats: list, sku_cat: np.ndarray):
    """Each category's weekly profile, and each SKU's yearly amplitude and peak day around its
    category's."""
    S = len(sku_cat)
    weekly = np.array([CATEGORIES[c]["weekly"] for c in cats])
    amp = np.clip(np.array([CATEGORIES[c]["amp"] for c in cats])[sku_cat] * rng.uniform(0.5, 1.5, S), 0, 0.9)
    peak = np.array([CATEGORIES[c]["peak"] for c in cats])[sku_cat] + rng.integers(-20, 21, S)
    return weekly, amp, peak


def day_dates(cfg: NetworkConfig) -> pd.DatetimeIndex:
    return _day_index_dates(cfg)


# --- regimes (regimes.py documents them) ---------------------------------------------------
# Each draws from its own stream SeedSequence([seed, id]), so switching one on never moves the
# draws of the network or of another regime. Stream ids: 20 season, 21 level shifts, 22 shocks,
# 23 bulk buys (demand.py, per day), 24 supplier master vs truth, 25 supplier deliveries
# (engine.py), 26 store weekday profiles, 27 store delivery weekdays.
SEASON_FLAT_DAYS = 30  # the season's plateau: peak day +- 30 days at full height (two months)
SEASON_RAMP_DAYS = 21  # ... reached over three weeks on either side
LEVEL_SHIFT_SD = 0.35  # log-sd of a level shift's factor
SHOCK_SPIKE = (2.5, 4.0)
SHOCK_SLUMP = (0.3, 0.5)
SHOCK_DAYS = (3, 10)
SHOCK_SPIKE_PROB = 0.6  # shocks are spikes (a heatwave, a local event) more often than slumps (a road closure)
SUMMER_SEASON_PROB = 0.4  # seasonal items peaking in summer (garden, barbecue) instead of at Christmas


def _stream(cfg: NetworkConfig, stream_id: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([cfg.seed, stream_id]))


def yearly_cosine(doy, amp: np.ndarray, peak: np.ndarray) -> np.ndarray:
    """The gentle yearly cycle every category has (the demand model's default yearly factor)."""
    return 1.0 + amp * np.cos(2 * np.pi * (doy - peak) / 365.25)


def season_bump(doy: np.ndarray, peak_day: np.ndarray, peak: float) -> np.ndarray:
    """(len(doy), len(peak_day)) yearly factor: `peak` times the off-season level within
    SEASON_FLAT_DAYS of each peak day, a smooth (half-cosine) ramp over SEASON_RAMP_DAYS, flat
    off-season; scaled to a yearly mean of 1, so a season moves demand within the year without
    changing the item's annual volume."""

    def shape(d):
        dist = np.abs((d - peak_day[None, :] + 182.625) % 365.25 - 182.625)  # circular distance in days
        w = np.clip((SEASON_FLAT_DAYS + SEASON_RAMP_DAYS - dist) / SEASON_RAMP_DAYS, 0.0, 1.0)
        return 1.0 + (peak - 1.0) * (0.5 - 0.5 * np.cos(np.pi * w))

    year_mean = shape(np.arange(1, 366)[:, None]).mean(axis=0)
    return shape(np.asarray(doy)[:, None]) / year_mean[None, :]


def _level_shifts(cfg: NetworkConfig, T: int, S: int) -> np.ndarray:
    """(T, S) multiplier: Poisson(level_shift_rate a year) permanent shifts per SKU, each a
    lognormal factor from its day on (step changes a moving average only catches up with)."""
    rng = _stream(cfg, 21)
    n = rng.poisson(cfg.level_shift_rate * T / 365, S)
    sku = np.repeat(np.arange(S), n)
    steps = np.zeros((T, S))
    np.add.at(steps, (rng.integers(1, T, n.sum()), sku), rng.normal(0.0, LEVEL_SHIFT_SD, n.sum()))
    return np.exp(np.cumsum(steps, axis=0))


def _demand_shocks(cfg: NetworkConfig, store_region: np.ndarray, T: int, C: int) -> tuple[np.ndarray, pd.DataFrame]:
    """(T, L, C) multiplier and the event list: per region Poisson(shock_rate per 90 days) shocks,
    each one category in that region's stores, x2.5-4 (spike) or x0.3-0.5 (slump) for 3-10 days."""
    rng = _stream(cfg, 22)
    mult = np.ones((T, len(store_region), C))
    rows = []
    for r in range(cfg.regions):
        for _ in range(int(rng.poisson(cfg.shock_rate * T / 90))):
            cat, start = int(rng.integers(C)), int(rng.integers(T))
            days = int(rng.integers(SHOCK_DAYS[0], SHOCK_DAYS[1] + 1))
            factor = float(rng.uniform(*SHOCK_SPIKE) if rng.random() < SHOCK_SPIKE_PROB else rng.uniform(*SHOCK_SLUMP))
            mult[start : start + days, store_region == r, cat] *= factor
            rows.append((r, cat, start, days, factor))
    return mult, pd.DataFrame(rows, columns=["region", "category", "start", "days", "factor"])


def _season(net: Network, dates: pd.DatetimeIndex) -> np.ndarray:
    """(T, S) yearly factor: the category cosine for every SKU, the season bump for "seasonal" ones
    (a share of which peak in summer instead; their `sku_peak` says which)."""
    cfg = net.config
    rng = _stream(cfg, 20)
    cats = list(cfg.categories)
    doy = dates.dayofyear.to_numpy()
    mult = yearly_cosine(doy[:, None], net.sku_amp[None, :], net.sku_peak[None, :])
    if "seasonal" in cats:
        seasonal = np.flatnonzero(net.sku_category == cats.index("seasonal"))
        summer = rng.random(len(seasonal)) < SUMMER_SEASON_PROB
        net.sku_peak = net.sku_peak.copy()
        net.sku_peak[seasonal[summer]] = rng.integers(170, 211, int(summer.sum()))
        mult[:, seasonal] = season_bump(doy, net.sku_peak[seasonal], cfg.season_peak)
    return mult


def _unreliable_suppliers(net: Network) -> None:
    """The real supply behind the master: half the suppliers' true mean lead time exceeds the
    master's by 15-50%, spreads are 1-2x the master's, 15-25% of orders are late (the engine
    stretches them by 30-150%), and orders ship complete with probability 0.60-0.85 only."""
    rng = _stream(net.config, 24)
    V = len(net.supplier_lt_mean)
    understated = rng.random(V) < 0.5
    net.supplier_lt_true_mean = net.supplier_lt_mean * np.where(understated, rng.uniform(1.15, 1.5, V), 1.0)
    net.supplier_lt_true_std = net.supplier_lt_std * rng.uniform(1.0, 2.0, V)
    net.supplier_late_prob = rng.uniform(0.15, 0.25, V)
    net.supplier_fill_prob = np.round(rng.uniform(0.60, 0.85, V), 3)


def _store_weekdays(cfg: NetworkConfig, L: int) -> np.ndarray:
    """(L, 7) profiles of mean 1: a weekly cosine of amplitude 0.25-0.5 peaking on each store's own
    day (mostly Thursday to Sunday: a commuter store peaks on Friday, a suburban one on Saturday)."""
    rng = _stream(cfg, 26)
    peak = rng.choice(7, L, p=[0.06, 0.06, 0.08, 0.12, 0.22, 0.24, 0.22])
    amp = rng.uniform(0.25, 0.5, L)
    return 1.0 + amp[:, None] * np.cos(2 * np.pi * (np.arange(7)[None, :] - peak[:, None]) / 7)


def _weekly_delivery(net: Network) -> None:
    """One delivery weekday per store, written to the master data (extra columns the contract keeps):
    `delivery_weekday` on the DC -> store lanes, `delivery_days_per_week` on the locations."""
    L = len(net.store_ids)
    net.store_delivery_weekday = _stream(net.config, 27).integers(0, 7, L)
    lanes = net.lanes.copy()
    day = pd.Series(net.store_delivery_weekday, index=net.store_ids)
    to_store = lanes["from_location_id"].isin(set(net.dc_ids))
    lanes["delivery_weekday"] = pd.array(np.where(to_store, lanes["to_location_id"].map(day), pd.NA), dtype="Int64")
    net.lanes = lanes
    locations = net.locations.copy()
    is_store = locations["location_type"] == "store"
    locations["delivery_days_per_week"] = pd.array(np.where(is_store, 1, pd.NA), dtype="Int64")
    net.locations = locations


def _add_regimes(net: Network, store_region: np.ndarray, dates: pd.DatetimeIndex) -> None:
    """Switch on the regimes `net.config` asks for (level shifts are already in the level path)."""
    cfg = net.config
    if cfg.season_peak > 1:
        net.season_mult = _season(net, dates)
    if cfg.shock_rate > 0:
        net.shock_mult, net.demand_shocks = _demand_shocks(cfg, store_region, len(dates), len(cfg.categories))
    if cfg.supplier_reliability == "unreliable":
        _unreliable_suppliers(net)
    if cfg.store_weekday_profiles:
        net.store_weekday = _store_weekdays(cfg, len(net.store_ids))
    if cfg.store_delivery_days == 7:
        _weekly_delivery(net)
