"""Regimes and worlds: the simulator's realistic, hard conditions.

The default network is friendly: smooth yearly cycles, a latent level that drifts slowly, daily
store deliveries, suppliers that keep to their master lead times. A *regime* switches on one way
real retail is harder, by one `NetworkConfig` field; every default is off, and with all of them
off the network, its demand draws and the landing files are byte-identical to the simulator
before regimes existed (each regime draws from its own random stream, `network.py` lists them).
A *world* (`WORLDS`) is a named set of regimes; `world_config` sizes one into a `NetworkConfig`.

Regimes (field: what it does -- why a retailer meets it):

- `season_peak` (default 0 = off; e.g. 4.0): the "seasonal" category gets a sharp season instead
  of the gentle yearly cosine: `season_peak` times its off-season level within 30 days of each
  SKU's peak day, reached over a three-week half-cosine ramp; scaled to a yearly mean of 1, so the
  season moves demand within the year without changing the annual volume. 40% of seasonal SKUs
  peak in summer (day 170-210), the others around Christmas (their `sku_peak`). `seasonal_share`
  (default 0 = the CATEGORIES share, 10%) enlarges the category. -- Garden furniture, sun cream,
  decorations, school supplies: a moving average meets the season late and leaves stock after it.
- `level_shift_rate` (default 0; per SKU per year): unannounced permanent level shifts in the
  latent level path, each a lognormal factor (log-sd 0.35) up or down. -- A competitor opens, a
  product is delisted next door, a recipe goes viral: the level steps and never comes back.
- `shock_rate` (default 0; per region per 90 days): a random category in one region's stores is
  multiplied by 2.5-4 (spike, 60%) or 0.3-0.5 (slump) for 3-10 days (`net.shock_mult`,
  `net.demand_shocks`). -- A heatwave, a local festival, a storm or a road closure.
- `bulk_buy_rate` (default 0; P per store x SKU x day, scaled by min(1, mean / 2 units)): a
  customer buys a bulk basket of ceil(5-20 x the day's mean) units, drawn from its own stream
  (common random numbers) and outside `mean`. -- Caterers, small shops and hoarders empty a shelf
  in one basket; a forecast must not chase them.
- `supplier_reliability` (default "master"; "unreliable"): half the suppliers' true mean lead
  time exceeds the master's by 15-50%, spreads are 1-2x the master's, 15-25% of orders arrive
  30-150% late, orders ship complete with probability 0.60-0.85 only (else 30-90% of the units).
  The ERP's expected date still comes from the master mean. -- Master data are typed in once and
  rarely revised; real supply has a long right tail.
- `post_promo_dip` (default 0; e.g. 0.3): after a promotion ends, the SKU's demand is lower by
  this share on the first day, recovering linearly over 14 days. -- Pantry loading: customers
  stocked up while it was cheap.
- `new_item_share`, `discontinued_share` (defaults 0.05 each; the regime raises them, e.g. 0.15):
  launches start from a planogram fill with no history; a discontinued item is no longer
  delivered by its supplier from its discontinue day (the twin's `orderable`), its stores sell
  out what the chain still holds and it then leaves the assortment. -- Assortment churn.
- `store_weekday_profiles` (default False): each store's demand is multiplied by its own weekday
  profile (mean 1, a weekly cosine of amplitude 0.25-0.5 peaking on its own day, mostly Thursday
  to Sunday) on top of the category's. -- A commuter store peaks on Friday, a suburban one on
  Saturday, a tourist one on Sunday.
- `store_delivery_days` (default 1 = daily; 7 = weekly): each store receives on one weekday; a
  DC -> store request ships only on the day that lands it on that weekday, other days' requests
  are dropped (the store orders on its day). Written as `delivery_weekday` (0 = Monday) on the
  DC -> store rows of `lanes.csv` and `delivery_days_per_week` on the stores in `locations.csv`
  (extra columns the landing contract keeps). Policies see `Observation.store_review_days` (7)
  and `store_ships_today`; the baseline rule uses a 7-day review period for such stores. -- Small
  and rural stores are served by a weekly truck round.
"""

from __future__ import annotations

from .network import NetworkConfig

# bulk baskets of 5-20 (mean 12.5) days of mean demand at P = rate for fast movers: about
# 12.5 x rate of the units, so 0.003 puts roughly 3% of the units in bulk baskets
BULK_BUY_RATE = 0.003

WORLDS: dict[str, dict] = {
    "base": {},
    "seasonal": dict(season_peak=4.0, seasonal_share=0.25),
    "shocks": dict(level_shift_rate=1.0, shock_rate=1.5, bulk_buy_rate=BULK_BUY_RATE),
    "unreliable_supply": dict(supplier_reliability="unreliable"),
    "promo_lifecycle": dict(post_promo_dip=0.3, promo_share=0.7, new_item_share=0.15, discontinued_share=0.15),
    "weekly_delivery": dict(store_delivery_days=7, store_weekday_profiles=True),
}
WORLDS["everything"] = {k: v for w in WORLDS.values() for k, v in w.items()}


def world_config(world: str, *, stores: int, skus: int, days: int, seed: int, **extra) -> NetworkConfig:
    """The `NetworkConfig` of `world` at this size: two regions with one DC each from 4 stores on
    (one below), a supplier per 20 SKUs (at least 3). `extra` overrides any field last."""
    if world not in WORLDS:
        raise ValueError(f"unknown world {world!r}; known worlds: {', '.join(WORLDS)}")
    regions = 2 if stores >= 4 else 1
    size = dict(
        regions=regions, dcs=regions, stores=stores, skus=skus, suppliers=max(3, skus // 20), days=days, seed=seed
    )
    return NetworkConfig(**{**size, **WORLDS[world], **extra})
