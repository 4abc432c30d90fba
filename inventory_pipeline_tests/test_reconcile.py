"""Reconciliation of what was exported with what happened: unit
cases a reader can check by hand, then one integration run where the ERP never applies a day's
price batch."""

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inventory_pipeline.core.reconcile import (
    observed_regular_prices,
    price_book_with_ids,
    reconcile_orders,
    reconcile_prices,
)


def _observed_by_merges(history: pd.DataFrame, plan_date: str) -> pd.DataFrame:
    """observed_regular_prices spelled out with a sort, groupby and merges (the reference the
    vectorised one must equal)."""
    key = ["location_id", "sku_id"]
    h = history[(history["date"] <= pd.Timestamp(plan_date)) & (history["on_promo"] == 0) & history["price_observed"]]
    h = h[["location_id", "sku_id", "date", "unit_price"]].sort_values([*key, "date"], ignore_index=True)
    last = (
        h.groupby(key, as_index=False).last().rename(columns={"unit_price": "observed_price", "date": "observed_date"})
    )
    m = h.merge(last[[*key, "observed_price"]], on=key)
    other = (m["unit_price"] - m["observed_price"]).abs() > 0.005
    before = m[other].groupby(key)["date"].max().rename("_other")
    m = m.merge(before.reset_index(), on=key, how="left")
    run = m[~other & (m["_other"].isna() | (m["date"] > m["_other"]))]
    since = run.groupby(key)["date"].min().rename("observed_since").reset_index()
    return last.merge(since, on=key, how="left")


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 12),  # day
            st.sampled_from(["S2", "S1", "S10"]),
            st.sampled_from(["B", "A"]),
            st.sampled_from([1.0, 1.004, 1.2, 0.9]),  # 1.004 is 1.0 within the cent tolerance
            st.sampled_from([0, 0, 1]),
            st.booleans(),
        ),
        max_size=50,
        unique_by=lambda r: r[:3],
    )
)
def test_observed_regular_prices_equals_the_merges_it_vectorises(rows):
    sales = _sales([(pd.Timestamp("2025-03-01") + pd.Timedelta(days=d), *rest) for d, *rest in rows])
    got = observed_regular_prices(sales.sample(frac=1, random_state=2), "2025-03-10")  # order must not matter
    want = _observed_by_merges(sales, "2025-03-10")
    if want.empty:
        assert got.empty
        return
    pd.testing.assert_frame_equal(got, want[got.columns], check_dtype=False)


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


# ---- integration: the ERP does not apply a day's price batch ------------------------------------

D1, D2 = "2025-03-20", "2025-03-24"  # the plan whose batch is dropped, the next plan judged


def _run(defs, instance, job, **kw):
    q = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
    r = defs.resolve_job_def(job).execute_in_process(instance=instance, run_config=q, **kw)
    assert r.success, job
    return r


@pytest.fixture(scope="module")
def dropped_batch(tmp_path_factory):
    """A tiny network whose landing zone is the baseline rule's history: the ERP applies none of
    the pipeline's decisions, so plan D1's price batch and orders never happen. One item of the
    batch goes on promotion from D1 + 1 (no regular price seen since). Then plan D2."""
    import dagster as dg
    import yaml

    from inventory_pipeline.config import DEFAULT_POLICY_PATH
    from inventory_pipeline.core.warehouse import Warehouse
    from inventory_pipeline.definitions import build_definitions
    from inventory_pipeline.defs.partitions import PARTITION_RANGE_END_TAG, PARTITION_RANGE_START_TAG
    from inventory_pipeline.defs.resources import LandingZoneResource, OutboxResource, PolicyResource, WarehouseResource
    from inventory_pipeline.simulation import NetworkConfig, generate_landing_zone

    home = tmp_path_factory.mktemp("reconcile")
    landing, warehouse, outbox = home / "landing", home / "warehouse", home / "outbox"
    # a pricing stage that moves more prices than the default (no category cap to speak of, a
    # narrower elasticity interval), so the plan of D1 has a batch of several changes
    pol = yaml.safe_load(DEFAULT_POLICY_PATH.read_text())
    pol["pricing"].update(category_avg_change_cap_pct=10.0, elasticity_interval=0.2, min_gain_pct=0.5)
    (home / "policy.yaml").write_text(yaml.safe_dump(pol))
    generate_landing_zone(
        NetworkConfig(regions=1, dcs=1, stores=3, skus=10, suppliers=2, days=100, seed=11, burn_in_days=28),
        landing,
        write_truth=False,
    )
    defs = build_definitions(
        {
            "landing": LandingZoneResource(uri=str(landing)),
            "warehouse": WarehouseResource(root=str(warehouse)),
            "outbox": OutboxResource(uri=str(outbox)),
            "policy": PolicyResource(path=str(home / "policy.yaml")),
        }
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("INVENTORY_PIPELINE_WAREHOUSE_DIR", str(warehouse))  # dbt's DuckDB file and sources
        instance = dg.DagsterInstance.ephemeral()
        first = sorted(p.name for p in (landing / "daily").iterdir())[0]
        _run(defs, instance, "ingest_master")

        def ingest(a, b):
            _run(
                defs,
                instance,
                "ingest_daily",
                tags={PARTITION_RANGE_START_TAG: a, PARTITION_RANGE_END_TAG: b},
            )

        ingest(first, D1)
        _run(defs, instance, "daily_plan", partition_key=D1)
        batch = pd.read_csv(outbox / D1 / "price_changes.csv", dtype=str)
        promo = batch.iloc[-1]  # this one is on promotion after the change: never seen at a regular price
        for day in pd.date_range(pd.Timestamp(D1) + pd.Timedelta(days=1), D2):
            f = landing / "daily" / day.date().isoformat() / "pos_sales.csv"
            s = pd.read_csv(f, dtype={"location_id": str, "sku_id": str})
            hit = (s["location_id"] == promo["location_id"]) & (s["sku_id"] == promo["sku_id"])
            s.loc[hit, "on_promo"] = 1
            s.to_csv(f, index=False)
        ingest((pd.Timestamp(D1) + pd.Timedelta(days=1)).date().isoformat(), D2)
        run = _run(defs, instance, "daily_plan", partition_key=D2)
    return {
        "wh": Warehouse(warehouse),
        "landing": landing,
        "outbox": outbox,
        "batch": batch,
        "promo": promo,
        "run": run,
    }


@pytest.mark.slow
def test_a_dropped_price_batch_is_reported_and_the_next_plan_prices_from_the_shelf(dropped_batch):
    wh, batch, promo, run = (dropped_batch[k] for k in ("wh", "batch", "promo", "run"))
    assert len(batch) >= 3  # two items seen since, and the one on promotion
    sales = pd.concat(
        [
            pd.read_csv(f / "pos_sales.csv", dtype={"location_id": str, "sku_id": str})
            for f in sorted((dropped_batch["landing"] / "daily").iterdir())
            if f.name <= D2
        ]
    )
    shelf = sales[sales["on_promo"] == 0].sort_values("date").groupby(["location_id", "sku_id"])["unit_price"].last()
    dis = wh.read("price_reconciliation", D2).set_index("decision_id")
    # every change of the batch is reported: by observation, or (the promoted item) as a batch not applied
    assert set(dis.index) == set(batch["decision_id"])
    assert dis.loc[promo["decision_id"], "basis"] == "batch_not_applied"
    for _, c in batch.iterrows():
        row = dis.loc[c["decision_id"]]
        assert row["book_price"] == pytest.approx(float(c["new_price"]))
        assert row["corrected_price"] == pytest.approx(float(c["old_price"]))  # the baseline never changed it
    # the next plan believes the shelf: its current price (a new change's old_price) is the observed one
    # (items the forecast covers: a store x SKU that no longer sells is not priced)
    recs = wh.read("price_recommendations", D2).set_index(["location_id", "sku_id"])["current_price"]
    priced = [c for _, c in batch.iterrows() if (c["location_id"], c["sku_id"]) in recs.index]
    assert promo["decision_id"] in {c["decision_id"] for c in priced}
    for c in priced:
        assert recs.loc[(c["location_id"], c["sku_id"])] == pytest.approx(float(c["old_price"]))
    assert shelf.loc[(promo["location_id"], promo["sku_id"])] == pytest.approx(float(promo["old_price"]))
    changes = pd.read_csv(dropped_batch["outbox"] / D2 / "price_changes.csv", dtype={"location_id": str, "sku_id": str})
    for _, c in changes.iterrows():
        assert c["old_price"] == pytest.approx(shelf.loc[(c["location_id"], c["sku_id"])])
    # the check warns with the lines, the plan goes on; pricing counts what it corrected
    ev = {e.check_name: e for e in run.get_asset_check_evaluations()}
    check = ev["book_matches_shelf"]
    assert not check.passed and check.severity.value == "WARN" and check.metadata["count"].value == len(batch)
    assert promo["decision_id"] in check.metadata["lines"].value
    meta = run.asset_materializations_for_node("price_recommendations")[0].metadata
    assert meta["price_book_disagreements"].value == len(batch)
    assert (dropped_batch["outbox"] / D2 / "manifest.json").exists()
    # the batch's orders never reached the ERP either: reported after the grace period
    missing = wh.read("order_reconciliation", D2)
    exported = pd.concat(
        [pd.read_csv(dropped_batch["outbox"] / D1 / f, dtype=str) for f in ("purchase_orders.csv", "transfers.csv")]
    )
    assert len(missing) and set(missing["decision_id"]) <= set(exported["decision_id"])
    order_check = ev["exported_orders_in_erp"]
    assert not order_check.passed and order_check.metadata["count"].value == len(missing)


def test_the_policy_file_sets_the_reconciliation_rules(tmp_path):
    from inventory_pipeline.config import DEFAULT_POLICY_PATH
    from inventory_pipeline.core.policy import PolicyError, load_policy
    from inventory_pipeline.core.reconcile import ORDER_GRACE_DAYS, ORDER_LOOKBACK_DAYS

    rules = load_policy(DEFAULT_POLICY_PATH).reconciliation
    # the shipped file states the core's defaults, so the asset and a direct call agree
    assert (rules.order_grace_days, rules.order_lookback_days) == (ORDER_GRACE_DAYS, ORDER_LOOKBACK_DAYS)
    p = tmp_path / "p.yaml"
    p.write_text("version: x\nreconciliation:\n  order_grace_days: 5\n  order_lookback_days: 5\n")
    with pytest.raises(PolicyError, match=r"order_lookback_days"):
        load_policy(p)  # a lookback inside the grace period could never judge a line
    p.write_text("version: x\nreconciliation:\n  order_grace_days: 7\n")
    assert load_policy(p).reconciliation.order_grace_days == 7
