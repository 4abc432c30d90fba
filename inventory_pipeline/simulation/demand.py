"""True (hidden) demand of a simulated network: the process the pipeline must learn.

mean[l, s, t] = base_rate[s] x store_factor[l] x weekly[cat, dow] x yearly(doy) x trend(t)
                x holiday(t, cat) x (price/base_price)^elasticity x promo_lift x launched(t)
demand ~ NegativeBinomial(mean, k)   (a Gamma-Poisson mixture; small k = lumpy slow movers)

Draws come from their own random stream per day, so every policy simulated on the same network
and seed faces exactly the same demand (common random numbers). A policy that changes a price
changes the mean of that store x SKU only; its draw is coupled to the reference draw by the
probability integral transform (same quantile of the new distribution), so demand stays
identical everywhere else and moves monotonically with the price where it changed.

Regimes (regimes.py), each off by default: `net.season_mult` replaces the yearly cosine (a sharp
season for the "seasonal" category), `post_promo_dip` lowers the weeks after a promotion (pantry
loading), `net.store_weekday` gives each store its own weekday profile, `net.shock_mult` multiplies
a region's category for a few days, and bulk baskets add 5-20 days of an item's mean demand on
rare store x SKU x days (drawn from their own stream, so common random numbers hold; they are not
part of `mean`, which stays the demand a forecast should learn).

A replayed network (real data, `network.replay_demand`) has no demand model to draw from: the
demand of day t is the recorded demand of day t for every policy (exact common random numbers),
and its mean is the centred 28-day mean of the record. A price change has no recorded answer, so
a replayed network refuses one (the twin holds the real prices there).
"""

from __future__ import annotations

import numpy as np

from .network import Network, yearly_cosine

POST_PROMO_DAYS = 14  # a post-promotion dip decays linearly to nothing over two weeks
BULK_SIZE = (5.0, 20.0)  # a bulk basket buys this many days of the item's mean demand
BULK_REF_MEAN = 2.0  # bulk baskets are for fast movers: P scales with mean / 2 units a day, capped at the rate


def post_promo_multiplier(promo: np.ndarray, dip: float, days: int = POST_PROMO_DAYS) -> np.ndarray:
    """(T, S) demand factor after promotions: 1 - dip on the first day after a promotion ends,
    recovering linearly over `days` (customers stocked up while it was cheap); 1 on promotion days
    and once recovered. A loop over days, vectorised over SKUs."""
    T, S = promo.shape
    out = np.ones((T, S))
    since = np.full(S, days)  # days since the last promotion ended (>= days: no dip left)
    for t in range(1, T):
        since = np.where(promo[t - 1] & ~promo[t], 0, since + 1)
        out[t] = np.where(~promo[t] & (since < days), 1.0 - dip * (1.0 - since / days), 1.0)
    return out


class DemandModel:
    def __init__(self, network: Network) -> None:
        self.net = network
        cfg = network.config
        self.dates = None
        from .network import day_dates

        self.dates = day_dates(cfg)
        self._dow = self.dates.dayofweek.to_numpy()
        self._doy = self.dates.dayofyear.to_numpy()
        self._burn_in = cfg.burn_in_days
        self._seed = cfg.seed
        self.replay = network.replay_demand
        # a replayed network's config (realdata) has no regime fields: getattr keeps them off there
        dip = getattr(cfg, "post_promo_dip", 0.0)
        self._dip = post_promo_multiplier(network.promo_path, dip) if dip > 0 and self.replay is None else None
        self._bulk_rate = getattr(cfg, "bulk_buy_rate", 0.0)

    @property
    def n_days(self) -> int:
        return len(self.dates)

    def sku_mean(self, t: int) -> np.ndarray:
        """Expected demand per SKU at an average-size store on absolute day t, shape (S,)."""
        n = self.net
        cat = n.sku_category
        rel = t - self._burn_in  # day relative to start_date
        yearly = yearly_cosine(self._doy[t], n.sku_amp, n.sku_peak) if n.season_mult is None else n.season_mult[t]
        trend = (1.0 + n.sku_trend) ** (rel / 365.0)
        price_effect = (n.price_path[t] / n.base_price) ** n.sku_elasticity
        promo = np.where(n.promo_path[t], n.sku_promo_lift, 1.0)
        launched = rel >= n.sku_launch_day
        m = (
            n.sku_base_rate
            * n.weekly[cat, self._dow[t]]
            * yearly
            * trend
            * n.event_mult[t, cat]
            * n.level_path[t]
            * price_effect
            * promo
            * launched
        )
        return m if self._dip is None else m * self._dip[t]

    def mean(self, t: int, price_factor: np.ndarray | None = None) -> np.ndarray:
        """Expected demand per store and SKU, shape (L, S). `price_factor` ((S,) or (L, S))
        scales the shelf price (a pricing policy's decision) and moves demand through the
        elasticity."""
        if self.replay is not None:
            if price_factor is not None and not np.all(np.asarray(price_factor) == 1.0):
                raise ValueError(
                    "a replayed network (recorded demand) cannot answer a price change: run the twin with pricing off"
                )
            return self.net.replay_mean[t]
        n = self.net
        m = n.store_factor[:, None] * self.sku_mean(t)[None, :]
        if n.store_weekday is not None:
            m = m * n.store_weekday[:, self._dow[t]][:, None]
        if n.shock_mult is not None:
            m = m * n.shock_mult[t][:, n.sku_category]
        if price_factor is not None:
            m = m * np.asarray(price_factor, dtype=float) ** self.net.sku_elasticity[None, :]
        return m

    def draw(self, t: int, mean: np.ndarray) -> np.ndarray:
        """Demand draw for absolute day t; the stream depends only on (seed, t). Replayed: the record."""
        if self.replay is not None:
            return self.replay[t].astype(np.int64)
        rng = np.random.default_rng(np.random.SeedSequence([self._seed, 2, t]))
        k = self.net.sku_dispersion[None, :]
        lam = rng.gamma(shape=k, scale=np.maximum(mean, 1e-12) / k)
        out = rng.poisson(lam).astype(np.int64)
        return out if self._bulk_rate <= 0 else out + self.bulk(t, mean)

    def bulk(self, t: int, mean: np.ndarray) -> np.ndarray:
        """Bulk-basket units of absolute day t, shape of `mean` (zeros when the regime is off): with
        probability bulk_buy_rate x min(1, mean / BULK_REF_MEAN) a store x SKU gets one basket of
        ceil(5-20 x mean) units. Its uniforms depend only on (seed, t), so every policy faces the
        same baskets, and a higher mean (a lower price) never makes one smaller or less likely."""
        if self._bulk_rate <= 0:
            return np.zeros(np.shape(mean), dtype=np.int64)
        rng = np.random.default_rng(np.random.SeedSequence([self._seed, 23, t]))
        u, size = rng.random(np.shape(mean)), rng.uniform(*BULK_SIZE, np.shape(mean))
        hit = u < self._bulk_rate * np.minimum(1.0, mean / BULK_REF_MEAN)
        return np.where(hit, np.ceil(size * mean), 0).astype(np.int64)

    def draw_coupled(self, t: int, ref_mean: np.ndarray, ref_draw: np.ndarray, mean: np.ndarray) -> np.ndarray:
        """Demand under `mean` coupled to `ref_draw` (drawn under `ref_mean`): cells whose mean did
        not change keep their draw; changed cells take the same (randomised) quantile of their
        new negative binomial. Exact in distribution, monotone in the mean, common random numbers.
        Bulk baskets (regime) are taken out of the reference draw, and added back after the coupling
        with the same uniforms under the new mean."""
        from scipy import stats

        out = ref_draw.copy()
        changed = ~np.isclose(mean, ref_mean, rtol=1e-12, atol=0.0)
        if not changed.any():
            return out
        bulk = self._bulk_rate > 0
        if bulk:
            ref_draw = ref_draw - self.bulk(t, ref_mean)
        li, si = np.nonzero(changed)
        k = self.net.sku_dispersion[si]
        m0, m1 = np.maximum(ref_mean[li, si], 1e-12), np.maximum(mean[li, si], 1e-12)
        d0 = ref_draw[li, si]
        v = np.random.default_rng(np.random.SeedSequence([self._seed, 5, t])).random(ref_draw.shape)[li, si]
        lo = stats.nbinom.cdf(d0 - 1, k, k / (k + m0))
        hi = stats.nbinom.cdf(d0, k, k / (k + m0))
        u = np.clip(lo + v * (hi - lo), 1e-12, 1 - 1e-12)
        out[li, si] = stats.nbinom.ppf(u, k, k / (k + m1)).astype(np.int64)
        if bulk:
            out[li, si] += self.bulk(t, mean)[li, si]
        return out
