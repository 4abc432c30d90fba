"""Forecast stage (core): classes, censoring, uplifts, CV without leakage, intervals, drift."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inventory_pipeline.core.forecasting import (
    ForecastSettings,
    adjust_history,
    apply_quantiles,
    calibrate,
    classify,
    cross_validate,
    drift_statistics,
    forecast_demand,
    prepare_series,
    run_forecast,
)

# short histories: no yearly ramp (tests that want it switch it on)
CFG = ForecastSettings(
    horizon_days=14, history_days=140, cv_windows=2, cv_horizon=7, cv_sample_series=0, yearly_profile=False
)
END = "2025-04-30"
NEXT = "2025-05-01"


def _history(pattern, days=140, loc="S1", sku="A", end=END, stockout=None, promo=None):
    dates = pd.date_range(end=end, periods=days, freq="D")
    y = np.resize(np.asarray(pattern, float), days)
    return pd.DataFrame(
        {
            "location_id": loc,
            "sku_id": sku,
            "date": dates,
            "units_sold": y,
            "is_stockout": np.resize(np.asarray(stockout if stockout is not None else [False]), days),
            "on_promo": np.resize(np.asarray(promo if promo is not None else [0]), days),
        }
    )


def test_syntetos_boylan_classes_on_hand_made_series():
    h = pd.concat(
        [
            _history([5, 5, 6, 5, 4, 5, 5], sku="SMOOTH"),  # every day, steady sizes
            _history([1, 9, 2, 12, 1, 8, 1], sku="ERRATIC"),  # every day, sizes vary a lot
            _history([0, 0, 0, 2, 0, 0, 2], sku="INTER"),  # rare, steady sizes
            _history([0, 0, 0, 1, 0, 0, 14], sku="LUMPY"),  # rare, sizes vary a lot
            _history([3, 1, 2], days=20, sku="NEW"),  # too short for the statistical models
        ]
    )
    series = prepare_series(h, END, CFG)
    sku = series.groupby("unique_id")["sku_id"].first().astype(str)
    cls = classify(series, CFG).assign(sku=lambda c: c["unique_id"].map(sku)).set_index("sku")
    assert cls["demand_class"].to_dict() == {
        "ERRATIC": "erratic",
        "INTER": "intermittent",
        "LUMPY": "lumpy",
        "NEW": "new",
        "SMOOTH": "smooth",
    }
    assert cls.loc["INTER", "adi"] == pytest.approx(7 / 2, rel=0.05)


def test_censoring_correction_on_a_series_with_known_lost_days():
    # steady demand of 10 a day; on stockout days only 2 sold: those days get E[D | D >= 2] ~ 10
    rng = np.random.default_rng(0)
    demand = rng.poisson(10, 140).astype(float)
    stockout = np.zeros(140, bool)
    stockout[[20, 50, 51, 90, 120]] = True
    sales = np.where(stockout, 2.0, demand)
    h = _history(sales, stockout=stockout)
    adj, info = adjust_history(prepare_series(h, END, CFG), CFG)
    fixed = adj.loc[adj["is_stockout"], "demand"].to_numpy()
    assert np.all(fixed > 8) and np.all(fixed < 12)  # about the level, not the 2 that sold
    assert (adj.loc[~adj["is_stockout"], "demand"] == adj.loc[~adj["is_stockout"], "y"]).all()  # others untouched
    assert info.censoring["corrected_days"] == 5 and info.censoring["units_added"] == pytest.approx((fixed - 2).sum())
    # a stockout day that still sold far above the level keeps its sales (D >= s always)
    sales2 = sales.copy()
    sales2[90] = 40
    adj2, _ = adjust_history(prepare_series(_history(sales2, stockout=stockout), END, CFG), CFG)
    assert adj2.loc[adj2["ds"] == adj2["ds"].iloc[90], "demand"].iloc[0] >= 40


def test_promotion_uplift_is_learnt_and_removed_from_the_fitted_series():
    rng = np.random.default_rng(1)
    promo = (np.arange(140) % 28) < 7  # a week of promotion every four weeks
    sales = rng.poisson(np.where(promo, 20, 10)).astype(float)
    h = pd.concat([_history(sales, sku=f"K{i}", promo=promo.astype(int)) for i in range(5)])
    cats = pd.Series("cat", index=[f"K{i}" for i in range(5)])
    adj, info = adjust_history(prepare_series(h, END, CFG), CFG, cats)
    assert info.promo_uplift["cat"] == pytest.approx(2.0, rel=0.15)
    assert adj.loc[adj["on_promo"], "y_adj"].mean() == pytest.approx(
        adj.loc[~adj["on_promo"], "y_adj"].mean(), rel=0.15
    )


def test_event_multiplier_applies_to_the_future_event_day():
    dates = pd.date_range(end=END, periods=140, freq="D")
    event_day = dates[60]
    y = np.where(dates == event_day, 30.0, 10.0)
    h = pd.concat([_history(y, sku=f"K{i}") for i in range(5)])
    future_event = pd.Timestamp(END) + pd.Timedelta(days=5)
    cal = pd.DataFrame({"date": [event_day, future_event], "event": ["fest", "fest"]})
    fc = forecast_demand(h, END, CFG, pd.Series("cat", index=[f"K{i}" for i in range(5)]), cal)
    f = fc[fc["sku_id"] == "K0"].set_index("date")["mean"]
    # a 3x day seen once in 5 series: multiplier shrunk toward 1 with 50 prior units
    expected = (5 * 30 + CFG.uplift_prior_units) / (5 * 10 + CFG.uplift_prior_units)
    assert f[future_event] == pytest.approx(expected * f.drop(future_event).median(), rel=0.05)


def test_regional_days_get_their_own_uplift_and_do_not_pull_the_level_down():
    """M5's SNAP days: a regional calendar day (region CA applies to store CA_1) sells 1.5x. Its
    uplift is learnt per category x location and put back on the future's regional days; a store of
    another region is untouched; events falling on regional days are not credited with their lift."""
    dates = pd.date_range(end=END, periods=140, freq="D")
    snap = dates.day <= 10  # the first ten days of every month, as SNAP in CA
    y = np.where(snap, 15.0, 10.0)
    h = pd.concat(
        [_history(y, loc="CA_1", sku=f"K{i}") for i in range(5)]
        + [_history(np.full(140, 10.0), loc="TX_1", sku=f"K{i}") for i in range(5)]
    )
    future = pd.date_range(pd.Timestamp(END) + pd.Timedelta(days=1), periods=14, freq="D")  # May 1-14
    cal = pd.DataFrame({"date": [*dates[snap], *future[future.day <= 10]], "event": "SNAP_CA", "region": "CA"})
    cats = pd.Series("FOODS", index=[f"K{i}" for i in range(5)])
    adj, info = adjust_history(prepare_series(h, END, CFG), CFG, cats, cal)
    a = CFG.uplift_prior_units
    days = int(snap.sum()) * 5
    assert info.regional_uplift[("FOODS", "CA_1")] == pytest.approx((days * 15 + a) / (days * 10 + a), rel=0.02)
    assert ("FOODS", "TX_1") not in info.regional_uplift  # no regional day of its own
    ca = adj[adj["location_id"].astype(str) == "CA_1"]
    assert ca["y_adj"].mean() == pytest.approx(10.0, rel=0.02)  # the level net of the regional lift
    fc = forecast_demand(h, END, CFG, cats, cal)
    f = fc[(fc["sku_id"] == "K0") & (fc["location_id"] == "CA_1")].set_index("date")["mean"]
    on, off = f[f.index.day <= 10].mean(), f[f.index.day > 10].mean()
    assert on / off == pytest.approx(info.regional_uplift[("FOODS", "CA_1")], rel=0.05)
    tx = fc[(fc["sku_id"] == "K0") & (fc["location_id"] == "TX_1")]["mean"]
    assert tx.max() == pytest.approx(tx.min(), rel=0.05)  # CA's SNAP days are not TX's


def test_flat_models_take_the_category_weekly_profile_when_asked():
    """A category selling 2x on Saturdays: WindowAverage forecasts one flat level; with
    `flat_weekly_profile` it forecasts the same weekly total on the category's day-of-week index,
    in the CV (which scores it better) and in the forecast. Seasonal models are untouched."""

    pattern = [5, 5, 5, 5, 5, 10, 5]
    h = pd.concat([_history(np.resize(pattern, 140) + (i % 2), sku=f"K{i}") for i in range(4)])
    weekly = CFG.model_copy(update=dict(flat_weekly_profile=True, candidates={"smooth": ["WindowAverage"]}))
    flat = weekly.model_copy(update=dict(flat_weekly_profile=False))
    fc = {c.flat_weekly_profile: run_forecast(h, END, c) for c in (weekly, flat)}
    one = {k: r.forecast[r.forecast["sku_id"] == "K0"].set_index("date")["mean"].iloc[:14] for k, r in fc.items()}
    assert one[False].max() == pytest.approx(one[False].min())  # flat
    sat = one[True].index.dayofweek == pd.date_range(end=END, periods=140)[5].dayofweek  # the 10s
    assert one[True][sat].mean() / one[True][~sat].mean() == pytest.approx(2.0, rel=0.05)
    assert one[True].sum() == pytest.approx(one[False].sum(), rel=0.02)  # the same two weeks' demand
    wape = {k: r.cv.set_index("model").loc["WindowAverage", "wape"] for k, r in fc.items()}
    assert wape[True] < 0.5 * wape[False]
    adj, _ = adjust_history(prepare_series(h, END, CFG), CFG)
    cv = {c.flat_weekly_profile: cross_validate(adj, ["SeasonalNaive"], c, None)[0] for c in (weekly, flat)}
    np.testing.assert_allclose(cv[True]["SeasonalNaive"], cv[False]["SeasonalNaive"])


def test_cross_validation_never_sees_the_future():
    """A sentinel after an origin must not change the forecasts made at that origin."""
    base = np.random.default_rng(2).poisson(8, 140).astype(float)
    spiked = base.copy()
    spiked[-7:] = 10_000  # the last CV window's actuals
    cv = {}
    for name, y in (("base", base), ("spiked", spiked)):
        adj, _ = adjust_history(prepare_series(_history(y), END, CFG), CFG)
        cv[name], _ = cross_validate(adj, ["WindowAverage", "SeasonalNaive", "CrostonSBA"], CFG, None)
    last = cv["base"]["cutoff"].max()
    for m in ("WindowAverage", "SeasonalNaive", "CrostonSBA"):
        a = cv["base"].loc[cv["base"]["cutoff"] <= last, m].to_numpy()
        b = cv["spiked"].loc[cv["spiked"]["cutoff"] <= last, m].to_numpy()
        np.testing.assert_allclose(a, b)
    assert (cv["spiked"].loc[cv["spiked"]["cutoff"] == last, "demand"] == 10_000).all()  # the sentinel was there


def test_selection_by_cv_picks_the_best_candidate_and_records_every_one():
    # a strong weekly pattern: the seasonal models must beat the flat window average
    h = pd.concat([_history([4, 4, 4, 5, 8, 10, 8], sku=f"K{i}") for i in range(4)])
    res = run_forecast(h, END, CFG)
    t = res.cv[res.cv["demand_class"] == "smooth"].set_index("model")
    assert res.selection["smooth"] == t["wape"].idxmin() and t.loc[res.selection["smooth"], "selected"]
    assert t.loc["SeasonalNaive", "wape"] < t.loc["WindowAverage", "wape"]
    assert set(t.index) == set(CFG.candidate_map()["smooth"])


def test_intervals_are_calibrated_and_monotone():
    """Split conformal on variance-stabilised residuals: fresh draws from the same process fall
    inside the 80% and 95% intervals at about those rates (series of many sizes, so the
    discreteness of counts does not dominate)."""
    rng = np.random.default_rng(3)
    n = 6000
    f = rng.lognormal(2.5, 0.8, n)
    horizon = np.tile(np.arange(1, 15), n // 14 + 1)[:n]
    cv = pd.DataFrame({"demand": rng.poisson(f).astype(float), "m": f, "horizon": horizon})
    q = apply_quantiles(f, horizon, calibrate(cv, "m"))
    fresh = rng.poisson(f)
    assert abs(((fresh >= q["p10"]) & (fresh <= q["p90"])).mean() - 0.80) < 0.05
    assert abs(((fresh >= q["p025"]) & (fresh <= q["p975"])).mean() - 0.95) < 0.03
    stacked = np.column_stack([q[k] for k in ("p025", "p10", "p50", "p90", "p95", "p975", "p99")])
    assert (np.diff(stacked, axis=1) >= 0).all() and (stacked >= 0).all()


def test_intervals_are_calibrated_per_category_where_its_residuals_suffice():
    """Mondrian conformal: a class whose categories scatter differently (one Poisson, one
    overdispersed) is under-covered in the noisy one and over-covered in the quiet one when pooled;
    calibrated per category, each is near nominal. A category with too few residuals keeps the
    class's pooled table."""
    from inventory_pipeline.core.forecasting import MIN_CATEGORY_RESIDUALS, calibrate_strata, coverage

    rng = np.random.default_rng(4)
    n = 8000
    f = rng.lognormal(2.5, 0.6, n)
    cat = np.where(np.arange(n) % 2 == 0, "quiet", "noisy")
    horizon = np.tile(np.arange(1, 15), n // 14 + 1)[:n]

    def draw():  # the noisy category: gamma-Poisson with shape 2 (variance f + f^2 / 2)
        return np.where(cat == "quiet", rng.poisson(f), rng.poisson(rng.gamma(2.0, f / 2.0))).astype(float)

    cv = pd.DataFrame({"demand": draw(), "m": f, "horizon": horizon, "category": cat})
    fresh = pd.DataFrame({"demand": draw(), "m": f, "horizon": horizon, "category": cat})
    strata = calibrate_strata(cv, "m")
    assert set(strata.by_category) == {"quiet", "noisy"}
    pooled = type(strata)(strata.overall)
    for c in ("quiet", "noisy"):
        part = fresh[fresh["category"] == c]
        by_pool, by_cat = coverage(part, "m", pooled)["coverage_80"], coverage(part, "m", strata)["coverage_80"]
        assert abs(by_cat - 0.80) < 0.03
        assert abs(by_cat - 0.80) < abs(by_pool - 0.80)
    # a category below the minimum sample keeps the pooled table
    few = cv.assign(category=np.where(np.arange(n) < MIN_CATEGORY_RESIDUALS, "rare", cv["category"]))
    assert "rare" not in calibrate_strata(few, "m").by_category


def test_forecast_output_has_every_quantile_for_every_class():
    h = pd.concat(
        [
            _history([5, 5, 6, 5, 4, 5, 5]),
            _history([0, 0, 0, 2, 0, 0, 0, 0, 1, 0], sku="B"),
            _history([3, 1, 2], days=10, sku="C"),
        ]
    )
    fc = forecast_demand(h, END, CFG)
    assert set(fc["demand_class"]) == {"smooth", "intermittent", "new"}
    assert (fc.groupby("sku_id").size() == CFG.horizon_days).all() and fc["horizon"].min() == 1
    q = fc[["p025", "p10", "p50", "p90", "p95", "p975", "p99"]].to_numpy()
    assert (np.diff(q, axis=1) >= -1e-9).all() and (q >= 0).all() and (fc.loc[fc["sku_id"] == "B", "p99"] > 0).all()


def test_series_not_carried_on_plan_date_are_dropped():
    h = pd.concat([_history([5]), _history([5], sku="OLD", end="2025-04-01")])
    assert set(forecast_demand(h, END, CFG)["sku_id"]) == {"A"}


def test_drift_statistics_flag_a_biased_forecast():
    days = pd.date_range("2025-05-01", periods=14)
    actual = pd.DataFrame(
        {
            "location_id": "S1",
            "sku_id": np.repeat(["A", "B"], 14),
            "date": np.tile(days, 2),
            "units_sold": 10.0,
            "is_stockout": False,
        }
    )
    good = actual.assign(mean=10.0, demand_class="smooth")[["location_id", "sku_id", "date", "mean", "demand_class"]]
    st = drift_statistics(good, actual).set_index("demand_class")
    assert st.loc["all", "status"] == "ok" and st.loc["all", "bias"] == 0
    low = good.assign(mean=6.0)  # forecast 40% under what sold
    st = drift_statistics(low, actual).set_index("demand_class")
    assert st.loc["smooth", "bias"] == pytest.approx(-0.4) and st.loc["smooth", "status"] == "fail"
    assert st.loc["smooth", "share_ts_beyond"] == 1.0
    mild = good.assign(mean=8.0)
    assert drift_statistics(mild, actual).set_index("demand_class").loc["smooth", "status"] == "warn"
    # stockout days are not evidence of demand
    censored = actual.assign(is_stockout=True)
    assert drift_statistics(low, censored).set_index("demand_class").loc["all", "days"] == 0


def test_dask_engine_gives_the_same_forecast_as_the_local_engine():
    """statsforecast's distributed backend (fugue) on a local Dask cluster: same selection, same
    numbers."""

    from distributed import Client, LocalCluster

    h = pd.concat(
        [
            _history([5, 5, 6, 5, 4, 5, 5], sku="A"),
            _history([1, 9, 2, 12, 1, 8, 1], sku="B"),
            _history([0, 0, 0, 2, 0, 0, 2], sku="C"),
            _history([4, 4, 4, 5, 8, 10, 8], sku="D", loc="S2"),
        ]
    )
    local = run_forecast(h, END, CFG)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster):
            dist = run_forecast(h, END, CFG.model_copy(update=dict(engine="dask")))
        dist2 = run_forecast(
            h, END, CFG.model_copy(update=dict(engine="dask", dask_scheduler=cluster.scheduler_address))
        )
    assert dist.selection == local.selection == dist2.selection
    cols = ["mean", "p025", "p10", "p50", "p90", "p95", "p975", "p99"]
    for d in (dist, dist2):
        pd.testing.assert_frame_equal(
            d.forecast.drop(columns=cols), local.forecast.drop(columns=cols), check_dtype=False
        )
        np.testing.assert_allclose(
            d.forecast[cols].to_numpy(), local.forecast[cols].to_numpy(), rtol=1e-5, atol=1e-6
        )  # float32 inside statsforecast
    assert CFG.model_copy(update=dict(engine="dask")).fingerprint() == CFG.fingerprint()  # same model identity


def test_two_local_worker_processes_give_the_one_process_forecast_to_the_bit():
    """statsforecast's `n_jobs` (INVENTORY_PIPELINE_FORECAST_JOBS): the series are split over
    forked worker processes for the cross-validation and the fits. Each series is fit alone, so
    the choice, the forecast and the kept fits are exactly the one-process ones; the setting is
    where the forecast runs, not part of the model's identity."""
    h = pd.concat(
        [
            _history([5, 5, 6, 5, 4, 5, 5], sku="A"),
            _history([1, 9, 2, 12, 1, 8, 1], sku="B"),
            _history([0, 0, 0, 2, 0, 0, 2], sku="C"),
            _history([4, 4, 4, 5, 8, 10, 8], sku="D", loc="S2"),
            _history([6, 5, 7, 6, 9, 11, 9], sku="E", loc="S2"),
            _history([3, 4, 3, 3, 5, 6, 4], sku="F", loc="S2"),
        ]
    )
    ets = {**{c: list(m) for c, m in CFG.candidate_map().items()}, "smooth": ["AutoETS"]}  # its fits are kept
    cfg = CFG.model_copy(update={"candidates": ets})
    two_jobs = cfg.model_copy(update=dict(n_jobs=2))
    one, two = run_forecast(h, END, cfg), run_forecast(h, END, two_jobs)
    assert two.selection == one.selection
    pd.testing.assert_frame_equal(two.forecast, one.forecast)
    pd.testing.assert_frame_equal(two.fits, one.fits)
    assert len(one.fits)  # AutoETS fits kept for the next plan, through the parallel fit too
    assert two_jobs.fingerprint() == cfg.fingerprint()


@pytest.mark.slow
def test_global_model_on_dask_gives_the_local_engines_forecast():
    """The global model through mlforecast's DistributedMLForecast and LightGBM's Dask estimator.
    One worker holding one partition builds the same features and trains the same trees: the same
    forecast to the last digit (bagging included). Over two workers LightGBM trains data-parallel
    and finds each feature's bins from its own rows, so the trees differ: on these 7 short series
    the total moves by -7.1% and CV WAPE by 3 points (0.395 -> 0.426); on 80 series by +0.3% and
    0.3 points (docs/forecasting.md). The selection is the same. The next plan, inside the
    cadence, predicts with the kept model on the workers (two partitions now) and gives what the
    local engine gives from the same kept model."""
    import logging

    from distributed import Client, LocalCluster

    rng = np.random.default_rng(5)
    h = pd.concat(
        [_history(rng.poisson([4, 4, 4, 5, 8, 10, 8] * 20), sku=f"K{i}") for i in range(6)]
        + [_history(rng.poisson(0.3, 140), sku="SLOW")]
    )
    cfg = CFG.model_copy(update=dict(family="mlforecast"))
    local = run_forecast(h, END, cfg)
    on_dask = cfg.model_copy(update=dict(engine="dask", dask_partitions=1))
    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None, silence_logs=logging.ERROR) as c:
        with Client(c):
            one = run_forecast(h, END, on_dask)
            assert one.fitting["global_trained"] == 1 and len(one.global_fits) == 1
            nxt = h.assign(date=h["date"] + pd.Timedelta(days=1))
            carry = dict(global_fits=one.global_fits, cv_state=one.cv_state())
            two_parts = on_dask.model_copy(update=dict(dask_partitions=2))  # engine settings: the same model
            carried = run_forecast(nxt, NEXT, two_parts, **carry)
    assert carried.fitting["global_reused"] == 1 and carried.fitting["global_trained"] == 0
    carried_here = run_forecast(nxt, NEXT, cfg, **carry)
    assert carried_here.fitting["global_reused"] == 1
    got, want = (
        r.forecast.set_index(["sku_id", "date"]).sort_index()[["mean", "p10", "p90"]] for r in (carried, carried_here)
    )
    np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), rtol=1e-9, atol=1e-9)
    cols = ["mean", "p025", "p10", "p50", "p90", "p95", "p975", "p99"]
    pd.testing.assert_frame_equal(one.forecast.drop(columns=cols), local.forecast.drop(columns=cols), check_dtype=False)
    np.testing.assert_allclose(one.forecast[cols].to_numpy(), local.forecast[cols].to_numpy(), rtol=1e-9, atol=1e-9)
    assert one.metrics["cv_wape"] == pytest.approx(local.metrics["cv_wape"])

    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None, silence_logs=logging.ERROR) as c:
        two = run_forecast(
            h, END, on_dask.model_copy(update=dict(dask_partitions=2, dask_scheduler=c.scheduler_address))
        )
    assert two.selection == local.selection
    assert two.forecast["mean"].sum() == pytest.approx(local.forecast["mean"].sum(), rel=0.15)
    assert two.metrics["cv_wape"] == pytest.approx(local.metrics["cv_wape"], abs=0.06)


def test_global_lightgbm_family_is_scored_like_the_local_models():
    """The mlforecast challenger family: one LightGBM over every series, same CV, same intervals."""

    rng = np.random.default_rng(5)
    h = pd.concat(
        [_history(rng.poisson([4, 4, 4, 5, 8, 10, 8] * 20), sku=f"K{i}") for i in range(6)]
        + [_history(rng.poisson(0.3, 140), sku="SLOW")]
    )
    res = run_forecast(h, END, CFG.model_copy(update=dict(family="mlforecast")))
    assert set(res.selection.values()) == {"LightGBM"} and (res.forecast["model"] == "LightGBM").all()
    assert {"cv_wape", "cv_mase", "cv_coverage_80", "cv_coverage_95"} <= set(res.metrics)
    assert len(res.forecast) == 7 * CFG.horizon_days
    q = res.forecast[["p025", "p10", "p50", "p90", "p95", "p975", "p99"]].to_numpy()
    assert (np.diff(q, axis=1) >= -1e-9).all() and (q >= 0).all()
    assert CFG.model_copy(update=dict(family="mlforecast")).fingerprint() != CFG.fingerprint()  # a different model


def test_calibration_ignores_points_a_model_could_not_forecast():
    # a 28-day window average has no forecast for a series with a shorter history: those CV points
    # are NaN and must not turn every quantile of the class into NaN (replenishment would stop)
    from inventory_pipeline.core.forecasting import apply_quantiles, calibrate

    rng = np.random.default_rng(0)
    f = np.r_[np.full(100, 5.0), np.full(20, np.nan)]
    cv = pd.DataFrame({"m": f, "demand": rng.poisson(5, 120).astype(float), "horizon": np.tile(np.arange(1, 13), 10)})
    cal = calibrate(cv, "m")
    assert np.isfinite(cal.to_numpy()).all()
    q = apply_quantiles(np.array([5.0]), np.array([1]), cal)
    assert 5 < q["p95"][0] < 12
    assert np.isfinite(calibrate(cv.assign(m=np.nan), "m").to_numpy()).all()  # nothing forecast: normal scale


def test_rmsse_score_by_hand():
    """RMSSE per series x origin = sqrt(MSE / mean squared one-step difference of the demand up to
    the origin, from the first non-zero demand on), averaged; a zero scale leaves a series out."""
    from inventory_pipeline.core.forecasting import _scale, score

    days = pd.date_range("2025-01-01", periods=8, freq="D")
    hist = {
        "X": [0, 0, 5, 3, 5, 3],  # from the first sale: (3-5)^2, (5-3)^2, (3-5)^2 -> 4 (the 0 -> 5 step is before it)
        "Y": [1, 2, 1, 2, 1, 2],  # every step 1 -> 1
        "Z": [3, 3, 3, 3, 3, 3],  # no change: scale 0, left out of the RMSSE
    }
    actual = {"X": [4, 2], "Y": [1, 1], "Z": [3, 3]}
    forecast = {"X": [6, 0], "Y": [3, 3], "Z": [3, 3]}  # MSE: X 4, Y 4, Z 0
    adj = pd.DataFrame(
        {
            "unique_id": np.repeat(list(hist), 8),
            "ds": np.tile(days, 3),
            "demand": np.concatenate([hist[k] + actual[k] for k in hist]).astype(float),
        }
    )
    cutoff = days[5]
    cv = pd.DataFrame(
        {
            "unique_id": np.repeat(list(hist), 2),
            "ds": np.tile(days[6:], 3),
            "cutoff": cutoff,
            "demand": np.concatenate([actual[k] for k in hist]).astype(float),
            "m": np.concatenate([forecast[k] for k in hist]).astype(float),
        }
    )
    scale = _scale(adj, pd.DataFrame({"cutoff": [cutoff]}), season=1)
    sq = scale.set_index("unique_id")["sq_scale"]
    assert sq["X"] == pytest.approx(4.0) and sq["Y"] == pytest.approx(1.0) and sq["Z"] == 0.0
    s = score(cv, "m", scale)
    assert s["rmsse"] == pytest.approx((np.sqrt(4 / 4) + np.sqrt(4 / 1)) / 2)  # X 1, Y 2
    assert s["wape"] == pytest.approx(8 / 14) and s["bias"] == pytest.approx(4 / 14)
    # a candidate without a forecast for some point scores NaN, like its WAPE, and cannot win
    assert np.isnan(score(cv.assign(m=cv["m"].where(cv.index > 0)), "m", scale)["rmsse"])


class _Median:
    """A forecaster that says 0: the median of a series that sells on fewer than half its days
    (stands in for an extra candidate of `_select_and_calibrate`)."""

    seconds = 0.0

    def prepare(self, ids):
        pass

    def columns(self, cv, best):
        return cv.assign(median=0.0), ["median"]


def test_selection_metric_rmsse_picks_the_mean_where_wape_picks_the_median():
    """One unit every 4th day (4 phases): the mean is 0.25 a day, the median 0. WAPE prefers the
    median (WAPE 1 against 1.5); squared error prefers the mean, which replenishment reads the
    forecast as; the configured metric is the one minimised."""

    import inventory_pipeline.core.forecasting as F

    h = pd.concat([_history(np.roll([1, 0, 0, 0], k), sku=f"K{k}") for k in range(4)])
    cfg = CFG.model_copy(update=dict(uplift=False, candidates={"intermittent": ["WindowAverage"]}))
    adj, _ = adjust_history(prepare_series(h, END, cfg), cfg)
    classes = classify(adj, cfg, col="demand")
    adj = adj.merge(classes[["unique_id", "demand_class"]], on="unique_id")
    assert set(classes["demand_class"]) == {"intermittent"}
    picked = {}
    for metric in ("wape", "rmsse"):
        c = cfg.model_copy(update=dict(selection_metric=metric))
        picked[metric], table, *_ = F._select_and_calibrate(adj, classes, c, None, None, extra=_Median())
        t = table.set_index("model")
        assert (t["selected_by"] == metric).all() and t.loc[picked[metric]["intermittent"], "selected"]
        assert picked[metric]["intermittent"] == t[metric].idxmin()
    assert t.loc["median", "wape"] == pytest.approx(1.0) and t.loc["WindowAverage", "wape"] == pytest.approx(1.5)
    assert t.loc["WindowAverage", "bias"] == pytest.approx(0.0, abs=1e-6)  # 7 of 28 days: exactly the mean
    assert t.loc["WindowAverage", "rmsse"] < t.loc["median", "rmsse"]
    assert picked == {"wape": {"intermittent": "median"}, "rmsse": {"intermittent": "WindowAverage"}}


def test_selection_metric_flows_from_the_policy_and_is_part_of_the_model_identity(tmp_path):
    from pathlib import Path

    import inventory_pipeline
    from inventory_pipeline.core.policy import PolicyError, load_policy

    default = Path(inventory_pipeline.__file__).parent / "policy" / "default_policy.yaml"
    assert ForecastSettings.of(load_policy(default).forecast).selection_metric == "wape"
    text = default.read_text()
    assert "  selection_metric: wape" in text
    p = tmp_path / "rmsse.yaml"
    p.write_text(text.replace("  selection_metric: wape", "  selection_metric: rmsse"))
    assert ForecastSettings.of(load_policy(p).forecast).selection_metric == "rmsse"
    p.write_text(text.replace("  selection_metric: wape", "  selection_metric: mae"))
    with pytest.raises(PolicyError):
        load_policy(p)
    with pytest.raises(ValueError):
        ForecastSettings(selection_metric="mae")
    rm = CFG.model_copy(update=dict(selection_metric="rmsse"))
    assert rm.fingerprint() != CFG.fingerprint()
    back = ForecastSettings.from_dict(rm.to_dict())  # what the registry stores comes back as the same model
    assert back.to_dict() == rm.to_dict() and back.fingerprint() == rm.fingerprint()
    # the default keeps the identity a configuration had before the option existed
    import hashlib
    import json

    from inventory_pipeline.core.forecasting import ENGINE_FIELDS

    before = {
        k: v
        for k, v in CFG.to_dict().items()
        if k not in (*ENGINE_FIELDS, "selection_metric", "flat_weekly_profile", "yearly_profile")
    }
    assert CFG.fingerprint() == hashlib.sha256(json.dumps(before, sort_keys=True).encode()).hexdigest()[:12]
    assert CFG.model_copy(update=dict(flat_weekly_profile=True)).fingerprint() != CFG.fingerprint()
    assert CFG.model_copy(update=dict(yearly_profile=True)).fingerprint() != CFG.fingerprint()


def _yearly_history(end=END, days=400, seed=3):
    """A seasonal category whose season started 8 days after last year's plan date (3x for 32
    days), a category whose level only drifts (+-5% a month, never a season) and a flat one, at
    two stores."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range(end=end, periods=days)
    day = (dates - pd.Timestamp(end)).days.to_numpy() + 364  # 0 = last year's plan date
    season = np.where((day >= 8) & (day < 40), 3.0, 1.0)
    drift = 1 + 0.05 * np.sin(2 * np.pi * day / 30)
    rows = []
    for sku, _category, rate in [
        ("S1", "seasonal", 5 * season),
        ("S2", "seasonal", 5 * season),
        ("S3", "seasonal", 5 * season),
        ("D1", "drifting", 20 * drift),
        ("D2", "drifting", 20 * drift),
        ("F1", "flat", np.full(days, 5.0)),
        ("F2", "flat", np.full(days, 5.0)),
    ]:
        for loc in ("L1", "L2"):
            rows.append(
                pd.DataFrame(
                    {
                        "location_id": loc,
                        "sku_id": sku,
                        "date": dates,
                        "units_sold": rng.poisson(rate),
                        "is_stockout": False,
                        "on_promo": 0,
                    }
                )
            )
    cats = pd.Series(
        {
            "S1": "seasonal",
            "S2": "seasonal",
            "S3": "seasonal",
            "D1": "drifting",
            "D2": "drifting",
            "F1": "flat",
            "F2": "flat",
        }
    )
    return pd.concat(rows, ignore_index=True), cats


def test_yearly_ramp_brings_last_years_season_before_it_starts():
    from inventory_pipeline.core.forecasting import yearly_ramp

    h, cats = _yearly_history()
    ramp, info = yearly_ramp(h, END, 30, cats)
    r = ramp.assign(k=(ramp["date"] - pd.Timestamp(END)).dt.days).set_index(["sku_id", "k"])["ramp"]
    # deep in the season's window (days 15-32) the seasonal SKUs expect about 3x, before it (day 1) about 1x
    for sku in ("S1", "S2", "S3"):
        assert r.loc[(sku, 20)] == pytest.approx(3.0, rel=0.2) and r.loc[(sku, 1)] == pytest.approx(1.0, abs=0.2)
    # a drift no larger than any month's and a flat category are held back: exactly no ramp
    assert (r.loc[["D1", "D2", "F1", "F2"]] == 1.0).all()
    assert info["yearly_ramp_skus"] == 7 and info["yearly_ramp_categories_kept"] == 1
    # without a year of history there is nothing to learn from: no ramp
    short = h[h["date"] > pd.Timestamp(END) - pd.Timedelta(days=300)]
    assert yearly_ramp(short, END, 30, cats)[0].empty


def test_yearly_profile_scales_the_forecast_ahead_of_the_season():

    h, cats = _yearly_history()
    cfg = CFG.model_copy(update=dict(horizon_days=30, history_days=140))
    flat = run_forecast(h, END, cfg, cats).forecast.set_index(["location_id", "sku_id", "horizon"])["mean"]
    on = run_forecast(h, END, cfg.model_copy(update=dict(yearly_profile=True)), cats)
    ramped = on.forecast.set_index(["location_id", "sku_id", "horizon"])["mean"]
    ratio = ramped / flat
    assert ratio.loc[("L1", "S1", 20)] == pytest.approx(3.0, rel=0.2)
    assert ratio.loc[("L1", "F1", 20)] == pytest.approx(1.0)
    assert on.metrics["yearly_ramp_skus"] == 7
    # the intervals follow the ramped mean (conformal residuals scale with the forecast)
    assert (on.forecast["p90"] >= on.forecast["mean"] - 1e-9).all()
    assert cfg.model_copy(update=dict(yearly_profile=False)).fingerprint() == cfg.fingerprint()


def test_the_forecast_and_its_fingerprint_do_not_depend_on_the_order_of_history_rows():
    """The warehouse reads the history unsorted (sorting 11 M rows cost 2.4 s a plan at M5 scale):
    the forecast, its model choice and the data fingerprint of the model version must be the same
    whatever order the rows come in. A mixed panel: a year of seasonal, drifting and flat SKUs,
    intermittent and lumpy ones, a stocked-out and a promoted one; censoring, uplifts, cross-
    validation with sampled series and the yearly ramp all on."""
    from inventory_pipeline.core.tracking import fingerprint

    rng = np.random.default_rng(11)
    yearly, cats = _yearly_history()
    days = 400
    sparse = [
        _history(rng.poisson(0.3, days), days, loc=loc, sku=f"I{i}", stockout=rng.random(days) < 0.05)
        for i in range(3)
        for loc in ("L1", "L2")
    ]
    lumpy = _history(rng.poisson(0.2, days) * rng.integers(1, 20, days), days, loc="L1", sku="K1")
    promo = _history(rng.poisson(8, days), days, loc="L2", sku="P1", promo=(np.arange(days) % 9 < 2).astype(int))
    h = pd.concat([yearly, *sparse, lumpy, promo], ignore_index=True)
    cats = pd.concat([cats, pd.Series("other", index=["I0", "I1", "I2", "K1", "P1"])])
    cfg = CFG.model_copy(update=dict(yearly_profile=True, cv_sample_series=4))
    shuffled = h.sample(frac=1.0, random_state=5).reset_index(drop=True)
    a, b = run_forecast(h, END, cfg, cats), run_forecast(shuffled, END, cfg, cats)
    keys = ["location_id", "sku_id", "horizon"]
    pd.testing.assert_frame_equal(
        a.forecast.sort_values(keys).reset_index(drop=True), b.forecast.sort_values(keys).reset_index(drop=True)
    )
    assert a.selection == b.selection and a.metrics == b.metrics
    timing = [c for c in a.cv if c.endswith("_seconds")]  # wall times
    pd.testing.assert_frame_equal(a.cv.drop(columns=timing), b.cv.drop(columns=timing))
    assert fingerprint(h) == fingerprint(shuffled) != fingerprint(h.assign(units_sold=h["units_sold"] + 1))
    # the warehouse reads the keys as categoricals (Source.history(keys_as_categories=True)), the
    # twin as strings: the same rows give the same forecast and the same model version either way
    keys = {
        c: pd.CategoricalDtype(["unused", *sorted(set(shuffled[c]), reverse=True)]) for c in ("location_id", "sku_id")
    }
    coded = shuffled.astype(keys)
    c = run_forecast(coded, END, cfg, cats)
    pd.testing.assert_frame_equal(c.forecast, b.forecast)
    assert c.selection == b.selection and c.metrics == b.metrics
    assert fingerprint(coded) == fingerprint(h)


def test_key_codes_are_sorted_factorize_codes_for_string_and_categorical_keys():
    from inventory_pipeline.core.keys import key_codes

    s = pd.Series(["b", "10", "a", "b", "2"])
    c = s.astype(pd.CategoricalDtype(["z", "b", "a", "2", "10"]))  # an unused category, not in sorted order
    for keys in (s, c):
        codes, names = key_codes(keys)
        assert list(names) == ["10", "2", "a", "b"] and list(codes) == [3, 0, 2, 3, 1]
        codes, names = key_codes(keys, np.array([0, 2]), as_str=True)
        assert list(names) == ["a", "b"] and list(codes) == [1, 0]
    n = pd.Series(["b", None, "a"])
    for keys in (n, n.astype("category")):  # a missing key has no code, as in pd.factorize
        codes, names = key_codes(keys)
        assert list(codes) == [1, -1, 0] and list(names) == ["a", "b"]


def test_as_dates_equals_pd_to_datetime_on_every_kind_of_date_column():
    from inventory_pipeline.core.dates import as_dates

    days = pd.Series(pd.to_datetime(["2026-01-02", "2026-01-01"] * 3000 + [None]))  # > 5,000 rows: pandas caches
    columns = [
        days,
        days.astype("datetime64[us]"),  # as DuckDB returns a DATE
        days.dt.tz_localize("UTC"),
        days.dt.strftime("%Y-%m-%d"),  # strings, as the twin's source and the landing files give them
        pd.Series(days.dt.date.to_numpy(dtype=object)),  # datetime.date objects
        days.to_numpy(),
    ]
    for col in columns:
        got, want = as_dates(col), pd.to_datetime(col)
        if isinstance(want, pd.Series):
            pd.testing.assert_series_equal(got, want)
        else:
            pd.testing.assert_index_equal(got, want)
    assert as_dates("2026-01-02") == pd.Timestamp("2026-01-02")


def test_the_warehouse_reads_keys_as_categoricals_with_the_same_values(tmp_path):
    import duckdb

    from inventory_pipeline.core.warehouse import Warehouse

    wh = Warehouse(tmp_path)
    with duckdb.connect(str(wh.duckdb_path)) as con:
        rows = "('S1', 'O''Brien', 1), ('S2', NULL, 2), ('S1', 'B', 3)"
        con.execute(f"create table t as select * from (values {rows}) v(loc, sku, n)")
    sql = "select loc, sku, n from t where n >= ?"
    plain = wh.read_model(sql, [1])
    coded = wh.read_model(sql, [1], categories=("loc", "sku"))
    assert isinstance(coded["loc"].dtype, pd.CategoricalDtype) and isinstance(coded["sku"].dtype, pd.CategoricalDtype)
    assert list(coded["sku"].cat.categories) == ["B", "O'Brien"]  # a quote inside a key, a NULL key
    pd.testing.assert_frame_equal(coded.astype({"loc": object, "sku": object}), plain)
    empty = wh.read_model(sql, [9], categories=("loc",))  # no value to make an ENUM of: the plain read
    assert empty.empty and list(empty.columns) == ["loc", "sku", "n"]


def test_a_class_the_fixed_selection_does_not_name_chooses_among_its_candidates():
    """Between reselections the twin (and a champion) fixes each class's model; a class whose
    first series appeared since is selected as usual instead of stopping the forecast (it raised
    "no forecast candidates configured for class 'lumpy'" before)."""
    smooth = _history([5, 5, 6, 5, 4, 5, 5], sku="SMOOTH")
    fixed = run_forecast(smooth, END, CFG).selection
    assert set(fixed) == {"smooth"}
    both = pd.concat([smooth, _history([0, 0, 0, 1, 0, 0, 14], sku="LUMPY")])
    res = run_forecast(both, END, CFG, selection=fixed)
    assert res.selection["smooth"] == fixed["smooth"]
    assert res.selection["lumpy"] in CFG.candidate_map()["lumpy"]
    assert set(res.forecast["demand_class"]) == {"smooth", "lumpy"}


def _last_run(selection: dict, selected_on: str, cfg=CFG) -> dict:
    import json

    return {"selection": json.dumps(selection), "selected_on": pd.Timestamp(selected_on),
            "config_fingerprint": cfg.fingerprint()}  # fmt: skip


def test_model_choice_is_reused_within_the_cadence_and_made_afresh_after_it():
    from inventory_pipeline.core.forecasting import reusable_selection

    weekly = CFG.model_copy(update={"reselect_every_days": 7})
    last = _last_run({"smooth": "AutoETS"}, "2025-04-24", weekly)
    assert reusable_selection(None, "2025-04-25", weekly) == (None, "2025-04-25")  # the first plan chooses
    assert reusable_selection(last, "2025-04-25", weekly) == ({"smooth": "AutoETS"}, "2025-04-24")
    assert reusable_selection(last, "2025-04-30", weekly) == ({"smooth": "AutoETS"}, "2025-04-24")  # day 6
    assert reusable_selection(last, "2025-05-01", weekly) == (None, "2025-05-01")  # day 7: choose again
    assert reusable_selection(last, "2025-04-24", weekly) == (None, "2025-04-24")  # a re-run of that plan
    every_plan = weekly.model_copy(update={"reselect_every_days": 1})
    assert reusable_selection(last, "2025-04-25", every_plan) == (None, "2025-04-25")
    other = weekly.model_copy(update={"cv_windows": 3})  # another configuration: its own choice
    assert reusable_selection(last, "2025-04-25", other) == (None, "2025-04-25")


def test_a_reused_choice_forecasts_what_the_same_choice_made_afresh_does():
    """Day D+1 reusing D's model choice gives the forecast, intervals and CV metrics that the full
    model choice run from scratch on D+1's data gives, when that choice is the same (the choice is
    all that is reused; everything else is fitted on D+1's data)."""
    h = pd.concat([_history([4, 4, 4, 5, 8, 10, 8], sku=f"K{i}", end="2025-05-01") for i in range(3)])
    chosen_on_d = run_forecast(h[h["date"] <= END], END, CFG).selection
    reused = run_forecast(h, "2025-05-01", CFG, selection=chosen_on_d)
    from_scratch = run_forecast(h, "2025-05-01", CFG)
    assert from_scratch.selection == chosen_on_d == reused.selection
    pd.testing.assert_frame_equal(reused.forecast, from_scratch.forecast)
    pd.testing.assert_series_equal(pd.Series(reused.metrics), pd.Series(from_scratch.metrics))
    # the reused run cross-validated only the chosen models: one CV row per class
    assert len(reused.cv) == len(chosen_on_d) < len(from_scratch.cv)


def _seasonal_skus(n: int, days: int, end: str, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    week = np.array([18, 20, 22, 21, 25, 34, 30], float)
    return pd.concat(
        [_history(rng.poisson(np.resize(week * (1 + 0.2 * i), days)), days, sku=f"E{i}", end=end) for i in range(n)]
    )


ETS_ONLY = CFG.model_copy(
    update={"censoring": False, "uplift": False, "candidates": {"smooth": ["AutoETS"]}, "refit_every_days": 7}
)


def test_kept_fits_run_forward_equal_the_refit_days_model_run_over_the_longer_series():
    """Day D estimates AutoETS and keeps its fits; day D+1 runs them forward. The reused forecast
    is what statsforecast's own AutoETS, fit on D's series and run forward (`forward`) over that
    series plus the new day, forecasts: the parameters stay, the new day updates the states."""
    from statsforecast.models import AutoETS

    d1 = "2025-05-01"
    h = _seasonal_skus(3, 150, d1)
    on_d = run_forecast(h[h["date"] <= END], END, ETS_ONLY)
    assert on_d.selection == {"smooth": "AutoETS"}
    assert on_d.fitting == {"forwarded": 0, "estimated": 3} and len(on_d.fits) == 3
    reused = run_forecast(h, d1, ETS_ONLY, selection=on_d.selection, fits=on_d.fits)
    assert reused.fitting == {"forwarded": 3, "estimated": 0}
    pd.testing.assert_frame_equal(reused.fits, on_d.fits)  # carried as estimated, with the day of estimation
    for sku, y in h.groupby("sku_id")["units_sold"]:
        y = y.to_numpy(float)
        on_d_series = y[-1 - ETS_ONLY.history_days : -1]  # the 140 days to D
        model = AutoETS(season_length=7, model="ANA").fit(on_d_series)
        expected = model.forward(y=np.r_[on_d_series, y[-1]], h=ETS_ONLY.horizon_days)["mean"]
        got = reused.forecast.loc[reused.forecast["sku_id"] == sku, "mean"].to_numpy()
        np.testing.assert_allclose(got, np.clip(expected, 0, None), rtol=1e-10)
    # re-estimated, D+1 gives another forecast (the parameters are D+1's own)
    refit = run_forecast(h, d1, ETS_ONLY.model_copy(update={"refit_every_days": 1}), selection=on_d.selection)
    assert not np.allclose(refit.forecast["mean"], reused.forecast["mean"], rtol=1e-6)


def test_kept_fits_are_used_within_the_cadence_only_and_equal_a_refit_on_their_own_day():
    h = _seasonal_skus(2, 160, "2025-05-08")
    on_d = run_forecast(h[h["date"] <= END], END, ETS_ONLY)
    again = run_forecast(h[h["date"] <= END], END, ETS_ONLY, fits=on_d.fits)  # a re-run of the refit day
    assert again.fitting == {"forwarded": 2, "estimated": 0}
    pd.testing.assert_frame_equal(again.forecast, on_d.forecast)
    day6 = run_forecast(h[h["date"] <= "2025-05-06"], "2025-05-06", ETS_ONLY, fits=on_d.fits)
    assert day6.fitting == {"forwarded": 2, "estimated": 0}
    day7 = run_forecast(h[h["date"] <= "2025-05-07"], "2025-05-07", ETS_ONLY, fits=day6.fits)
    assert day7.fitting == {"forwarded": 0, "estimated": 2}  # 7 days after the estimate: estimated again
    assert (day7.fits["fitted_on"] == pd.Timestamp("2025-05-07")).all()
    # a series the kept fits do not know is estimated; the known one still runs forward
    new = _seasonal_skus(1, 150, "2025-05-01", seed=9).assign(sku_id="NEW")
    mixed = run_forecast(pd.concat([h[h["date"] <= "2025-05-01"], new]), "2025-05-01", ETS_ONLY, fits=on_d.fits)
    assert mixed.fitting == {"forwarded": 2, "estimated": 1} and len(mixed.fits) == 3


def test_a_carrying_plan_uses_the_refit_days_intervals_instead_of_cross_validating_again():
    """D+1 carrying D's fits and D's CV state: the same means as with its own CV, the intervals
    of D's calibration (read back from its stored table) and D's CV metrics, and it says so."""
    import dataclasses

    from inventory_pipeline.core.forecasting import CvState

    d1 = "2025-05-01"
    h = _seasonal_skus(3, 150, d1)
    on_d = run_forecast(h[h["date"] <= END], END, ETS_ONLY)
    state = on_d.cv_state()
    assert on_d.cv_on == END and state.on == END
    stored = CvState.calibrations_from(state.calibration_table())  # the Parquet table's round trip
    for cls, cal in on_d.calibration.items():
        pd.testing.assert_frame_equal(stored[cls].overall, cal.overall, check_dtype=False)
    own_cv = run_forecast(h, d1, ETS_ONLY, selection=on_d.selection, fits=on_d.fits)
    state = dataclasses.replace(state, calibration=stored)
    carried = run_forecast(h, d1, ETS_ONLY, selection=on_d.selection, fits=on_d.fits, cv_state=state)
    assert own_cv.cv_on == d1 and carried.cv_on == END
    pd.testing.assert_series_equal(carried.forecast["mean"], own_cv.forecast["mean"])
    assert carried.metrics["cv_wape"] == on_d.metrics["cv_wape"] != own_cv.metrics["cv_wape"]
    f = carried.forecast
    q = on_d.calibration["smooth"].quantiles(f["mean"].to_numpy(), f["horizon"].to_numpy())
    for name in ("p10", "p90", "p99"):
        np.testing.assert_allclose(f[name], q[name])
    # a class the state has no calibration for: the plan cross-validates
    assert not dataclasses.replace(state, calibration={}).covers(carried.classes)


def test_the_cv_is_reused_only_by_a_plan_that_reuses_the_choice_inside_the_refit_cadence():
    from inventory_pipeline.core.forecasting import reusable_cv

    last = {"cv_on": pd.Timestamp("2025-04-24"), "config_fingerprint": ETS_ONLY.fingerprint()}
    assert reusable_cv(last, "2025-04-25", ETS_ONLY, choice_reused=True) == "2025-04-24"
    assert reusable_cv(last, "2025-04-30", ETS_ONLY, choice_reused=True) == "2025-04-24"  # day 6
    assert reusable_cv(last, "2025-05-01", ETS_ONLY, choice_reused=True) is None  # day 7: cross-validate
    assert reusable_cv(last, "2025-04-24", ETS_ONLY, choice_reused=True) is None  # a re-run of that plan
    assert reusable_cv(last, "2025-04-25", ETS_ONLY, choice_reused=False) is None  # a new choice: its own CV
    assert reusable_cv(None, "2025-04-25", ETS_ONLY, choice_reused=True) is None
    assert reusable_cv({**last, "cv_on": None}, "2025-04-25", ETS_ONLY, choice_reused=True) is None  # older run
    other = ETS_ONLY.model_copy(update={"cv_windows": 3})
    assert reusable_cv(last, "2025-04-25", other, choice_reused=True) is None
    every = ETS_ONLY.model_copy(update={"refit_every_days": 1})
    assert reusable_cv(last, "2025-04-25", every, choice_reused=True) is None


def _prepare_series_by_merge(history: pd.DataFrame, plan_date: str, cfg: ForecastSettings) -> pd.DataFrame:
    """prepare_series spelled out with groupby and a merge (what the vectorised one must equal)."""
    end = pd.Timestamp(plan_date)
    start = end - pd.Timedelta(days=cfg.history_days - 1)
    h = history[(history["date"] >= start) & (history["date"] <= end)].copy()
    h = h[h.groupby(["location_id", "sku_id"])["date"].transform("max") == end]
    h["unique_id"] = h.groupby(["location_id", "sku_id"], sort=True).ngroup()
    grid = pd.concat(
        [pd.DataFrame({"unique_id": u, "ds": pd.date_range(g["date"].min(), end)}) for u, g in h.groupby("unique_id")],
        ignore_index=True,
    )
    out = grid.merge(h.rename(columns={"date": "ds", "units_sold": "y"}), on=["unique_id", "ds"], how="left")
    ids = h.drop_duplicates("unique_id").set_index("unique_id")
    return pd.DataFrame(
        {
            "unique_id": out["unique_id"],
            "ds": out["ds"],
            "y": out["y"].fillna(0).astype(float),
            "location_id": out["unique_id"].map(ids["location_id"]).astype(str),
            "sku_id": out["unique_id"].map(ids["sku_id"]).astype(str),
            "is_stockout": out["is_stockout"].eq(True),
            "on_promo": out["on_promo"].fillna(0).astype(bool),
        }
    )


@settings(max_examples=40, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from(["S2", "S1", "DC"]),
            st.sampled_from(["B", "A", "C10", "C9"]),
            st.integers(0, 32),  # days before the plan date; some outside the 28-day window
            st.integers(0, 9),
            st.booleans(),
            st.sampled_from([0, 1, None]),
        ),
        max_size=60,
        unique_by=lambda r: (r[0], r[1], r[2]),
    )
)
def test_prepare_series_equals_the_grid_merge_it_vectorises(rows):
    cfg = ForecastSettings(history_days=28)
    h = pd.DataFrame(rows, columns=["location_id", "sku_id", "back", "units_sold", "is_stockout", "on_promo"])
    h["date"] = pd.Timestamp(END) - pd.to_timedelta(h.pop("back"), unit="D")
    got = prepare_series(h.sample(frac=1, random_state=1), END, cfg)  # row order must not matter
    if not (h["date"] == pd.Timestamp(END)).any():
        assert got.empty
        return
    want = _prepare_series_by_merge(h, END, cfg)
    got = got.assign(location_id=got["location_id"].astype(str), sku_id=got["sku_id"].astype(str))
    pd.testing.assert_frame_equal(got.reset_index(drop=True), want, check_dtype=False)


def test_prepare_series_refuses_two_rows_for_one_series_day():
    h = pd.concat([_history([3]), _history([3]).tail(1)])
    with pytest.raises(ValueError, match="more than one row for a location x SKU x date"):
        prepare_series(h, END, CFG)


def test_prepare_series_with_number_keys_and_a_row_without_a_key():
    h = pd.concat([_history([1], sku=2), _history([2], sku=10), _history([5], sku=None).tail(3)])
    got = prepare_series(h, END, CFG)
    assert list(got["sku_id"].cat.categories) == ["10", "2"]  # categories in string order, as before
    assert got.groupby("unique_id")["sku_id"].first().astype(str).tolist() == ["2", "10"]  # series in key order
    assert got["unique_id"].nunique() == 2  # the row without a SKU belongs to no series
    want = _prepare_series_by_merge(h, END, CFG)
    got = got.assign(location_id=got["location_id"].astype(str), sku_id=got["sku_id"].astype(str))
    pd.testing.assert_frame_equal(got.reset_index(drop=True), want, check_dtype=False)


def test_cv_plot_is_drawn_once_per_set_of_points(tmp_path, monkeypatch):
    """A plan reusing an earlier plan's cross-validation copies its CV plot: the same points (in any
    row order) are drawn once, other points are drawn afresh, and every plan gets its own file."""
    from inventory_pipeline.core import plots

    ds = pd.date_range("2026-01-01", periods=14)
    points = pd.DataFrame(
        {
            "unique_id": ["S1|A"] * 14,
            "ds": ds,
            "cutoff": [ds[0]] * 7 + [ds[7]] * 7,
            "horizon": list(range(1, 8)) * 2,
            "demand": np.arange(14.0),
            "forecast": np.arange(14.0) + 1,
            "demand_class": "smooth",
            "model": "AutoETS",
        }
    )
    drawn = []
    draw = plots.plot_cv
    monkeypatch.setattr(plots, "plot_cv", lambda p, path: drawn.append(path) or draw(p, path))
    a = plots.plot_cv_once(points, tmp_path / "2026-01-15_cv.png", tmp_path / "cv")
    b = plots.plot_cv_once(points.iloc[::-1], tmp_path / "2026-01-16_cv.png", tmp_path / "cv")
    assert len(drawn) == 1 and a.read_bytes() == b.read_bytes() and a != b
    plots.plot_cv_once(points.assign(forecast=points["forecast"] * 2), tmp_path / "2026-01-22_cv.png", tmp_path / "cv")
    assert len(drawn) == 2 and len(list((tmp_path / "cv").glob("*.png"))) == 2
    assert not list((tmp_path / "cv").glob(".*"))  # no partial drawing left behind
