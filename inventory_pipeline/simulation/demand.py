"""True (hidden) demand of a simulated network: the process the pipeline must learn.

mean[l, s, t] = base_rate[s] x store_factor[l] x weekly[cat, dow] x yearly(doy) x trend(t)
                x holiday(t, cat) x (price/base_price)^elasticity x promo_lift x launched(t)
demand ~ NegativeBinomial(mean, k)   (a Gamma-Poisson mixture; small k = lumpy slow movers)

Draws come from their own random stream per day, so every policy simulated on the same network
and seed faces exactly the same demand (common random numbers). A policy that changes a price
changes the mean of that store x SKU only; its draw is coupled to the reference draw by the
probability integral transform (same quantile of the new distribution), so demand stays
identical everywhere else and moves monotonically with the price where it changed.

A replayed network (real data, `network.replay_demand`) has no demand model to draw from: the
demand of day t is the recorded demand of day t for every policy (exact common random numbers),
and its mean is the centred 28-day mean of the record. A price change has no recorded answer, so
a replayed network refuses one (the twin holds the real prices there).
"""

from __future__ import annotations

import numpy as np

from .network import Network


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

    @property
    def n_days(self) -> int:
        return len(self.dates)

    def sku_mean(self, t: int) -> np.ndarray:
        """Expected demand per SKU at an average-size store on absolute day t, shape (S,)."""
        n = self.net
        cat = n.sku_category
        rel = t - self._burn_in  # day relative to start_date
        yearly = 1.0 + n.sku_amp * np.cos(2 * np.pi * (self._doy[t] - n.sku_peak) / 365.25)
        trend = (1.0 + n.sku_trend) ** (rel / 365.0)
        price_effect = (n.price_path[t] / n.base_price) ** n.sku_elasticity
        promo = np.where(n.promo_path[t], n.sku_promo_lift, 1.0)
        launched = rel >= n.sku_launch_day
        return (
            n.sku_base_rate * n.weekly[cat, self._dow[t]] * yearly * trend
            * n.event_mult[t, cat] * n.level_path[t] * price_effect * promo * launched
        )

    def mean(self, t: int, price_factor: np.ndarray | None = None) -> np.ndarray:
        """Expected demand per store and SKU, shape (L, S). `price_factor` ((S,) or (L, S))
        scales the shelf price (a pricing policy's decision) and moves demand through the
        elasticity."""
        if self.replay is not None:
            if price_factor is not None and not np.all(np.asarray(price_factor) == 1.0):
                raise ValueError("a replayed network (recorded demand) cannot answer a price change: "
                                 "run the twin with pricing off")
            return self.net.replay_mean[t]
        m = self.net.store_factor[:, None] * self.sku_mean(t)[None, :]
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
        return rng.poisson(lam).astype(np.int64)

    def draw_coupled(self, t: int, ref_mean: np.ndarray, ref_draw: np.ndarray, mean: np.ndarray) -> np.ndarray:
        """Demand under `mean` coupled to `ref_draw` (drawn under `ref_mean`): cells whose mean did
        not change keep their draw; changed cells take the same (randomised) quantile of their
        new negative binomial. Exact in distribution, monotone in the mean, common random numbers."""
        from scipy import stats

        out = ref_draw.copy()
        changed = ~np.isclose(mean, ref_mean, rtol=1e-12, atol=0.0)
        if not changed.any():
            return out
        li, si = np.nonzero(changed)
        k = self.net.sku_dispersion[si]
        m0, m1 = np.maximum(ref_mean[li, si], 1e-12), np.maximum(mean[li, si], 1e-12)
        d0 = ref_draw[li, si]
        v = np.random.default_rng(np.random.SeedSequence([self._seed, 5, t])).random(ref_draw.shape)[li, si]
        lo = stats.nbinom.cdf(d0 - 1, k, k / (k + m0))
        hi = stats.nbinom.cdf(d0, k, k / (k + m0))
        u = np.clip(lo + v * (hi - lo), 1e-12, 1 - 1e-12)
        out[li, si] = stats.nbinom.ppf(u, k, k / (k + m1)).astype(np.int64)
        return out
