"""The planner console's server side: who may log in and do what, and answers that are checked
before anything is written and merged without losing anyone's."""

from __future__ import annotations

import datetime as dt
import io
import multiprocessing as mp
import stat
import threading

import boto3
import pandas as pd
import pytest
from moto import mock_aws

from inventory_pipeline.console.answers import (
    Answer,
    AnswerRefused,
    LocalPlannerFiles,
    S3PlannerFiles,
    check_answers,
    planner_file,
)
from inventory_pipeline.console.users import (
    Session,
    User,
    UserError,
    authenticate,
    list_users,
    remove_user,
    set_user,
    users_path,
)
from inventory_pipeline.contracts.landing import LANDING_FILES
from inventory_pipeline.core.ingestion import LocalStore, ingest

PLANNER, VIEWER = User("ana", "planner"), User("vic", "viewer")
DECISIONS = pd.DataFrame(
    {
        "decision_id": ["PO-20250430-0000000000a1", "PC-20250430-0000000000b2", "RP-20250430-0000000000c3",
                        "FC-20250430-0000000000d4"],
        "decision_type": ["purchase_order", "price_change", "store_replenishment", "forecast"],
        "state": ["pending_review", "pending_review", "exported", "auto_approved"],
        "revision": ["r1", "r2", "r3", "r4"],
    }
)  # fmt: skip
PO, PC, RP, FC = DECISIONS["decision_id"]


# ---- users -------------------------------------------------------------------------------------


def test_a_user_logs_in_with_the_right_password_only_and_the_file_holds_no_password(tmp_path):
    path = users_path(tmp_path)
    set_user(path, "ana", "correct horse battery", "planner")
    assert authenticate(path, "ana", "correct horse battery") == User("ana", "planner")
    assert authenticate(path, "ana", "wrong password!") is None
    assert authenticate(path, "nobody", "correct horse battery") is None
    text = path.read_text()
    assert "correct horse" not in text and "$argon2id$" in text  # a salted Argon2id hash, not the password
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    set_user(path, "ana", "correct horse battery", "planner")
    assert path.read_text() != text  # a new salt each time
    set_user(path, "root", "a long admin password", "admin")
    assert [u.name for u in list_users(path)] == ["ana", "root"] and remove_user(path, "ana")
    assert authenticate(path, "ana", "correct horse battery") is None


@pytest.mark.parametrize(
    "name, password, role, why",
    [
        ("ana", "short", "planner", "at least"),
        ("ana", "long enough password", "superuser", "role"),
        ("a b", "long enough password", "planner", "user name"),
        ("", "long enough password", "planner", "user name"),
    ],
)
def test_a_bad_user_is_refused_with_a_reason(tmp_path, name, password, role, why):
    with pytest.raises(UserError, match=why):
        set_user(users_path(tmp_path), name, password, role)
    assert not users_path(tmp_path).exists()


def test_roles_and_an_idle_session_expires():
    assert PLANNER.may_answer and User("root", "admin").may_answer and not VIEWER.may_answer
    s = Session.start(PLANNER, idle_minutes=30, now=1000.0)
    assert not s.expired(now=1000.0 + 29 * 60)
    s.touch(now=1000.0 + 29 * 60)
    assert not s.expired(now=1000.0 + 58 * 60) and s.expired(now=1000.0 + 60 * 60)


# ---- answers: checked before anything is written ------------------------------------------------


def test_answers_become_file_rows_with_the_logged_in_planner_and_the_revision_seen():
    rows = check_answers(
        [Answer(PO, "approve", "r1"), Answer(PC, "override", "r2", value="3.49", reason="competitor at 3.49")],
        DECISIONS,
        PLANNER,
    )
    assert pd.isna(rows.iloc[0, 2])  # no value: an empty cell in the file
    assert rows.fillna({"override_units_or_price": -1}).to_dict("records") == [
        {"decision_id": PO, "action": "approve", "override_units_or_price": -1, "reason": "", "planner": "ana",
         "revision": "r1"},
        {"decision_id": PC, "action": "override", "override_units_or_price": 3.49, "reason": "competitor at 3.49",
         "planner": "ana", "revision": "r2"},
    ]  # fmt: skip


@pytest.mark.parametrize(
    "answer, why",
    [
        (Answer(PO, "approve", "r1"), "only a planner or an admin"),  # as a viewer (below)
        (Answer("PO-20250430-0000000000ff", "approve", "r9"), "no such decision"),
        (Answer(RP, "approve", "r3"), "already exported"),
        (Answer(FC, "approve", "r4"), "promotion gate"),
        (Answer(PO, "approve", "r0"), "numbers changed since you looked"),
        (Answer(PO, "override", "r1", value="-5", reason="x"), "non-negative number"),
        (Answer(PO, "override", "r1", value="ten", reason="x"), "non-negative number"),
        (Answer(PO, "override", "r1", value="nan", reason="x"), "non-negative number"),
        (Answer(PC, "override", "r2", value="0", reason="x"), "price must be positive"),
        (Answer(PO, "reject", "r1"), "needs a reason"),
        (Answer(PO, "delete", "r1"), "is not one of"),
    ],
)
def test_a_bad_answer_is_refused_with_a_clear_message(answer, why):
    user = VIEWER if why.startswith("only") else PLANNER
    with pytest.raises(AnswerRefused, match=why):
        check_answers([Answer(PO, "approve", "r1"), answer] if user is PLANNER else [answer], DECISIONS, user)


def test_every_problem_of_a_submission_is_listed():
    with pytest.raises(AnswerRefused) as e:
        check_answers([Answer(RP, "approve", "r3"), Answer(PO, "reject", "r1")], DECISIONS, PLANNER)
    assert len(e.value.problems) == 2


# ---- answers: merged without losing any -----------------------------------------------------------


def _rows(n: int, who: str, first: int = 0) -> list[pd.DataFrame]:
    return [
        pd.DataFrame([{"decision_id": f"PO-20250430-{i:012x}", "action": "approve", "override_units_or_price": None,
                       "reason": "", "planner": who, "revision": "r"}])
        for i in range(first, first + n)
    ]  # fmt: skip


def _write_many(root: str, locks: str, who: str, n: int, first: int) -> None:
    files = LocalPlannerFiles(root, locks)
    for r in _rows(n, who, first):
        files.merge("2025-05-01", r)


def test_two_planners_answering_at_once_lose_no_answer_locally(tmp_path):
    root, locks = tmp_path / "landing", tmp_path / "locks"
    ctx = mp.get_context("spawn")
    procs = [
        ctx.Process(target=_write_many, args=(str(root), str(locks), who, 25, k * 100))
        for k, who in enumerate(("ana", "bo"))
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert all(p.exitcode == 0 for p in procs)
    out = pd.read_csv(root / planner_file("2025-05-01"))
    assert out.groupby("planner").size().to_dict() == {"ana": 25, "bo": 25}
    assert not list((root / "planner" / "2025-05-01").glob(".decisions-*"))  # no temporary file left behind
    # the pipeline reads the merged file like any planner file (contract v1.1, revision kept)
    r = ingest(LocalStore(root), LANDING_FILES["planner_decisions"], ["2025-05-01"], {})
    assert len(r.valid) == 50 and r.quarantine.empty and set(r.valid["revision"]) == {"r"}


def test_a_hand_written_planner_file_keeps_its_rows_and_columns(tmp_path):
    path = tmp_path / planner_file("2025-05-01")
    path.parent.mkdir(parents=True)
    path.write_text("decision_id,action,override_units_or_price,reason,planner,ticket\n"
                    "PO-20250430-0000000000a1,reject,,too much,lee,T-17\n")  # fmt: skip
    LocalPlannerFiles(tmp_path, tmp_path / "locks").merge("2025-05-01", _rows(1, "ana")[0])
    out = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert out["planner"].tolist() == ["lee", "ana"] and out["ticket"].tolist() == ["T-17", ""]


@mock_aws
def test_two_planners_answering_at_once_lose_no_answer_on_s3(monkeypatch):
    from moto.s3.responses import S3Response

    # S3 checks a conditional write's precondition and writes in one atomic step; moto checks, then
    # writes, with no lock between, so two threads can both pass (seen once under load). And a
    # moto PUT closes the replaced object's buffer while a GET may still read it ("I/O operation on
    # closed file", seen once in CI), which S3 never does. Give moto S3's atomicity: what is tested
    # is our read-merge-conditional-write loop, not moto's races
    atomic = threading.Lock()

    def atomically(call):
        def locked(self, *a, **k):
            with atomic:
                return call(self, *a, **k)

        return locked

    monkeypatch.setattr(S3Response, "put_object", atomically(S3Response.put_object))
    monkeypatch.setattr(S3Response, "get_object", atomically(S3Response.get_object))
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="landing-bucket")
    files = S3PlannerFiles(s3, "landing-bucket", "zone")

    def write(who: str, first: int) -> None:
        for r in _rows(15, who, first):
            files.merge("2025-05-01", r)

    threads = [threading.Thread(target=write, args=(who, k * 100)) for k, who in enumerate(("ana", "bo", "cy"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads)
    body = s3.get_object(Bucket="landing-bucket", Key="zone/" + planner_file("2025-05-01"))["Body"].read()
    out = pd.read_csv(io.BytesIO(body))
    assert out.groupby("planner").size().to_dict() == {"ana": 15, "bo": 15, "cy": 15}


def test_a_decision_another_planner_answered_today_is_refused_and_ones_own_answer_is_replaced(tmp_path):
    files = LocalPlannerFiles(tmp_path, tmp_path / "locks")
    files.merge("2025-05-01", _rows(1, "ana")[0])
    with pytest.raises(AnswerRefused, match="already answered today by ana"):
        files.merge("2025-05-01", _rows(1, "bo")[0])
    files.merge("2025-05-01", _rows(1, "ana")[0].assign(action="reject", reason="changed my mind"))
    out = pd.read_csv(tmp_path / planner_file("2025-05-01"))
    assert out[["planner", "action"]].values.tolist() == [["ana", "reject"]]  # one row per decision, as keyed


def test_the_first_admin_is_added_from_the_command_line(tmp_path, monkeypatch, capsys):
    from inventory_pipeline import cli

    monkeypatch.setenv("INVENTORY_PIPELINE_CONSOLE_DIR", str(tmp_path))
    monkeypatch.setattr("sys.stdin", io.StringIO("a long admin password\n"))
    assert cli.main(["console-user", "add", "root", "--role", "admin", "--password-stdin"]) == 0
    assert authenticate(users_path(tmp_path), "root", "a long admin password") == User("root", "admin")
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert cli.main(["console-user", "add", "bo", "--password-stdin"]) == 2
    assert "at least" in capsys.readouterr().err
    assert cli.main(["console-user", "list"]) == 0 and "root\tadmin" in capsys.readouterr().out


# ---- dashboards: hand-checkable numbers over a tiny warehouse -------------------------------------


@pytest.fixture()
def tiny_warehouse(tmp_path):
    """One DC (DC1) and one store (S1) of one SKU (A, unit cost 2): 28 days of sales ending
    2025-03-28 (2 a day, the last day 1 with a stock-out), stock on the last day, two purchase
    orders and a forecast made on 2025-03-26."""
    import duckdb

    from inventory_pipeline.core.warehouse import Warehouse

    wh = Warehouse(tmp_path / "warehouse")
    wh.root.mkdir(parents=True, exist_ok=True)
    days = pd.date_range(end="2025-03-28", periods=28)
    demand = pd.DataFrame({"date": days, "location_id": "S1", "sku_id": "A", "units_sold": 2.0, "is_stockout": False})
    demand.loc[27, ["units_sold", "is_stockout"]] = [1.0, True]
    positions = pd.DataFrame({"date": days[-1], "location_id": ["S1", "DC1"], "sku_id": "A", "on_hand": [28.0, 70.0]})
    products = pd.DataFrame({"sku_id": ["A"], "category": ["c"], "unit_cost": [2.0]})
    locations = pd.DataFrame({"location_id": ["S1", "DC1"], "location_type": ["store", "dc"],
                              "supplying_dc_id": ["DC1", None]})  # fmt: skip
    orders = pd.DataFrame({"snapshot_date": days[0], "order_id": ["PO1", "PO2"], "source_id": "SUP1",
                           "units": [10, 10], "expected_date": days[5]})  # fmt: skip
    receipts = pd.DataFrame({"date": [days[5], days[7]], "order_id": ["PO1", "PO2"], "units_received": [10, 6]})
    with duckdb.connect(str(wh.duckdb_path)) as con:
        con.execute("create schema marts; create schema staging")
        for name, frame in (("marts.fct_daily_demand", demand), ("marts.fct_inventory_positions", positions),
                            ("marts.dim_products", products), ("marts.dim_locations", locations),
                            ("staging.stg_open_orders", orders), ("staging.stg_receipts", receipts)):  # fmt: skip
            con.register("f", frame)
            con.execute(f"create table {name} as select * from f")
            con.unregister("f")
    fc = pd.DataFrame({"location_id": "S1", "sku_id": "A", "date": days[-2:], "horizon": [1, 2], "mean": [2.5, 2.5],
                       "demand_class": "smooth"})  # fmt: skip
    wh.write("demand_forecast", fc, "2025-03-26")
    return wh


def test_dashboards_on_a_tiny_warehouse(tiny_warehouse):
    from inventory_pipeline.console import dashboards
    from inventory_pipeline.core import reporting

    wh = tiny_warehouse
    p = reporting.stock_posture(wh, days=7).set_index("date")
    last = p.loc[pd.Timestamp("2025-03-28")]
    # the stock-out day sold 1 of an estimated 2 (its last 28 clean days' mean)
    assert last["stockout_rate"] == 1.0 and last["fill_rate"] == pytest.approx(0.5)
    assert (p["fill_rate"].iloc[:-1] == 1.0).all() and (p["stockout_rate"].iloc[:-1] == 0.0).all()
    inv = reporting.inventory_by_location(wh).set_index("location_id")
    # 55 units sold in 28 days: 1.96 a day; the store holds 28 (2.0 weeks), the DC 70 (5.1 weeks of its store)
    assert inv.loc["S1", "value"] == 56.0 and inv.loc["S1", "weeks_of_supply"] == pytest.approx(
        28 / (7 * 55 / 28), abs=0.05
    )
    assert inv.loc["DC1", "weeks_of_supply"] == pytest.approx(70 / (7 * 55 / 28), abs=0.05)
    otif = reporting.supplier_otif(wh).iloc[0]
    assert (otif["orders"], otif["on_time"], otif["in_full"], otif["otif"]) == (2, 0.5, 0.5, 0.5)
    acc = reporting.forecast_accuracy(wh).set_index("demand_class")
    # forecasts of 2.5 against sales of 2 and 1: |0.5| + |1.5| over 3 sold, and +2 over 3
    assert acc.loc["smooth", "wape"] == pytest.approx(2 / 3, abs=1e-4) and acc.loc["all", "bias"] == pytest.approx(
        2 / 3, abs=1e-4
    )
    assert dashboards.run_failures(wh).empty


def test_a_summary_as_of_a_day_reads_nothing_after_it(tiny_warehouse):
    """What a backfilled plan date writes: the numbers as they stood that day."""
    from inventory_pipeline.core import reporting

    wh = tiny_warehouse
    p = reporting.stock_posture(wh, days=7, as_of="2025-03-27")
    assert p["date"].max() == pd.Timestamp("2025-03-27") and (p["fill_rate"] == 1.0).all()  # before the stock-out
    acc = reporting.forecast_accuracy(wh, as_of="2025-03-27").set_index("demand_class")
    assert acc.loc["all", "days"] == 1 and acc.loc["all", "wape"] == 0.25  # 2.5 against the 2 sold on 03-27
    assert reporting.forecast_accuracy(wh, as_of="2025-03-25").empty  # no plan by then
    # both orders were promised for 03-06: on 03-05 none is due yet
    assert reporting.supplier_otif(wh, as_of="2025-03-05").empty


def test_the_console_reads_the_summaries_the_newest_plan_wrote(tiny_warehouse):
    from inventory_pipeline.console import dashboards
    from inventory_pipeline.core import reporting

    wh = tiny_warehouse
    live = dashboards.summary(wh, "dashboard_supplier_otif")  # no plan yet: computed from the marts
    pd.testing.assert_frame_equal(live, reporting.supplier_otif(wh))
    wh.write("decision_log", pd.DataFrame({"x": [1]}), "2025-03-28")
    written = live.assign(orders=99)  # told apart from a live computation
    wh.write("dashboard_supplier_otif", written, "2025-03-28")
    assert dashboards.summary(wh, "dashboard_supplier_otif")["orders"].tolist() == [99]
    wh.write("decision_log", pd.DataFrame({"x": [1]}), "2025-03-29")  # a newer plan without summaries
    assert dashboards.summary(wh, "dashboard_supplier_otif")["orders"].tolist() == [2]


def test_an_external_user_has_a_role_and_no_password(tmp_path):
    from inventory_pipeline.console.users import authenticate, lookup

    path = users_path(tmp_path)
    set_user(path, "pat+ops@example.com", None, "planner", external=True)
    assert lookup(path, "pat+ops@example.com") == User("pat+ops@example.com", "planner")
    assert authenticate(path, "pat+ops@example.com", "") is None  # signs in through the identity provider only
    assert authenticate(path, "pat+ops@example.com", "anything at all") is None
    with pytest.raises(UserError, match="password"):
        set_user(path, "sam", None, "planner")  # a local user needs one
    set_user(path, "pat+ops@example.com", None, "viewer", external=True)  # demoted: the next page sees it
    assert lookup(path, "pat+ops@example.com").role == "viewer" and lookup(path, "nobody") is None


def test_answers_are_filed_under_the_newest_daily_partition():
    from inventory_pipeline.console.answers import planner_file_date

    assert planner_file_date(dt.date(2026, 12, 6)) == "2026-12-05"
    assert planner_file_date(dt.date(2026, 12, 6), end_date="2025-06-01") == "2025-05-31"


def test_freshness_says_how_far_each_table_trails_the_landing(tmp_path):
    import os

    from inventory_pipeline.console.dashboards import freshness
    from inventory_pipeline.core.warehouse import Warehouse

    wh = Warehouse(tmp_path)
    one = pd.DataFrame({"x": [1]})
    for day in ("2025-03-01", "2025-03-02"):
        wh.write("raw_pos_sales", one, day)
    wh.write("decision_log", one, "2025-03-01")  # the plan of 03-02 not made yet
    t0 = pd.Timestamp("2025-03-03 06:00", tz="UTC").timestamp()
    os.utime(wh.path("decision_log", "2025-03-01"), (t0, t0))
    f = freshness(wh, now=pd.Timestamp("2025-03-03 09:00", tz="UTC")).set_index("table")
    assert f.loc["raw_pos_sales", "days_behind_landing"] == 0 and f.loc["decision_log", "days_behind_landing"] == 1
    assert f.loc["decision_log", "hours_since_written"] == 3.0 and list(f.index) == ["raw_pos_sales", "decision_log"]
