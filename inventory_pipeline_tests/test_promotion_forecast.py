"""The forecast takes the promotion plan (landing contract v1.1): a planned promotion lifts the
statistical forecast on its days only, before it starts; a cancelled one (gone from the plan)
does not."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inventory_pipeline.core.forecasting import ForecastSettings, run_forecast
from inventory_pipeline.core.promotions import planned_promotion_days

PLAN_DATE = "2025-06-30"


def _history(lift=2.0, rate=20.0, days=200, seed=0):
    """Two SKUs of one category, four stores, Poisson demand with promotions at a known lift."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range(end=PLAN_DATE, periods=days)
    rows = []
    for sku in ("A", "B"):
        promo = np.zeros(days, bool)
        for start in range(10, days - 10, 35):
            promo[start : start + 7] = True
        for loc in ("S1", "S2", "S3", "S4"):
            units = rng.poisson(rate * np.where(promo, lift, 1.0))
            rows.append(
                pd.DataFrame(
                    {
                        "location_id": loc,
                        "sku_id": sku,
                        "date": dates,
                        "units_sold": units,
                        "is_stockout": False,
                        "on_promo": promo.astype(int),
                    }
                )
            )
    return pd.concat(rows, ignore_index=True)


def _plan(days, skus=("A",), locs=("S1", "S2", "S3", "S4")):
    d = pd.date_range(pd.Timestamp(PLAN_DATE) + pd.Timedelta(days=days[0]), periods=days[1])
    return pd.DataFrame(
        [(loc, sku, day, 20.0, 0, "P1") for loc in locs for sku in skus for day in d],
        columns=["location_id", "sku_id", "date", "discount_pct", "display", "promo_id"],
    )


CFG = ForecastSettings(cv_windows=2, cv_horizon=7, horizon_days=21, cv_sample_series=0, yearly_profile=False)


@pytest.fixture(scope="module")
def forecasts():
    h = _history()
    cats = pd.Series({"A": "c", "B": "c"})
    plain = run_forecast(h, PLAN_DATE, CFG, cats).forecast
    planned = run_forecast(h, PLAN_DATE, CFG, cats, promotions=_plan((5, 7))).forecast
    return plain, planned


def test_a_planned_promotion_lifts_its_days_only_by_the_measured_uplift(forecasts):
    plain, planned = forecasts
    on = planned_promotion_days(planned, _plan((5, 7)))
    assert on.sum() == 4 * 7  # four stores x seven days of SKU A
    ratio = planned.loc[on, "mean"].to_numpy() / plain.loc[on, "mean"].to_numpy()
    assert ratio == pytest.approx(np.full(on.sum(), ratio[0]))  # one category uplift
    assert 1.7 < ratio[0] < 2.1  # the history's lift (2.0), shrunk a little toward 1
    assert planned.loc[~on, "mean"].to_numpy() == pytest.approx(plain.loc[~on, "mean"].to_numpy())
    assert (planned.loc[on, "p90"].to_numpy() >= plain.loc[on, "p90"].to_numpy()).all()


def test_a_cancelled_promotion_is_not_forecast(forecasts):
    plain, _ = forecasts
    h = _history()
    empty = _plan((5, 7)).iloc[0:0]
    cancelled = run_forecast(h, PLAN_DATE, CFG, pd.Series({"A": "c", "B": "c"}), promotions=empty).forecast
    assert cancelled["mean"].to_numpy() == pytest.approx(plain["mean"].to_numpy())


def test_planned_days_match_on_store_sku_and_day():
    fc = pd.DataFrame(
        {
            "location_id": ["S1", "S1", "S2"],
            "sku_id": ["A", "A", "A"],
            "date": pd.to_datetime(["2025-07-05", "2025-07-20", "2025-07-05"]),
        }
    )
    plan = _plan((5, 3), locs=("S1",))
    assert planned_promotion_days(fc, plan).tolist() == [True, False, False]
    assert not planned_promotion_days(fc, None).any()


FORECAST_ROWS = st.tuples(st.sampled_from(["S1", "S2", "10"]), st.sampled_from(["A", "B"]), st.integers(0, 9))
PLAN_ROWS = st.tuples(st.sampled_from(["S1", "S2", "S9", "10"]), st.sampled_from(["A", "B", "Z"]), st.integers(-3, 12))


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(FORECAST_ROWS, max_size=25), plan=st.lists(PLAN_ROWS, max_size=25))
def test_the_forecasts_integer_match_of_planned_days_is_the_string_join(rows, plan):
    """The forecast matches a class's rows to the plan as (series, day) integers (0.3 s instead of
    a string join at M5): the same days as `planned_promotion_days`, whatever the plan names, a
    store x SKU not forecast or a day outside the horizon included."""
    from inventory_pipeline.core.forecasting import _planned_promotion_rows

    day0 = pd.Timestamp(PLAN_DATE)
    fc = pd.DataFrame(rows, columns=["location_id", "sku_id", "day"]).drop_duplicates()
    fc = fc.assign(date=day0 + pd.to_timedelta(fc["day"], unit="D"))
    p = pd.DataFrame(plan, columns=["location_id", "sku_id", "day"])
    p = p.assign(date=day0 + pd.to_timedelta(p["day"], unit="D") + pd.Timedelta(hours=6))  # a time of day is ignored
    ids = fc[["location_id", "sku_id"]].drop_duplicates().astype("category").reset_index(drop=True)
    ids.index = ids.index * 7 + 3  # unique ids need not be positions
    uid = pd.Series(ids.index, index=pd.MultiIndex.from_frame(ids.astype(str)))
    part = pd.DataFrame({"unique_id": uid.reindex(pd.MultiIndex.from_frame(fc[["location_id", "sku_id"]])).to_numpy(),
                         "ds": fc["date"].to_numpy()})  # fmt: skip
    expected = planned_promotion_days(fc[["location_id", "sku_id", "date"]], p if len(p) else None)
    assert _planned_promotion_rows(part, ids, p).tolist() == expected.tolist()
