"""Landing contracts: bad files give a clear error or quarantine rows; good rows are kept."""

import json

import pandas as pd
import pytest

from inventory_pipeline.contracts.landing import LANDING_FILES
from inventory_pipeline.core.ingestion import LandingContractError, LocalStore, ingest

REFS = {
    ("locations", "location_id"): {"S1", "S2", "DC1"},
    ("products", "sku_id"): {"A", "B", "C"},
}
POS_HEADER = "date,location_id,sku_id,units_sold,unit_price,on_promo\n"


def _write(tmp_path, rel, text):
    p = tmp_path / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


def _pos(tmp_path, body, day="2025-01-02"):
    _write(tmp_path, f"daily/{day}/pos_sales.csv", POS_HEADER + body)
    return ingest(LocalStore(tmp_path), LANDING_FILES["pos_sales"], [day], REFS)


def test_good_file_is_kept_whole_with_types(tmp_path):
    r = _pos(tmp_path, "2025-01-02,S1,A,3,1.50,0\n2025-01-02,S2,B,1,2.00,1\n")
    assert len(r.valid) == 2 and r.quarantine.empty
    assert str(r.valid["units_sold"].dtype) == "int64"
    assert str(r.valid["date"].dtype).startswith("datetime64")
    assert r.valid["landing_date"].unique().tolist() == ["2025-01-02"]


def test_negative_units_are_quarantined_with_file_row_reason(tmp_path):
    r = _pos(tmp_path, "2025-01-02,S1,A,3,1.5,0\n2025-01-02,S1,B,-2,1.5,0\n")
    assert r.valid["sku_id"].tolist() == ["A"]
    q = r.quarantine.iloc[0]
    assert q["file"].endswith("daily/2025-01-02/pos_sales.csv")
    assert q["row"] == 2 and q["column"] == "units_sold" and "greater_than_or_equal_to(0)" in q["reason"]
    assert json.loads(q["record"])["units_sold"] == "-2"
    assert q["partition_date"] == "2025-01-02"


def test_wrong_type_is_quarantined(tmp_path):
    r = _pos(
        tmp_path,
        "2025-01-02,S1,A,three,1.5,0\n2025-01-02,S1,B,1,1.5,0\n2025-13-01,S1,C,1,1.5,0\n",
    )
    assert r.valid["sku_id"].tolist() == ["B"]
    assert r.quarantine["row"].tolist() == [1, 3]
    assert r.quarantine["column"].tolist() == ["units_sold", "date"]


def test_unknown_sku_and_location_are_quarantined(tmp_path):
    r = _pos(
        tmp_path,
        "2025-01-02,S1,ZZZ,1,1.5,0\n2025-01-02,S9,A,1,1.5,0\n2025-01-02,S1,A,1,1.5,0\n",
    )
    assert len(r.valid) == 1
    reasons = r.quarantine.set_index("row")["reason"]
    assert "unknown sku_id 'ZZZ'" in reasons[1] and "unknown location_id 'S9'" in reasons[2]


def test_duplicate_key_keeps_first(tmp_path):
    r = _pos(tmp_path, "2025-01-02,S1,A,3,1.5,0\n2025-01-02,S1,A,4,1.5,0\n")
    assert r.valid["units_sold"].tolist() == [3]
    assert r.quarantine["row"].tolist() == [2] and "duplicate key" in r.quarantine["reason"].iloc[0]


def test_row_with_wrong_field_count_is_quarantined(tmp_path):
    r = _pos(
        tmp_path,
        "2025-01-02,S1,A,3,1.5,0\n2025-01-02,S1,B,3\n2025-01-02,S1,C,1,1.5,0\n",
    )
    assert r.valid["sku_id"].tolist() == ["A", "C"]
    assert r.quarantine["row"].tolist() == [2] and "expected 6 fields" in r.quarantine["reason"].iloc[0]


def test_missing_column_is_a_clear_error_naming_file_and_column(tmp_path):
    _write(
        tmp_path,
        "daily/2025-01-02/pos_sales.csv",
        "date,location_id,sku_id,unit_price,on_promo\n2025-01-02,S1,A,1.5,0\n",
    )
    with pytest.raises(
        LandingContractError,
        match=r"pos_sales.csv: missing required column\(s\) \['units_sold'\]",
    ):
        ingest(LocalStore(tmp_path), LANDING_FILES["pos_sales"], ["2025-01-02"], REFS)


def test_missing_required_file_is_a_clear_error(tmp_path):
    (tmp_path / "daily" / "2025-01-02").mkdir(parents=True)
    with pytest.raises(
        LandingContractError,
        match=r"daily/2025-01-02/inventory.csv: required landing file is missing",
    ):
        ingest(LocalStore(tmp_path), LANDING_FILES["inventory"], ["2025-01-02"], REFS)


def test_optional_file_absent_gives_typed_empty_table(tmp_path):
    r = ingest(LocalStore(tmp_path), LANDING_FILES["lanes"], None, REFS)
    assert r.valid.empty and list(r.valid.columns)[:2] == [
        "from_location_id",
        "to_location_id",
    ]
    assert r.files_missing == ["master/lanes.csv"]


def test_open_orders_repeat_across_days_are_not_duplicates(tmp_path):
    hdr = "order_id,order_date,source_id,location_id,sku_id,units,expected_date\n"
    for day in ("2025-01-02", "2025-01-03"):
        _write(
            tmp_path,
            f"daily/{day}/open_orders.csv",
            hdr + "PO1,2025-01-01,SUP1,DC1,A,12,2025-01-05\n",
        )
    r = ingest(
        LocalStore(tmp_path),
        LANDING_FILES["open_orders"],
        ["2025-01-02", "2025-01-03"],
        REFS,
    )
    assert len(r.valid) == 2 and r.quarantine.empty


def test_parquet_landing_file_goes_through_the_same_contract(tmp_path):
    p = tmp_path / "daily/2025-01-02/pos_sales.parquet"
    p.parent.mkdir(parents=True)
    pd.DataFrame(
        {
            "date": ["2025-01-02", "2025-01-02"],
            "location_id": ["S1", "S1"],
            "sku_id": ["A", "B"],
            "units_sold": [2, -1],
            "unit_price": [1.0, 1.0],
            "on_promo": [0, 0],
        }
    ).to_parquet(p)
    r = ingest(LocalStore(tmp_path), LANDING_FILES["pos_sales"], ["2025-01-02"], REFS)
    assert r.valid["sku_id"].tolist() == ["A"] and r.quarantine["row"].tolist() == [2]


def test_store_without_dc_is_quarantined(tmp_path):
    _write(
        tmp_path,
        "master/locations.csv",
        "location_id,location_type,region,supplying_dc_id\nDC1,dc,R1,\nS1,store,R1,DC1\nS2,store,R1,\nX,warehouse,R1,\n",
    )
    r = ingest(LocalStore(tmp_path), LANDING_FILES["locations"])
    assert r.valid["location_id"].tolist() == ["DC1", "S1"]
    assert r.quarantine["row"].tolist() == [3, 4]


def test_planner_answers_with_a_bad_id_action_or_missing_override_value_are_quarantined(
    tmp_path,
):
    ok = "PO-20250101-0123456789ab"
    _write(
        tmp_path,
        "planner/2025-01-02/decisions.csv",
        "decision_id,action,override_units_or_price,reason,planner\n"
        f"{ok},approve,,fine,ana\n"
        "PO-2025-01-01-xyz,approve,,typo,ana\n"
        f"RP-20250101-aaaaaaaaaaaa,cancel,,not an action,ben\n"
        f"TR-20250101-bbbbbbbbbbbb,override,,no value,ben\n"
        f"PC-20250101-cccccccccccc,override,-1,negative,ben\n",
    )
    r = ingest(LocalStore(tmp_path), LANDING_FILES["planner_decisions"], ["2025-01-02"], {})
    assert r.valid["decision_id"].tolist() == [ok]
    q = r.quarantine.sort_values("row")
    assert q["row"].tolist() == [2, 3, 4, 5] and q["file"].str.endswith("planner/2025-01-02/decisions.csv").all()
    assert "override needs override_units_or_price" in " ".join(q["reason"])


# ---- files checked as files, master rows held where they are --------------------------

OO_HEADER = "order_id,order_date,source_id,location_id,sku_id,units,expected_date\n"
PRODUCTS_HEADER = "sku_id,category,supplier_id,unit_cost,base_price,case_pack,min_order_qty\n"


def test_a_row_dated_another_day_than_its_folder_is_quarantined_with_that_reason(
    tmp_path,
):
    r = _pos(
        tmp_path,
        "2025-01-02,S1,A,3,1.5,0\n2025-01-01,S1,B,1,1.5,0\n2025-05-15,S2,A,1,1.5,0\n",
    )
    assert r.valid["sku_id"].tolist() == ["A"]
    q = r.quarantine.set_index("row")
    assert q.loc[2, "column"] == "date" and "date 2025-01-01 is not the folder's date 2025-01-02" in q.loc[2, "reason"]
    assert "date 2025-05-15 is not the folder's date 2025-01-02" in q.loc[3, "reason"]


def test_open_orders_expected_before_ordered_or_beyond_the_horizon_are_quarantined(
    tmp_path,
):
    _write(
        tmp_path,
        "daily/2025-01-02/open_orders.csv",
        OO_HEADER
        + "PO1,2025-01-01,SUP1,DC1,A,12,2025-01-05\n"  # fine
        + "PO2,2025-01-01,SUP1,DC1,B,12,2024-12-30\n"  # expected before ordered
        + "PO3,2025-01-01,SUP1,DC1,C,12,2099-01-01\n"  # beyond the horizon
        + "PO4,2024-12-01,SUP1,DC1,C,12,2024-12-20\n",
    )  # late (expected in the past) is plausible: kept
    r = ingest(
        LocalStore(tmp_path),
        LANDING_FILES["open_orders"],
        ["2025-01-02"],
        REFS,
        max_expected_days=365,
    )
    assert r.valid["order_id"].tolist() == ["PO1", "PO4"]
    q = r.quarantine.set_index("row")["reason"]
    assert "expected_date 2024-12-30 before order_date 2025-01-01" in q[2]
    assert "expected_date 2099-01-01 more than 365 days after the folder's date 2025-01-02" in q[3]


def test_a_file_cut_mid_value_has_its_last_line_quarantined_as_truncated(tmp_path):
    _write(
        tmp_path,
        "daily/2025-01-02/inventory.csv",
        "date,location_id,sku_id,on_hand\n2025-01-02,S1,A,7\n2025-01-02,S1,B,10",
    )  # was ...,100 and a newline
    r = ingest(LocalStore(tmp_path), LANDING_FILES["inventory"], ["2025-01-02"], REFS)
    assert r.valid["sku_id"].tolist() == ["A"]
    q = r.quarantine.iloc[0]
    assert q["row"] == 2 and q["reason"].startswith("truncated last line")
    assert json.loads(q["record"]) == {
        "date": "2025-01-02",
        "location_id": "S1",
        "on_hand": "10",
        "sku_id": "B",
    }
    # cut inside the row: the field-count break is reported as truncation too, with what was there
    _write(
        tmp_path,
        "daily/2025-01-03/inventory.csv",
        "date,location_id,sku_id,on_hand\n2025-01-03,S1,A,7\n2025-01-03,S1",
    )
    r = ingest(LocalStore(tmp_path), LANDING_FILES["inventory"], ["2025-01-03"], REFS)
    q = r.quarantine.iloc[0]
    assert q["row"] == 2 and q["reason"].startswith("truncated last line") and "expected 4 fields" in q["reason"]
    assert json.loads(q["record"])["location_id"] == "S1"
    # a last row missing fields is a cut row even when a newline was added after the cut
    _write(
        tmp_path,
        "daily/2025-01-05/inventory.csv",
        "date,location_id,sku_id,on_hand\n2025-01-05,S1,A,7\n2025-01-05,S1\n",
    )
    q = ingest(LocalStore(tmp_path), LANDING_FILES["inventory"], ["2025-01-05"], REFS).quarantine.iloc[0]
    assert q["row"] == 2 and q["reason"].startswith("truncated last line: fewer fields than the header (expected 4")
    # a terminated file (LF or CRLF) loses nothing
    _write(
        tmp_path,
        "daily/2025-01-04/inventory.csv",
        "date,location_id,sku_id,on_hand\r\n2025-01-04,S1,A,7\r\n",
    )
    assert ingest(LocalStore(tmp_path), LANDING_FILES["inventory"], ["2025-01-04"], REFS).quarantine.empty


def test_master_data_errors_are_held_rows_of_products_kept_for_planning(tmp_path):
    _write(
        tmp_path,
        "master/products.csv",
        PRODUCTS_HEADER
        + "A,food,SUP1,1.00,2.49,6,12\n"  # fine
        + "B,food,SUP1,9.99,2.69,6,12\n"  # cost above price
        + "C,food,SUP1,1.00,2.49,0,0\n"  # case pack 0
        + "D,food,SUP1,1.00,2.49,6,10\n",
    )  # MOQ not a case multiple
    r = ingest(
        LocalStore(tmp_path),
        LANDING_FILES["products"],
        None,
        {("suppliers", "supplier_id"): {"SUP1"}},
    )
    assert r.valid["sku_id"].tolist() == ["A", "B", "C", "D"]  # every SKU stays known
    assert r.valid.set_index("sku_id").loc["C", "case_pack"] == 1  # planned with a case of 1
    q = r.quarantine.set_index("row")
    assert (q["disposition"] == "held").all() and q["file"].str.endswith("master/products.csv").all()
    assert "unit_cost 9.99 above base_price 2.69" in q.loc[2, "reason"]
    assert "case_pack 0 must be at least 1" in q.loc[3, "reason"]
    assert "min_order_qty 10 is not a multiple of case_pack 6" in q.loc[4, "reason"]
    assert r.quarantine_share == 0.0  # held rows are kept: no file is unusable for them


def test_negative_lead_times_are_held_rows_of_suppliers_and_lanes(tmp_path):
    _write(
        tmp_path,
        "master/suppliers.csv",
        "supplier_id,lead_time_days,lead_time_std_days\nSUP1,-3,1\nSUP2,4,1\n",
    )
    r = ingest(LocalStore(tmp_path), LANDING_FILES["suppliers"])
    assert r.valid.set_index("supplier_id")["lead_time_days"].to_dict() == {
        "SUP1": 0.0,
        "SUP2": 4.0,
    }
    assert r.quarantine["reason"].iloc[0] == "negative lead_time_days -3 (planned with 0)"
    _write(
        tmp_path,
        "master/lanes.csv",
        "from_location_id,to_location_id,lead_time_days,cost_per_unit\nDC1,S1,-1,0.1\n",
    )
    r = ingest(LocalStore(tmp_path), LANDING_FILES["lanes"], None, REFS)
    assert len(r.valid) == 1 and r.quarantine["disposition"].tolist() == ["held"]


def test_the_quarantine_share_is_measured_per_file_and_day(tmp_path):
    body = "".join(f"{{d}},S1,{s},1,1.5,0\n" for s in "ABC")
    for i, day in enumerate(f"2025-01-{k:02d}" for k in range(2, 12)):
        rows = body.format(d=day)
        if i == 3:  # one day's file: 2 of 4 rows bad
            rows = rows + f"{day},S2,A,-1,1.5,0\n"
            rows = rows.replace(f"{day},S1,A,1,", f"{day},S1,A,x,")
        _write(tmp_path, f"daily/{day}/pos_sales.csv", POS_HEADER + rows)
    days = [f"2025-01-{k:02d}" for k in range(2, 12)]
    r = ingest(LocalStore(tmp_path), LANDING_FILES["pos_sales"], days, REFS)
    assert r.quarantine_share == pytest.approx(2 / 31)  # over the range: looks harmless
    shares = r.file_shares().set_index("partition_date")
    assert shares.loc["2025-01-05", "share"] == 0.5 and shares.loc["2025-01-05", "rows"] == 4
    assert (shares.drop(index="2025-01-05")["share"] == 0).all()
    over = r.files_over(0.25, min_rows=2)
    assert over["file"].str.endswith("daily/2025-01-05/pos_sales.csv").tolist() == [True]
    assert r.files_over(0.25, min_rows=3).empty  # two rows are too few to call the file unusable


def test_a_row_naming_a_sku_whose_master_row_was_rejected_names_that_row(tmp_path):
    """A product row that cannot be planned (a cost that is not a number) is rejected; the daily
    rows of its SKU say so, pointing at the master row, instead of calling the SKU unknown."""
    from inventory_pipeline.core.warehouse import Warehouse
    from inventory_pipeline.defs.ingestion import known_keys

    _write(
        tmp_path / "lz",
        "master/products.csv",
        PRODUCTS_HEADER + "A,food,SUP1,1.00,2.49,6,12\nB,food,SUP1,abc,2.69,6,12\n",
    )
    p = ingest(LocalStore(tmp_path / "lz"), LANDING_FILES["products"], None, {("suppliers", "supplier_id"): {"SUP1"}})
    wh = Warehouse(tmp_path / "wh")
    wh.write("raw_products", p.valid)
    wh.write("quarantine_products", p.quarantine)
    keys, notes = known_keys(wh, "products", "sku_id")
    assert keys == {"A"} and notes["B"].startswith("master/products.csv, row 2 (coerce_dtype")
    _write(
        tmp_path / "lz",
        "daily/2025-01-02/pos_sales.csv",
        POS_HEADER + "2025-01-02,S1,A,1,1.5,0\n2025-01-02,S1,B,1,1.5,0\n",
    )
    refs = {("locations", "location_id"): {"S1"}, ("products", "sku_id"): keys}
    r = ingest(
        LocalStore(tmp_path / "lz"),
        LANDING_FILES["pos_sales"],
        ["2025-01-02"],
        refs,
        reference_notes={("products", "sku_id"): notes},
    )
    assert (
        r.quarantine["reason"]
        .iloc[0]
        .startswith("sku_id 'B' has no usable row in products: master/products.csv, row 2")
    )


def test_master_signature_follows_the_master_files_and_the_settings_only(tmp_path):
    from inventory_pipeline.contracts.landing import MASTER_FILES
    from inventory_pipeline.core.ingestion import master_signature

    def sig(settings="{}"):
        return master_signature(LocalStore(tmp_path), MASTER_FILES, settings)

    _write(tmp_path, "master/locations.csv", "location_id,location_type,region,supplying_dc_id\nS1,store,R1,\n")
    first = sig()
    assert len(first) == 64 and sig() == first  # the same files: the same signature
    _pos(tmp_path, "2025-01-02,S1,A,3,1.50,0\n")  # a daily file is not master data
    assert sig() == first
    assert sig('{"max_quarantine_share": 0.5}') != first  # other ingestion settings
    _write(tmp_path, "master/products.parquet", "not read: the CSV comes first, and there is none")
    with_parquet = sig()
    assert with_parquet != first  # a master file that was absent now exists
    _write(tmp_path, "master/products.csv", "sku_id\nA\n")
    with_csv = sig()
    _write(tmp_path, "master/products.parquet", "changed, still not read")
    assert sig() == with_csv != with_parquet  # the reader takes the CSV: the Parquet beside it is not read
    _write(tmp_path, "master/locations.csv", "location_id,location_type,region,supplying_dc_id\nS2,store,R1,\n")
    assert sig() != with_csv
