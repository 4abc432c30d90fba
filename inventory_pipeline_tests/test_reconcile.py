"""Reconciliation of what was exported with what happened (issue #20, item 5 / probe 8): unit
cases a reader can check by hand, then one integration run where the ERP never applies a day's
price batch."""

import pandas as pd

from inventory_pipeline.core.reconcile import (
    observed_regular_prices,
    price_book_with_ids,
    reconcile_orders,
    reconcile_prices,
)


def _sales(rows):
    """rows: (date, location, sku, unit_price, on_promo[, price_observed])."""
    df = pd.DataFrame(
        [r if len(r) == 6 else (*r, True) for r in rows],
        columns=[
            "date",
            "location_id",
            "sku_id",
            "unit_price",
            "on_promo",
            "price_observed",
        ],
    )
    return df.assign(date=pd.to_datetime(df["date"]))


def _book(rows):
    """rows: (location, sku, price, effective_date, decision_id)."""
    df = pd.DataFrame(
        rows,
        columns=["location_id", "sku_id", "price", "effective_date", "decision_id"],
    )
    return df.assign(effective_date=pd.to_datetime(df["effective_date"]))


# ---- prices ------------------------------------------------------------------------------------


def test_dropped_export_is_reported_and_the_book_follows_the_shelf():
    # plan of 03-01 exported 2.69 -> 2.49 effective 03-02; the ERP dropped it: the shelf still says 2.69
    book = _book([("S1", "A", 2.49, "2025-03-02", "PC-20250301-x")])
    sales = _sales(
        [
            ("2025-02-27", "S1", "A", 2.69, 0),
            ("2025-03-02", "S1", "A", 2.69, 0),
            ("2025-03-04", "S1", "A", 2.69, 0),
        ]
    )
    fixed, dis = reconcile_prices(book, observed_regular_prices(sales, "2025-03-05"))
    assert fixed["price"].tolist() == [2.69] and fixed["price_source"].tolist() == ["observed"]
    assert fixed["effective_date"].tolist() == [pd.Timestamp("2025-03-02")]  # the attempt's day stays
    assert len(dis) == 1
    row = dis.iloc[0]
    assert (
        row["location_id"],
        row["sku_id"],
        row["book_price"],
        row["observed_price"],
    ) == ("S1", "A", 2.49, 2.69)
    assert row["decision_id"] == "PC-20250301-x" and round(row["difference"], 2) == 0.20
    assert row["basis"] == "observed" and row["corrected_price"] == 2.69
    assert row["observed_date"] == pd.Timestamp("2025-03-04") and row["observed_since"] == pd.Timestamp("2025-02-27")


def test_a_promotion_day_is_not_a_disagreement():
    # the change to 2.49 was applied (03-02); on 03-04 a 20% promotion sells at 1.99
    book = _book([("S1", "A", 2.49, "2025-03-02", "PC-1")])
    sales = _sales(
        [
            ("2025-03-01", "S1", "A", 2.69, 0),
            ("2025-03-03", "S1", "A", 2.49, 0),
            ("2025-03-04", "S1", "A", 1.99, 1),
        ]
    )
    fixed, dis = reconcile_prices(book, observed_regular_prices(sales, "2025-03-04"))
    assert dis.empty and fixed["price"].tolist() == [2.49] and fixed["price_source"].tolist() == ["book"]
    # only promotion days since the change: nothing to judge, the book stands
    sales = _sales([("2025-03-01", "S1", "A", 2.69, 0), ("2025-03-03", "S1", "A", 1.99, 1)])
    fixed, dis = reconcile_prices(book, observed_regular_prices(sales, "2025-03-04"))
    assert dis.empty and fixed["price"].tolist() == [2.49]


def _batch(rows, eff="2025-03-02"):
    """rows: (location, sku, old_price, new_price, decision_id), one plan's exported changes."""
    df = pd.DataFrame(rows, columns=["location_id", "sku_id", "old_price", "price", "decision_id"])
    return df.assign(effective_date=pd.Timestamp(eff))


def test_a_batch_the_erp_did_not_apply_corrects_its_unobserved_items_too():
    # one plan's three changes; two items sold since at their old regular price, the third (a slow
    # mover on promotion since) showed no regular price: the whole batch was dropped, so it is back
    # at its old price as well, which the next change must name as old_price
    book = _batch([("S1", "A", 2.69, 2.49, "PC-a"), ("S2", "A", 2.69, 2.49, "PC-b"), ("S1", "B", 5.49, 5.99, "PC-c")])
    sales = _sales(
        [
            ("2025-03-03", "S1", "A", 2.69, 0),
            ("2025-03-04", "S2", "A", 2.69, 0),
            ("2025-02-20", "S1", "B", 5.49, 0),
            ("2025-03-04", "S1", "B", 4.49, 1),
        ]
    )
    fixed, dis = reconcile_prices(book, observed_regular_prices(sales, "2025-03-05"))
    assert fixed["price"].tolist() == [2.69, 2.69, 5.49]
    assert fixed["price_source"].tolist() == ["observed", "observed", "batch_not_applied"]
    assert dis.set_index("decision_id")["basis"].to_dict() == {
        "PC-a": "observed",
        "PC-b": "observed",
        "PC-c": "batch_not_applied",
    }
    c = dis.set_index("decision_id").loc["PC-c"]
    assert c["book_price"] == 5.99 and c["corrected_price"] == 5.49 and pd.isna(c["observed_price"])


def test_a_batch_partly_applied_or_barely_seen_keeps_the_unobserved_book():
    # S2 x A shows the new price: the batch reached the ERP, S1 x A alone was rejected
    book = _batch([("S1", "A", 2.69, 2.49, "PC-a"), ("S2", "A", 2.69, 2.49, "PC-b"), ("S1", "B", 5.49, 5.99, "PC-c")])
    sales = _sales([("2025-03-03", "S1", "A", 2.69, 0), ("2025-03-04", "S2", "A", 2.49, 0)])
    fixed, dis = reconcile_prices(book, observed_regular_prices(sales, "2025-03-05"))
    assert fixed["price"].tolist() == [2.69, 2.49, 5.99] and dis["decision_id"].tolist() == ["PC-a"]
    # one judged entry is not evidence about the batch (min_batch_evidence 2)
    sales = _sales([("2025-03-03", "S1", "A", 2.69, 0)])
    fixed, dis = reconcile_prices(book, observed_regular_prices(sales, "2025-03-05"))
    assert fixed["price"].tolist() == [2.69, 2.49, 5.99] and dis["decision_id"].tolist() == ["PC-a"]


def test_no_observation_since_the_change_keeps_the_book():
    book = _book(
        [
            ("S1", "A", 2.49, "2025-03-02", "PC-1"),
            ("S2", "B", 5.99, "2025-03-02", "PC-2"),
        ]
    )
    # S1 x A last sold before the change (the old price, rightly); S2 x B never sold; a day without
    # a sale carries the base price in fct_daily_demand (price_observed false): not an observation
    sales = _sales([("2025-02-28", "S1", "A", 2.69, 0), ("2025-03-03", "S1", "A", 3.49, 0, False)])
    fixed, dis = reconcile_prices(book, observed_regular_prices(sales, "2025-03-05"))
    assert dis.empty
    assert fixed["price"].tolist() == [2.49, 5.99] and set(fixed["price_source"]) == {"book"}


def test_the_effective_day_itself_is_not_judged():
    # relabelling during the day: the effective day's unit_price may still be the old one
    book = _book([("S1", "A", 2.49, "2025-03-02", "PC-1")])
    fixed, dis = reconcile_prices(
        book,
        observed_regular_prices(_sales([("2025-03-02", "S1", "A", 2.69, 0)]), "2025-03-02"),
    )
    assert dis.empty and fixed["price"].tolist() == [2.49]


def test_observed_since_is_the_start_of_the_latest_run_at_that_price():
    sales = _sales(
        [
            ("2025-03-01", "S1", "A", 2.69, 0),
            ("2025-03-02", "S1", "A", 2.49, 0),
            ("2025-03-03", "S1", "A", 1.99, 1),
            ("2025-03-05", "S1", "A", 2.69, 0),
            ("2025-03-06", "S1", "A", 2.69, 0),
            ("2025-03-07", "S1", "A", 2.59, 0),
        ]
    )
    obs = observed_regular_prices(sales, "2025-03-06")  # the 03-07 row is after the plan date
    assert obs.iloc[0][["observed_price", "observed_date", "observed_since"]].tolist() == [
        2.69,
        pd.Timestamp("2025-03-06"),
        pd.Timestamp("2025-03-05"),
    ]


def test_price_book_ids_come_from_the_exported_change():
    from inventory_pipeline.core.pricing import price_book

    log = pd.DataFrame(
        {
            "decision_id": ["PC-1", "PC-2", "PC-3"],
            "location_id": ["S1", "S1", "S2"],
            "sku_id": "A",
            "plan_date": ["2025-03-01", "2025-03-03", "2025-03-03"],
            "decision_type": "price_change",
            "status": ["auto_approved", "approved", "rejected"],
            "new_price": [2.49, 2.39, 9.99],
        }
    )
    book = price_book_with_ids(log, price_book(log, "2025-03-05"))
    assert book[["location_id", "price", "decision_id"]].values.tolist() == [["S1", 2.39, "PC-2"]]


# ---- orders ------------------------------------------------------------------------------------


def _exported(rows):
    """rows: (decision_id, decision_type, source, location, sku, units, order_date)."""
    df = pd.DataFrame(
        rows,
        columns=[
            "decision_id",
            "decision_type",
            "source_id",
            "location_id",
            "sku_id",
            "units",
            "order_date",
        ],
    )
    return df.assign(plan_date=pd.to_datetime(df["order_date"]) - pd.Timedelta(days=1))


def test_an_order_the_erp_never_shows_is_reported_after_the_grace_period():
    exported = _exported(
        [
            (
                "PO-1",
                "purchase_order",
                "SUP1",
                "DC1",
                "A",
                120,
                "2025-03-02",
            ),  # in the ERP's snapshot
            (
                "PO-2",
                "purchase_order",
                "SUP1",
                "DC1",
                "B",
                60,
                "2025-03-02",
            ),  # dropped by the ERP
            (
                "RP-3",
                "store_replenishment",
                "DC1",
                "S1",
                "A",
                6,
                "2025-03-02",
            ),  # delivered the same day: receipt only
            (
                "TR-4",
                "transfer",
                "S2",
                "S1",
                "B",
                4,
                "2025-03-02",
            ),  # received after a snapshot
            (
                "PO-5",
                "purchase_order",
                "SUP1",
                "DC1",
                "C",
                30,
                "2025-03-04",
            ),  # too recent to judge on 03-05
        ]
    )
    open_orders = pd.DataFrame(
        {
            "order_id": ["E1", "E4"],
            "order_date": ["2025-03-02", "2025-03-02"],
            "source_id": ["SUP1", "S2"],
            "location_id": ["DC1", "S1"],
            "sku_id": ["A", "B"],
            "units": [120, 4],
            "expected_date": ["2025-03-09", "2025-03-03"],
        }
    )
    receipts = pd.DataFrame(
        {
            "date": ["2025-03-02", "2025-03-03"],
            "order_id": ["E3", "E4"],
            "location_id": ["S1", "S1"],
            "sku_id": ["A", "B"],
            "units_received": [6, 4],
        }
    )
    missing = reconcile_orders(exported, open_orders, receipts, "2025-03-05", grace_days=2)
    assert missing["decision_id"].tolist() == ["PO-2"]
    assert missing.iloc[0]["days_since_order"] == 3 and missing.iloc[0]["units"] == 60
    # inside the grace period nothing is judged yet
    assert reconcile_orders(exported, open_orders, receipts, "2025-03-03", grace_days=2).empty
    # no ERP data at all: every judged line is missing
    assert reconcile_orders(exported, None, None, "2025-03-05", grace_days=2)["decision_id"].tolist() == [
        "PO-1",
        "PO-2",
        "RP-3",
        "TR-4",
    ]


def test_a_receipt_long_after_the_order_does_not_excuse_a_missing_line():
    exported = _exported([("RP-1", "store_replenishment", "DC1", "S1", "A", 6, "2025-03-02")])
    late = pd.DataFrame(
        {
            "date": ["2025-03-09"],
            "order_id": ["E9"],
            "location_id": ["S1"],
            "sku_id": ["A"],
            "units_received": [6],
        }
    )  # an order no snapshot showed, a week later: not this one
    assert reconcile_orders(exported, None, late, "2025-03-10", grace_days=2)["decision_id"].tolist() == ["RP-1"]
