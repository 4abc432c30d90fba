"""The global forecast model (mlforecast + LightGBM) and the combined family: promotion features,
planned and cancelled promotions, no look-ahead, CV choice of the combination, the backtest's
ETS(A,N,A) baseline."""

import numpy as np
import pandas as pd
import pytest

from inventory_pipeline.core import forecasting as F
from inventory_pipeline.core.forecasting import GLOBAL_MODEL, ForecastSettings, run_forecast

END = "2025-04-30"
CFG = ForecastSettings(
    horizon_days=14,
    history_days=140,
    cv_windows=2,
    cv_horizon=7,
    cv_sample_series=0,
    family="mlforecast",
    yearly_profile=False,
)
LIFT = 3.0
FUTURE_PROMO = pd.date_range("2025-05-05", periods=3)  # planned: days 5-7 of the horizon


def _world(n=16, days=140, seed=0):
    """n series, level 4-8 a day with a weekly profile; past promotions on ~12% of days (a known
    x3 lift, discount 20%); the promotion frame lists them and a planned one for every series."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range(end=END, periods=days)
    week = np.array([1.0, 0.9, 0.9, 1.0, 1.2, 1.4, 1.3])[dates.dayofweek]
    hist, promos = [], []
    for i in range(n):
        promo = rng.random(days) < 0.12
        lam = rng.uniform(4, 8) * week * np.where(promo, LIFT, 1.0)
        hist.append(
            pd.DataFrame(
                {
                    "location_id": "S1",
                    "sku_id": f"K{i:02d}",
                    "date": dates,
                    "units_sold": rng.poisson(lam),
                    "is_stockout": False,
                    "on_promo": promo.astype(int),
                }
            )
        )
        pdays = list(dates[promo]) + list(FUTURE_PROMO)
        promos.append(
            pd.DataFrame(
                {
                    "location_id": "S1",
                    "sku_id": f"K{i:02d}",
                    "date": pdays,
                    "discount_pct": 20.0,
                    "display": 1,
                    "promo_id": f"P{i}",
                }
            )
        )
    return pd.concat(hist, ignore_index=True), pd.concat(promos, ignore_index=True)


@pytest.fixture(scope="module")
def world():
    h, p = _world()
    planned = run_forecast(h, END, CFG, promotions=p)
    cancelled = run_forecast(h, END, CFG, promotions=p[~p["date"].isin(FUTURE_PROMO)])
    return h, p, planned, cancelled


def test_promotion_features_lift_the_forecast_on_promoted_days_only(world):
    _, _, planned, cancelled = world
    a = planned.forecast.set_index(["sku_id", "date"])["mean"]
    b = cancelled.forecast.set_index(["sku_id", "date"])["mean"]
    on = a.index.get_level_values("date").isin(FUTURE_PROMO)
    ratio = a[on].groupby(level="sku_id").sum() / b[on].groupby(level="sku_id").sum()
    assert ratio.min() > 1.8 and ratio.median() == pytest.approx(LIFT, rel=0.3)  # the known x3 lift, learnt
    # every other day is untouched: with horizon-safe (direct) lags no forecast feeds another day's features
    np.testing.assert_allclose(a[~on].to_numpy(), b[~on].to_numpy())


def test_a_planned_promotion_is_used_and_a_cancelled_one_is_not(world):
    h, p, planned, cancelled = world
    assert planned.metrics["promotions_future_days"] == 16 * 3 and cancelled.metrics["promotions_future_days"] == 0
    # cancelled (no longer in the plan): the promoted days are forecast at the ordinary weekday level
    fc = cancelled.forecast.assign(dow=lambda d: d["date"].dt.dayofweek)
    promo_days = fc[fc["date"].isin(FUTURE_PROMO)].groupby("dow")["mean"].mean()
    other = fc[~fc["date"].isin(FUTURE_PROMO)].groupby("dow")["mean"].mean()
    assert (promo_days / other.reindex(promo_days.index)).between(0.75, 1.3).all()
    # the global model is fit on demand with the promotion as a feature, not on de-promoted sales
    assert "promo" in F._global_frames(_adj(h)[0], END, CFG, None, p, None).info["features"]


def _adj(h, cfg=CFG):
    adj, _ = F.adjust_history(F.prepare_series(h, END, cfg), cfg)
    classes = F.classify(adj, cfg, col="demand")
    return adj.merge(classes[["unique_id", "demand_class"]], on="unique_id"), classes


def test_the_global_model_never_sees_the_future():
    h, p = _world(n=8, seed=3)
    path = (
        h[["location_id", "sku_id"]]
        .drop_duplicates()
        .merge(pd.DataFrame({"date": pd.date_range("2025-05-01", periods=10)}), how="cross")
        .assign(price=2.5)
    )
    cfg = CFG.model_copy(update=dict(family="combined"))
    base = run_forecast(h, END, cfg, promotions=p, price_path=path)
    assert 0 < base.metrics["price_path_missing_share"] < 1  # 4 of the 14 days fall back to the last price
    # sentinel: sales after the plan date (as a late file would carry them) at a huge number
    future = h[h["date"] > pd.Timestamp(END) - pd.Timedelta(days=14)].copy()
    future["date"] += pd.Timedelta(days=14)
    future["units_sold"] = 10**9
    sent = run_forecast(pd.concat([h, future]), END, cfg, promotions=p, price_path=path)
    pd.testing.assert_frame_equal(base.forecast, sent.forecast)
    # and inside the CV: an origin's forecast does not move when every day after it is a sentinel
    adj, _ = _adj(h)
    gi = F._global_frames(adj, END, CFG, None, p, None)
    ids = adj["unique_id"].unique()
    cv, _ = F._global_cv(gi, ids, CFG)
    first = cv["cutoff"].min()
    gi.train.loc[gi.train["ds"] > first, "y"] = 1e9
    cv2, _ = F._global_cv(gi, ids, CFG)
    a, b = cv[cv["cutoff"] == first], cv2[cv2["cutoff"] == first]
    assert len(a) == len(ids) * CFG.cv_horizon
    np.testing.assert_allclose(a[GLOBAL_MODEL].to_numpy(), b[GLOBAL_MODEL].to_numpy())


class _Fixed:
    """A stand-in for the global model's CV: a given forecast column (`how`: demand -> forecast)."""

    def __init__(self, how):
        self.how, self.seconds = how, 0.0

    def prepare(self, ids):
        pass

    def columns(self, cv, best):
        g = self.how(cv["demand"].to_numpy(float))
        return cv.assign(**{GLOBAL_MODEL: g, F.combo_name(best): 0.5 * (cv[best] + g)}), [
            GLOBAL_MODEL,
            F.combo_name(best),
        ]


def test_the_combination_is_chosen_by_cv_the_better_of_two():
    h, _ = _world(n=8, seed=5)
    cfg = CFG.model_copy(update=dict(family="combined", uplift=False))
    adj, classes = _adj(h, cfg)

    def pick(how):
        chosen, table, *_ = F._select_and_calibrate(adj, classes, cfg, None, None, extra=_Fixed(how))
        return chosen, table

    # a global model that knows the demand beats every local one; a badly biased one loses to them
    good, table = pick(lambda d: d)
    assert set(good.values()) == {GLOBAL_MODEL}
    bad, table = pick(lambda d: 3 * d + 5)
    assert not any(GLOBAL_MODEL in m for m in bad.values())
    # halfway: the local model's errors and the global one's cancel in their mean, which wins
    sf_best = {
        c: table[(table["demand_class"] == c) & ~table["model"].str.contains(GLOBAL_MODEL)]
        .sort_values("wape")["model"]
        .iloc[0]
        for c in bad
    }
    mixed, table = pick(lambda d: np.maximum(2 * d - 1, 0))  # overshoots where the local models lag
    for cls, m in mixed.items():
        t = table[table["demand_class"] == cls].set_index("model")["wape"]
        assert m == t.idxmin() and m in (sf_best[cls], GLOBAL_MODEL, F.combo_name(sf_best[cls]))
    # end to end: the real global model competes and the chosen model has the lowest CV WAPE of its class
    res = run_forecast(h, END, cfg.model_copy(update=dict(uplift=True)))
    for cls, m in res.selection.items():
        t = res.cv[res.cv["demand_class"] == cls]
        assert {
            GLOBAL_MODEL,
            F.combo_name(t[~t["model"].str.contains("\\+|LightGBM")].sort_values("wape")["model"].iloc[0]),
        } <= set(t["model"])
        assert t.loc[t["selected"], "model"].item() == m == t.sort_values("wape")["model"].iloc[0]
    assert {"cv_wape_h1_7", "cv_wape_cat__all"} <= set(res.metrics)


def test_backtest_ets_baseline_is_statsforecast_autoets_ana():
    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS

    from inventory_pipeline.realdata.backtest import BASELINES, baseline_forecasts

    h, _ = _world(n=3, days=120, seed=7)
    got = baseline_forecasts(h, 28)
    assert "ETS" in BASELINES
    df = h.assign(unique_id=h["location_id"] + "|" + h["sku_id"]).rename(columns={"date": "ds", "units_sold": "y"})
    direct = StatsForecast(models=[AutoETS(season_length=7, model="ANA")], freq="D").forecast(
        df=df[["unique_id", "ds", "y"]].astype({"y": float}), h=28
    )
    direct = direct.reset_index() if "unique_id" not in direct.columns else direct
    exp = direct.sort_values(["unique_id", "ds"])["AutoETS"].clip(lower=0).to_numpy()
    got = got.assign(u=got["location_id"] + "|" + got["sku_id"]).sort_values(["u", "date"])["ETS"].to_numpy()
    np.testing.assert_allclose(got, exp, rtol=1e-9)


# ---- the global model by cadence (core.forecast_global_fits) -------------------------------------

KEEP = CFG.model_copy(update={"refit_every_days": 7})  # the policy's default
D0 = "2025-04-29"  # the refit day; END is the day after


def _train_frames(h, plan_date, p):
    adj, _ = F.adjust_history(F.prepare_series(h, plan_date, KEEP), KEEP)
    adj = adj.merge(F.classify(adj, KEEP, col="demand")[["unique_id", "demand_class"]], on="unique_id")
    gi = F._global_frames(adj, plan_date, KEEP, None, p, None)
    return gi, adj


def test_a_kept_global_model_forecasts_the_next_day_as_the_refit_days_model_does_from_its_series():
    """D trains and keeps the model; D+1 predicts with it. K00 is not carried on D+1, so D+1's own
    item codes move down by one: the kept model must read D+1's series by D's codes. The reused
    forecast is what the model mlforecast trained on D predicts from D+1's series (`new_df`)."""
    h, p = _world(days=141)
    h1 = h[~((h["sku_id"] == "K00") & (h["date"] == END))]
    on_d = run_forecast(h[h["date"] <= D0], D0, KEEP, promotions=p)
    assert on_d.fitting == {"global_reused": 0, "global_trained": 1} and len(on_d.global_fits) == 1
    reused = run_forecast(h1, END, KEEP, promotions=p, global_fits=on_d.global_fits, cv_state=on_d.cv_state())
    assert reused.fitting["global_reused"] == 1 and reused.fitting["global_trained"] == 0
    pd.testing.assert_frame_equal(reused.global_fits, on_d.global_fits)  # kept as trained, with its day
    # by hand: D's model, trained by mlforecast itself, over D+1's series coded as D coded them
    gi0, _ = _train_frames(h, D0, p)
    gi1, adj1 = _train_frames(h1, END, p)
    model = F._mlforecast(KEEP).fit(gi0.train, static_features=F.GLOBAL_STATIC_COLUMNS, dropna=gi0.info["dropna"])
    d0_code = {sku: i for i, sku in enumerate(gi0.vocab["item"])}
    new_df = gi1.train.assign(item=[d0_code[s] for s in gi1.vocab["item"][gi1.train["item"]]])
    assert (new_df["item"] != gi1.train["item"]).any()  # the codes did move
    expected = model.predict(h=KEEP.horizon_days, new_df=new_df, X_df=gi1.future)
    sku = expected["unique_id"].map(adj1.groupby("unique_id")["sku_id"].first())
    expected = pd.Series(expected[GLOBAL_MODEL].clip(lower=0).to_numpy(), index=[sku, expected["ds"]])
    got = reused.forecast.set_index(["sku_id", "date"])["mean"]
    assert len(got) == 15 * KEEP.horizon_days
    np.testing.assert_allclose(got.to_numpy(), expected.reindex(got.index).to_numpy(), rtol=1e-12)
    # trained afresh on D+1 it is another model, and another forecast
    fresh = run_forecast(h1, END, KEEP, promotions=p, cv_state=on_d.cv_state())
    assert not np.allclose(fresh.forecast["mean"], reused.forecast["mean"], rtol=1e-6)


def test_a_kept_global_model_serves_inside_the_cadence_only_and_under_its_own_settings():
    h, p = _world(days=148)  # to 2025-05-07
    h, p = h.assign(date=h["date"] + pd.Timedelta(days=7)), p.assign(date=p["date"] + pd.Timedelta(days=7))
    on_d = run_forecast(h[h["date"] <= D0], D0, KEEP, promotions=p)
    d0_cv = on_d.cv_state()

    def day(d, cfg=KEEP, kept=on_d.global_fits, hist=h, state=d0_cv):
        # the CV carried throughout (what is tested is which model predicts; a CV per plan only costs time)
        return run_forecast(hist[hist["date"] <= d], d, cfg, promotions=p, global_fits=kept, cv_state=state)

    assert day("2025-05-05").fitting["global_reused"] == 1  # six days on: reused
    week = day("2025-05-06")  # seven: trained again, and kept from that day
    assert week.fitting["global_trained"] == 1 and (week.global_fits["fitted_on"] == pd.Timestamp("2025-05-06")).all()
    # another configuration, or another feature set, trains its own model
    assert day(END, KEEP.model_copy(update={"cv_windows": 3})).fitting["global_trained"] == 1
    assert day(END, kept=on_d.global_fits.assign(features='["item"]')).fitting["global_trained"] == 1
    # a SKU the model never saw: its category's model is trained afresh
    new = h[h["sku_id"] == "K00"].assign(sku_id="NEW")
    assert day(END, hist=pd.concat([h, new])).fitting["global_trained"] == 1
    # the combined family's global component is carried the same way
    comb = KEEP.model_copy(update={"family": "combined"})
    c0 = run_forecast(h[h["date"] <= D0], D0, comb, promotions=p)
    assert any(GLOBAL_MODEL in m for m in c0.selection.values()) and c0.fitting["global_trained"] == 1
    assert day(END, comb, c0.global_fits, state=c0.cv_state()).fitting["global_reused"] == 1
    # refit every plan: nothing kept, nothing reused
    every = day(D0, KEEP.model_copy(update={"refit_every_days": 1}))
    assert "global_reused" not in every.fitting and every.global_fits.empty


def test_a_stored_global_model_is_written_once_and_found_from_a_later_plan():
    from inventory_pipeline.core.forecast_global_fits import resolve_global_fits, stored_global_fits

    h, p = _world(n=4, days=141)
    on_d = run_forecast(h[h["date"] <= D0], D0, KEEP, promotions=p)
    reused = run_forecast(h, END, KEEP, promotions=p, global_fits=on_d.global_fits, cv_state=on_d.cv_state())
    parts = {D0: stored_global_fits(on_d.global_fits, D0), END: stored_global_fits(reused.global_fits, END)}
    assert parts[D0]["model"].notna().all() and parts[END]["model"].isna().all()  # a pointer to D0
    resolved = resolve_global_fits(parts[END], parts.get)
    pd.testing.assert_frame_equal(resolved, reused.global_fits)
    assert resolve_global_fits(parts[END], lambda d: None)["model"].isna().all()  # D0 gone: trained afresh
