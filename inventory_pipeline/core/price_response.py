"""The pipeline's one price response: what a price does to demand, for every stage.

Demand at price p, relative to demand at a reference price r, is (p / r)^e with e the item's
price elasticity (constant elasticity, e <= 0 for a normal good). Both stages read a price
through this function and nothing else:

- the pricing stage, to value a price against the current one (`margin_gain`,
  `clearance_value`, `stock_holding`, expected units) and to state the `demand_multiplier` of
  its recommendation;
- the forecast as replenishment and the twin use it: the forecast is made at the price level of
  its recent history (the `reference_price`), and the demand the plans protect against is the
  forecast times `demand_multiplier`, the response at the recommended price
  (`forecasting.forecast_at_prices`).

Which elasticity is the truth: the pricing stage's estimate (`pricing.estimate_elasticities`:
own-price changes against a leave-one-out category day index, pooled toward the category and
the chain, with an interval; docs/pricing.md). The statistical forecast has no price term, so it
cannot disagree; the global model's price features describe the history it learned from, and its
forecast is made at the current price path, so a change the pricing stage makes enters only
through this response.
"""

from __future__ import annotations

import numpy as np


def price_response(price, reference, elasticity) -> np.ndarray:
    """(price / reference)^elasticity, elementwise; exactly 1 where the price is the reference.
    Non-increasing in price for elasticity <= 0, and 1 at elasticity 0 (demand ignores price)."""
    price, reference, elasticity = (np.asarray(a, float) for a in (price, reference, elasticity))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(price == reference, 1.0, (price / reference) ** elasticity)
