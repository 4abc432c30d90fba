"""Stage output contracts (pandera): what each decision stage promises the next one."""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from .text import Text


class _Out(pa.DataFrameModel):
    class Config:
        strict = False
        coerce = True


class DemandForecast(_Out):
    location_id: Series[Text]
    sku_id: Series[Text]
    date: Series[pa.DateTime]
    horizon: Series[int] = pa.Field(ge=1)
    mean: Series[float] = pa.Field(ge=0)
    p10: Series[float] = pa.Field(ge=0)
    p50: Series[float] = pa.Field(ge=0)
    p90: Series[float] = pa.Field(ge=0)
    p95: Series[float] = pa.Field(ge=0)
    p99: Series[float] = pa.Field(ge=0)
    p025: Series[float] = pa.Field(ge=0)  # with p975: the 95% central interval (extension)
    p975: Series[float] = pa.Field(ge=0)
    model: Series[Text]
    demand_class: Series[Text] = pa.Field(isin=["smooth", "erratic", "intermittent", "lumpy", "new"])

    @pa.dataframe_check(error="quantiles must be monotone: p025 <= p10 <= p50 <= p90 <= p95 <= p975 <= p99")
    def monotone(cls, df):  # noqa: N805
        cols = ["p025", "p10", "p50", "p90", "p95", "p975", "p99"]
        ok = df["p025"] == df["p025"]
        for lo, hi in zip(cols, cols[1:]):
            ok &= df[lo] <= df[hi] + 1e-9
        return ok


class PriceRecommendations(_Out):
    location_id: Series[Text]
    sku_id: Series[Text]
    current_price: Series[float] = pa.Field(gt=0)
    recommended_price: Series[float] = pa.Field(gt=0)
    demand_multiplier: Series[float] = pa.Field(gt=0)
    elasticity_confidence: Series[float] = pa.Field(ge=0, le=1)
    binding_guardrail: Series[Text]
    rationale: Series[Text]


class ReplenishmentOrders(_Out):
    decision_type: Series[Text] = pa.Field(isin=["purchase_order", "store_replenishment"])
    sku_id: Series[Text]
    source_id: Series[Text]
    location_id: Series[Text]
    units: Series[int] = pa.Field(gt=0)
    order_date: Series[pa.DateTime]
    expected_date: Series[pa.DateTime]
    order_value: Series[float] = pa.Field(ge=0)
    rationale: Series[Text]

    @pa.dataframe_check(error="an order cannot arrive before it is placed")
    def arrives_after_order(cls, df):  # noqa: N805
        return df["expected_date"] >= df["order_date"]


class RebalancingTransfers(_Out):
    sku_id: Series[Text]
    from_location_id: Series[Text]
    to_location_id: Series[Text]
    units: Series[int] = pa.Field(gt=0)
    ship_date: Series[pa.DateTime]
    expected_date: Series[pa.DateTime]
    lead_time_days: Series[float] = pa.Field(ge=0)
    cost_per_unit: Series[float] = pa.Field(ge=0)
    expected_shortage_saved: Series[float] = pa.Field(ge=0)
    binding_constraint: Series[Text]
    rationale: Series[Text]

    @pa.dataframe_check(error="a transfer goes from one store to another")
    def two_stores(cls, df):  # noqa: N805
        return df["from_location_id"] != df["to_location_id"]

    @pa.dataframe_check(error="a transfer arrives after it ships, by the lane's lead time")
    def arrives_after_shipping(cls, df):  # noqa: N805
        return ((df["expected_date"] - df["ship_date"]) / pd.Timedelta(days=1) - df["lead_time_days"]).abs() < 1e-6

    @pa.dataframe_check(error="one line per SKU and lane")
    def one_line_per_lane(cls, df):  # noqa: N805
        return ~df.duplicated(["sku_id", "from_location_id", "to_location_id"], keep=False)


class DecisionLog(_Out):
    decision_id: Series[Text] = pa.Field(unique=True, str_matches=r"^(FC|PO|RP|TR|PC)-\d{8}-[0-9a-f]{12}$")
    decision_type: Series[Text] = pa.Field(
        isin=["forecast", "purchase_order", "store_replenishment", "transfer", "price_change"]
    )
    status: Series[Text] = pa.Field(isin=["auto_approved", "pending_review", "approved", "rejected", "overridden"])
    state: Series[Text] = pa.Field(
        isin=["auto_approved", "pending_review", "approved", "rejected", "overridden", "exported"]
    )
    status_history: Series[Text] = pa.Field(str_startswith="proposed>")
    revision: Series[Text] = pa.Field(str_matches=r"^[0-9a-f]{12}$")
    inputs_fingerprint: Series[Text]
    model_version: Series[Text]
    policy_version: Series[Text]
    explanation: Series[Text]

    @pa.dataframe_check(error="orders and transfers have whole non-negative units; prices are positive")
    def numbers(cls, df):  # noqa: N805
        qty = df["decision_type"].isin(["purchase_order", "store_replenishment", "transfer"])
        units_ok = ~qty | ((df["units"] >= 0) & (df["units"] == df["units"].round()))
        price_ok = (df["decision_type"] != "price_change") | (df["new_price"] > 0)
        return units_ok & price_ok
