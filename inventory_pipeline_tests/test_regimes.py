"""The simulator's regimes: each acts where it says and nowhere else, the defaults
leave the network byte-identical, and the twin's stock laws hold in every world."""

import dataclasses
import hashlib
import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inventory_pipeline.networks import build_from_config
from inventory_pipeline.simulation import NetworkConfig, build_network, generate_landing_zone
from inventory_pipeline.simulation.demand import POST_PROMO_DAYS, DemandModel, post_promo_multiplier
from inventory_pipeline.simulation.engine import KIND_STORE, KIND_SUPPLIER, simulate
from inventory_pipeline.simulation.network import season_bump, yearly_cosine
from inventory_pipeline.simulation.policies import PRICE_REASONS, BaselinePolicy, Observation, Orders
from inventory_pipeline.simulation.regimes import WORLDS, world_config
from inventory_pipeline_tests.helpers import random_transfers
from inventory_pipeline_tests.test_twin import assert_stock_conserved

# sha256 of the default network's arrays, master frames and three days' means and draws, computed
# on the simulator before regimes existed (commit efa319a): the defaults must never move it
DEFAULT_FINGERPRINT = "7c0cb8fbc8f4435b0708498bc7bece850ecf5d6ba2985858634ff3c3a14b4047"

SMALL = dict(regions=2, dcs=2, stores=4, skus=30, suppliers=3, days=120, seed=5, burn_in_days=14)
FEW = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _fingerprint(net) -> str:
    h = hashlib.sha256()
    for a in (
        net.price_path,
        net.level_path,
        net.promo_path,
        net.event_mult,
        net.regular_price_path,
        net.store_factor,
        net.sku_base_rate,
        net.supplier_fill_prob,
    ):
        h.update(np.ascontiguousarray(np.round(np.asarray(a, dtype=float), 9)).tobytes())
    for df in (net.locations, net.products, net.suppliers, net.lanes, net.calendar):
        h.update(df.to_csv(index=False).encode())
    dm = DemandModel(net)
    for t in (0, 100, 300):
        m = dm.mean(t)
        h.update(np.round(m, 9).tobytes())
        h.update(dm.draw(t, m).tobytes())
    return h.hexdigest()


def _pair(base: dict | None = None, **regime):
    """(base network, the same network with `regime` on); `base` overrides SMALL in both."""
    base = NetworkConfig(**{**SMALL, **(base or {})})
    return build_network(base), build_network(dataclasses.replace(base, **regime))


def _changed_fields(a, b) -> set[str]:
    out = set()
    for f in dataclasses.fields(a):
        if f.name == "config":
            continue
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, pd.DataFrame) or isinstance(y, pd.DataFrame):
            same = isinstance(x, pd.DataFrame) and isinstance(y, pd.DataFrame) and x.equals(y)
        elif x is None or y is None:
            same = x is None and y is None
        else:
            same = np.array_equal(np.asarray(x), np.asarray(y))
        if not same:
            out.add(f.name)
    return out


def _means(net) -> np.ndarray:
    dm = DemandModel(net)
    return np.stack([dm.mean(t) for t in range(dm.n_days)])


# --- defaults and configuration -------------------------------------------------------------


def test_defaults_leave_the_network_and_its_draws_byte_identical():
    assert _fingerprint(build_network(NetworkConfig())) == DEFAULT_FINGERPRINT


@pytest.mark.parametrize("world", list(WORLDS))
def test_every_world_round_trips_through_network_json(world):
    cfg = world_config(world, stores=4, skus=20, days=40, seed=3)
    back = json.loads(json.dumps({"config": cfg.to_dict()}, sort_keys=True, default=str))["config"]
    net = build_from_config(back)
    assert net.config == cfg
    assert np.array_equal(net.level_path, build_network(cfg).level_path)


def test_world_config_sizes_the_network_and_names_the_known_worlds():
    cfg = world_config("shocks", stores=4, skus=100, days=50, seed=1, burn_in_days=7)
    assert (cfg.regions, cfg.dcs, cfg.suppliers, cfg.burn_in_days) == (2, 2, 5, 7)
    assert cfg.shock_rate == 1.5 and cfg.level_shift_rate == 1.0 and cfg.bulk_buy_rate > 0
    assert world_config("base", stores=2, skus=10, days=30, seed=1).regions == 1
    everything = world_config("everything", stores=4, skus=20, days=30, seed=1)
    for overrides in WORLDS.values():
        for k, v in overrides.items():
            assert getattr(everything, k) == v
    with pytest.raises(ValueError, match="known worlds: base, seasonal"):
        world_config("mars", stores=4, skus=20, days=30, seed=1)
    with pytest.raises(ValueError, match="store_delivery_days"):
        NetworkConfig(store_delivery_days=3)
    with pytest.raises(ValueError, match="supplier_reliability"):
        NetworkConfig(supplier_reliability="flaky")


# --- each regime changes what it says and nothing else -------------------------------------

REGIME_FIELDS = [
    (dict(season_peak=4.0), {"season_mult", "sku_peak"}),
    (dict(level_shift_rate=2.0), {"level_path"}),
    (dict(shock_rate=3.0), {"shock_mult", "demand_shocks"}),
    (dict(bulk_buy_rate=0.01), set()),  # demand model only
    (dict(post_promo_dip=0.3), set()),  # demand model only
    (
        dict(supplier_reliability="unreliable"),
        {"supplier_fill_prob", "supplier_lt_true_mean", "supplier_lt_true_std", "supplier_late_prob"},
    ),
    (dict(store_weekday_profiles=True), {"store_weekday"}),
    (dict(store_delivery_days=7), {"store_delivery_weekday", "lanes", "locations"}),
]


@pytest.mark.parametrize("regime,fields", REGIME_FIELDS, ids=[next(iter(r)) for r, _ in REGIME_FIELDS])
def test_a_regime_changes_only_its_own_network_fields(regime, fields):
    base, on = _pair(**regime)
    assert _changed_fields(base, on) == fields


def test_season_bump_hand_checked():
    # peak day 200, peak 4: x4 within 30 days of the peak, x1 off-season, half-way up mid-ramp
    b = season_bump(np.array([200, 230, 240.5, 251, 20]), np.array([200.0]), 4.0)[:, 0]
    assert b[0] / b[4] == pytest.approx(4.0) and b[1] / b[4] == pytest.approx(4.0)
    assert b[2] / b[4] == pytest.approx(2.5) and b[3] / b[4] == pytest.approx(1.0)
    # the yearly mean is 1: a season moves demand within the year, not the annual volume
    assert season_bump(np.arange(1, 366), np.array([30.0, 345.0]), 4.0).mean(axis=0) == pytest.approx([1, 1], abs=0.01)


@FEW
@given(peak=st.floats(2.0, 6.0), seed=st.integers(0, 10_000))
def test_season_peaks_the_seasonal_category_only(peak, seed):
    base_cfg = NetworkConfig(
        regions=1, dcs=1, stores=1, skus=30, suppliers=2, days=365, seed=seed, burn_in_days=7, seasonal_share=0.4
    )
    base, on = build_network(base_cfg), build_network(dataclasses.replace(base_cfg, season_peak=peak))
    seasonal = on.sku_category == list(base_cfg.categories).index("seasonal")
    assert seasonal.any()
    dm0, dm1 = DemandModel(base), DemandModel(on)
    doy = dm1.dates.dayofyear.to_numpy()
    ratio = np.stack([dm1.sku_mean(t) / np.maximum(dm0.sku_mean(t), 1e-300) for t in range(0, len(doy), 5)])
    launched = np.stack([dm0.sku_mean(t) > 0 for t in range(0, len(doy), 5)])
    assert (ratio[:, ~seasonal][launched[:, ~seasonal]] == 1.0).all()  # every other category untouched
    # the seasonal SKUs' yearly factor: peak month (within 15 days of the peak) vs off-season (90+ days away)
    dist = np.abs((doy[:, None] - on.sku_peak[None, seasonal] + 182.625) % 365.25 - 182.625)
    f = on.season_mult[:, seasonal]
    peak_month = np.nanmean(np.where(dist <= 15, f, np.nan), axis=0)
    off_season = np.nanmean(np.where(dist >= 90, f, np.nan), axis=0)
    assert ((peak_month / off_season >= 0.8 * peak) & (peak_month / off_season <= 1.25 * peak)).all()
    # and that factor is exactly what replaced the cosine in the demand mean
    cos = yearly_cosine(doy[::5, None], on.sku_amp[None, seasonal], base.sku_peak[None, seasonal])
    sel = launched[:, seasonal]
    assert np.allclose((ratio[:, seasonal] * cos)[sel], f[::5][sel], rtol=1e-9)


@FEW
@given(rate=st.floats(0.5, 4.0), seed=st.integers(0, 10_000))
def test_level_shifts_are_permanent_steps_of_the_level_path_only(rate, seed):
    cfg = NetworkConfig(regions=1, dcs=1, stores=1, skus=20, suppliers=2, days=200, seed=seed, burn_in_days=7)
    base, on = build_network(cfg), build_network(dataclasses.replace(cfg, level_shift_rate=rate))
    assert _changed_fields(base, on) <= {"level_path"}
    step = np.log(on.level_path / base.level_path)
    assert np.allclose(step[0], 0.0)  # no shift before the first day
    jumps = np.abs(np.diff(step, axis=0)) > 1e-9
    # steps, not drift: between jumps the factor is constant, and there are about rate x years of them
    assert jumps.sum() <= 4 * rate * len(step) / 365 * cfg.skus + 10
    flat = np.abs(np.diff(step, axis=0))[~jumps]
    assert (flat < 1e-9).all()


@FEW
@given(rate=st.floats(0.5, 4.0), seed=st.integers(0, 10_000))
def test_shocks_hit_only_their_region_category_and_window(rate, seed):
    cfg = NetworkConfig(regions=2, dcs=2, stores=4, skus=20, suppliers=2, days=90, seed=seed, burn_in_days=7)
    base, on = build_network(cfg), build_network(dataclasses.replace(cfg, shock_rate=rate))
    store_region = (np.arange(2) % 2)[base.store_dc]
    expected = np.ones_like(on.shock_mult)
    for ev in on.demand_shocks.itertuples():
        lo, hi = (2.5, 4.0) if ev.factor > 1 else (0.3, 0.5)
        assert lo <= ev.factor <= hi and 3 <= ev.days <= 10
        expected[ev.start : ev.start + ev.days, store_region == ev.region, ev.category] *= ev.factor
    assert np.array_equal(on.shock_mult, expected)
    m0, m1 = _means(base), _means(on)
    live = m0 > 0
    want = expected[:, :, on.sku_category]
    assert np.allclose(m1[live], (m0 * want)[live], rtol=1e-12)
    assert (m1[live & (want == 1.0)] == m0[live & (want == 1.0)]).all()  # untouched elsewhere, bit for bit


def test_shocks_hand_checked_on_one_event():
    base, on = _pair(shock_rate=2.0)
    ev = on.demand_shocks.iloc[0]
    r, c, t, factor = int(ev.region), int(ev.category), int(ev.start), float(ev.factor)
    region = (np.arange(2) % 2)[on.store_dc]
    l_in, l_out = np.flatnonzero(region == r)[0], np.flatnonzero(region != r)[0]
    s = np.flatnonzero((on.sku_category == c) & (on.sku_launch_day < 0))[0]
    m0, m1 = DemandModel(base).mean(t), DemandModel(on).mean(t)
    ev_on_day = on.demand_shocks[(on.demand_shocks.start <= t) & (on.demand_shocks.start + on.demand_shocks.days > t)]
    same = ev_on_day[(ev_on_day.region == r) & (ev_on_day.category == c)]
    other = ev_on_day[(ev_on_day.region != r) & (ev_on_day.category == c)]
    assert m1[l_in, s] / m0[l_in, s] == pytest.approx(np.prod(same.factor)) and factor in same.factor.tolist()
    assert m1[l_out, s] / m0[l_out, s] == pytest.approx(np.prod(other.factor))  # 1 unless its own region is hit


@FEW
@given(seed=st.integers(0, 10_000), t=st.integers(0, 60), rate=st.floats(0.01, 0.2))
def test_bulk_buys_add_to_the_draw_only_as_documented_and_keep_common_random_numbers(seed, t, rate):
    cfg = NetworkConfig(regions=1, dcs=1, stores=3, skus=20, suppliers=2, days=60, seed=seed, burn_in_days=7)
    base, on = build_network(cfg), build_network(dataclasses.replace(cfg, bulk_buy_rate=rate))
    dm0, dm1 = DemandModel(base), DemandModel(on)
    mean = dm1.mean(t)
    assert np.array_equal(mean, dm0.mean(t))  # bulk baskets are not part of the mean
    bulk = dm1.bulk(t, mean)
    draw = dm1.draw(t, mean)
    assert np.array_equal(draw - dm0.draw(t, mean), bulk)  # the base draw plus the baskets, nothing else
    assert np.array_equal(draw, DemandModel(on).draw(t, mean))  # same seed, same day: same draw
    hit = bulk > 0
    assert (bulk[hit] >= np.floor(5 * mean[hit])).all() and (bulk[hit] <= np.ceil(20 * mean[hit])).all()
    # coupling to a new price keeps every unchanged cell and adds the baskets under the new mean
    factor = np.ones_like(mean)
    factor[0] = 0.8  # store 0 cuts every price: higher mean, never less demand
    new_mean = dm1.mean(t, factor)
    coupled = dm1.draw_coupled(t, mean, draw, new_mean)
    assert np.array_equal(coupled[1:], draw[1:])
    assert (coupled[0] >= draw[0]).all()
    assert (coupled[0] - dm1.bulk(t, new_mean)[0] >= 0).all()


def test_bulk_buys_are_a_few_percent_of_units_in_the_shocks_world():
    net = build_network(world_config("shocks", stores=4, skus=40, days=60, seed=2))
    dm = DemandModel(net)
    ts = range(net.config.burn_in_days, dm.n_days)
    total = sum(int(dm.draw(t, dm.mean(t)).sum()) for t in ts)
    bulk = sum(int(dm.bulk(t, dm.mean(t)).sum()) for t in ts)
    assert 0.01 < bulk / total < 0.08


def test_post_promo_dip_hand_checked():
    promo = np.zeros((30, 1), dtype=bool)
    promo[2:5] = True  # promoted on days 2-4: the dip starts on day 5
    f = post_promo_multiplier(promo, 0.3)[:, 0]
    assert (f[:5] == 1.0).all()
    assert f[5] == pytest.approx(0.7) and f[6] == pytest.approx(1 - 0.3 * 13 / 14)
    assert (np.diff(f[5 : 5 + POST_PROMO_DAYS]) > 0).all() and (f[5 + POST_PROMO_DAYS :] == 1.0).all()


def test_post_promo_dip_acts_only_after_promotions():
    base, on = _pair(dict(promo_share=0.8), post_promo_dip=0.3)
    dm0, dm1 = DemandModel(base), DemandModel(on)
    f = post_promo_multiplier(on.promo_path, 0.3)
    assert (f < 1).any()
    for t in range(0, dm0.n_days, 3):
        assert np.allclose(dm1.sku_mean(t), dm0.sku_mean(t) * f[t], rtol=1e-12)
    # a dip only on the 14 days after a promotion ended, never on a promotion day
    ended = np.zeros_like(on.promo_path)
    ended[1:] = on.promo_path[:-1] & ~on.promo_path[1:]
    recent = np.zeros_like(ended)
    for k in range(POST_PROMO_DAYS):
        recent[k:] |= ended[: len(ended) - k]
    assert (f[~recent | on.promo_path] == 1.0).all()


def test_store_weekday_profiles_reshape_each_store_week_only():
    base, on = _pair(store_weekday_profiles=True)
    prof = on.store_weekday
    assert prof.shape == (4, 7) and np.allclose(prof.mean(axis=1), 1.0) and (prof > 0).all()
    dm0, dm1 = DemandModel(base), DemandModel(on)
    for t in range(0, 28):
        assert np.array_equal(dm1.sku_mean(t), dm0.sku_mean(t))
        assert np.allclose(dm1.mean(t), dm0.mean(t) * prof[:, dm1.dates[t].dayofweek][:, None], rtol=1e-12)


# --- supply side -----------------------------------------------------------------------------


class _KeepHistory(BaselinePolicy):
    def decide(self, obs: Observation) -> Orders:
        self.history = obs.history
        return super().decide(obs)


def _supplier_lines(cfg):
    net = build_network(cfg)
    pol = _KeepHistory()
    simulate(net, pol)
    r = pol.history.receipts
    m = r["kind"] == KIND_SUPPLIER
    return net, {k: v[m] for k, v in r.items()}


def test_unreliable_suppliers_have_a_long_right_tail_and_ship_less_than_the_master_says():
    cfg = NetworkConfig(**{**SMALL, "days": 200})
    base, rb = _supplier_lines(cfg)
    on, ru = _supplier_lines(dataclasses.replace(cfg, supplier_reliability="unreliable"))
    assert (on.supplier_lt_true_mean >= on.supplier_lt_mean).all() and (on.supplier_late_prob >= 0.15).all()
    assert ((on.supplier_fill_prob >= 0.6) & (on.supplier_fill_prob <= 0.85)).all()

    def z(net, r):  # realised lead time in master standard deviations above the master mean
        v = r["src"]
        return (r["receipt_day"] - r["order_day"] - net.supplier_lt_mean[v]) / net.supplier_lt_std[v]

    zb, zu = z(base, rb), z(on, ru)
    assert np.percentile(zb, 95) < 2.5  # the master's N(mean, std), rounded
    assert np.percentile(zu, 95) > 2 * np.percentile(zb, 95) and np.percentile(zu, 50) > np.percentile(zb, 50)
    assert ru["received"].sum() / ru["ordered"].sum() < rb["received"].sum() / rb["ordered"].sum() - 0.03
    # the ERP still expects the master mean
    assert np.array_equal(ru["expected_day"] - ru["order_day"], on.supplier_lt_mean[ru["src"]].astype(int))


def test_weekly_delivery_lands_only_on_the_store_delivery_weekday(tmp_path):
    cfg = world_config("weekly_delivery", stores=4, skus=20, days=60, seed=4, burn_in_days=14)
    net = build_network(cfg)
    recs = []
    res = simulate(net, BaselinePolicy(), sink=recs.append)
    arrived = 0
    for rec in recs:
        r = rec.receipts
        st_ = r["kind"] == KIND_STORE
        assert (rec.date.dayofweek == net.store_delivery_weekday[r["dest"][st_]]).all()
        arrived += st_.sum()
    assert arrived > 0
    assert res.sales_units / res.demand_units > 0.9  # the weekly review keeps the baseline sensible
    # the master data say so (extra columns the contract keeps)
    generate_landing_zone(dataclasses.replace(cfg, days=5), tmp_path)
    lanes = pd.read_csv(tmp_path / "master/lanes.csv")
    dc_rows = lanes["from_location_id"].str.startswith("DC")
    assert lanes.loc[dc_rows, "delivery_weekday"].between(0, 6).all()
    assert lanes.loc[~dc_rows, "delivery_weekday"].isna().all()
    locations = pd.read_csv(tmp_path / "master/locations.csv")
    assert (locations.loc[locations["location_type"] == "store", "delivery_days_per_week"] == 1).all()


def test_a_discontinued_item_is_no_longer_delivered_and_is_sold_down():
    cfg = world_config("promo_lifecycle", stores=4, skus=40, days=150, seed=6, burn_in_days=14)
    net = build_network(cfg)
    pol = _KeepHistory()
    recs = []
    simulate(net, pol, sink=recs.append)
    gone = np.flatnonzero(net.sku_discontinue_day < 10**8)
    assert len(gone) > 0
    r = pol.history.receipts
    po = r["kind"] == KIND_SUPPLIER
    disc_abs = net.sku_discontinue_day + cfg.burn_in_days
    assert (r["order_day"][po] < disc_abs[r["sku"][po]]).all()  # no purchase order from the discontinue day on

    # once its last purchase order is in, the chain only sells down what it holds ...
    def chain_stock(rec):  # DCs, stores and the DC -> store shipments on the road
        o = rec.open_orders
        moving = o["kind"] == KIND_STORE
        return (
            rec.dc_on_hand.sum(axis=0)
            + rec.store_on_hand.sum(axis=0)
            + np.bincount(o["sku"][moving], weights=o["units"][moving], minlength=net.config.skus)
        )

    chain = np.stack([chain_stock(rec) for rec in recs])  # (days, S)
    t0 = recs[0].t
    for s in gone:
        last_in = max(disc_abs[s], int(r["receipt_day"][po & (r["sku"] == s)].max(initial=0))) - t0
        assert (np.diff(chain[max(last_in, 0) :, s]) <= 0).all()
    # ... and a store that sold out no longer carries it: some discontinued items have left every store
    assert (~recs[-1].store_carried[:, gone]).all(axis=0).any()


# --- margin by price reason -----------------------------------------------------------------


class _MarkdownPolicy(BaselinePolicy):
    """The baseline's orders; from absolute day 30 store 0 marks SKU 0 down by 30% (reason
    markdown) and store 1 raises SKU 1 by 10% without a reason (it stays "regular")."""

    def decide(self, obs: Observation) -> Orders:
        orders = super().decide(obs)
        if obs.t >= 30:
            factor = obs.price_factor.copy()
            factor[0, 0], factor[1, 1] = 0.7, 1.1
            reason = np.zeros_like(factor, dtype=np.int64)
            reason[0, 0] = PRICE_REASONS.index("markdown")
            orders.price_factor, orders.price_reason = factor, reason
        return orders


def test_margin_is_accounted_per_price_reason():
    net = build_network(
        NetworkConfig(
            regions=1,
            dcs=1,
            stores=2,
            skus=4,
            suppliers=2,
            days=40,
            seed=3,
            burn_in_days=14,
            new_item_share=0.0,
            discontinued_share=0.0,
        )
    )
    recs = []
    res = simulate(net, _MarkdownPolicy(), sink=recs.append)
    mbr = res.extra["margin_by_reason"]
    assert list(mbr) == list(PRICE_REASONS)
    # the markdown is in force from day 31 on (decided on day 30, for tomorrow), for store 0 x SKU 0 only
    md = [r for r in recs if r.t >= 31]
    assert mbr["markdown"]["store_sku_days"] == sum(int(r.store_carried[0, 0]) for r in md)
    assert mbr["markdown"]["units"] == sum(int(r.sales[0, 0]) for r in md) > 0
    assert mbr["markdown"]["revenue"] == pytest.approx(sum(r.sales[0, 0] * r.price[0, 0] for r in md))
    assert mbr["markdown"]["cogs"] == pytest.approx(mbr["markdown"]["units"] * net.unit_cost[0])
    assert mbr["margin_raise"]["units"] == 0 and mbr["margin_cut"]["units"] == 0
    # the reasons partition the totals
    for key, acc in (("revenue", "revenue"), ("cogs", "cogs"), ("units", "sales"), ("store_sku_days", "active_days")):
        assert sum(v[key] for v in mbr.values()) == pytest.approx(res.store[acc].sum())


def test_an_unknown_price_reason_is_refused():
    class Bad(BaselinePolicy):
        def decide(self, obs):
            o = super().decide(obs)
            o.price_factor = obs.price_factor * 0.9
            o.price_reason = np.full(obs.price_factor.shape, len(PRICE_REASONS))
            return o

    with pytest.raises(ValueError, match="PRICE_REASONS"):
        simulate(
            build_network(NetworkConfig(regions=1, dcs=1, stores=1, skus=3, suppliers=1, days=5, burn_in_days=3)), Bad()
        )


# --- stock laws in every world ----------------------------------------------------------------


class _RandomPolicy:
    """Random orders, transfers along and off lanes, random prices: stresses the laws."""

    name = "random"

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)

    def decide(self, obs: Observation) -> Orders:
        (L, S), D, r = obs.store_on_hand.shape, obs.dc_on_hand.shape[0], self.rng
        tr = random_transfers(r, L, S)
        pf = np.where(r.random((L, S)) < 0.1, r.choice([0.8, 0.9, 1.1], (L, S)), obs.price_factor)
        return Orders(
            store=r.integers(0, 3, (L, S)) * (r.random((L, S)) < 0.4) * 6,
            dc=r.integers(0, 4, (D, S)) * (r.random((D, S)) < 0.2) * 24,
            transfers=tr,
            price_factor=pf,
            price_reason=r.integers(0, len(PRICE_REASONS), (L, S)),
        )


@pytest.mark.parametrize("world", list(WORLDS))
@pytest.mark.parametrize("policy", ["baseline", "random"])
def test_stock_is_conserved_in_every_world(world, policy):
    cfg = world_config(world, stores=4, skus=12, days=40, seed=9, burn_in_days=14)
    net = build_network(cfg)
    recs = []
    res = simulate(net, BaselinePolicy() if policy == "baseline" else _RandomPolicy(1), sink=recs.append)
    assert res.sales_units + res.lost_units == res.demand_units
    prev_dc = None
    for rec in recs:
        r = rec.receipts
        _, prev_dc = assert_stock_conserved(rec, prev_dc)
        age = rec.t - r["order_day"]
        st_ = r["kind"] == KIND_STORE
        assert (age[st_] == net.store_lead_time[r["dest"][st_]]).all() and (age[r["kind"] == KIND_SUPPLIER] >= 1).all()
    mbr = res.extra["margin_by_reason"]
    assert sum(v["units"] for v in mbr.values()) == res.sales_units
