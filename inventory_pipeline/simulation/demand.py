"""True (hidden) demand of a simulated network: the process the pipeline must learn.

mean[l, s, t] = base_rate[s] x store_factor[l] x weekly[cat, dow] x yearly(doy) x trend(t)
                x holiday(t, cat) x (price/base_price)^elasticity x promo_lift x launched(t)
demand ~ NegativeBinomial(mean, k)   (a Gamma-Poisson mixture; small k = lumpy slow movers)

Draws come from their own random stream per day, so every policy simulated on the same network
and seed faces exactly the same demand (common random numbers).
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
        """Expected demand per store and SKU, shape (L, S). `price_factor` scales the shelf price
        (a pricing policy's decision) and moves demand through the elasticity."""
        m = self.sku_mean(t)
        if price_factor is not None:
            m = m * np.asarray(price_factor) ** self.net.sku_elasticity
        return self.net.store_factor[:, None] * m[None, :]

    def draw(self, t: int, mean: np.ndarray) -> np.ndarray:
        """Demand draw for absolute day t; the stream depends only on (seed, t)."""
        rng = np.random.default_rng(np.random.SeedSequence([self._seed, 2, t]))
        k = self.net.sku_dispersion[None, :]
        lam = rng.gamma(shape=k, scale=np.maximum(mean, 1e-12) / k)
        return rng.poisson(lam).astype(np.int64)
