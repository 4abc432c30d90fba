"""Integration: the whole asset graph materialised in process on a tiny network."""

import hashlib
import json
import shutil
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from inventory_pipeline.config import settings
from inventory_pipeline.simulation import NetworkConfig, generate_landing_zone


def _bytes(folder: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def pipeline_run():
    # weekly review and a high service level: targets above what the baseline left on hand, so
    # the plan has decisions on every path (the policy file is read from the environment)
    import os

    from inventory_pipeline.config import DEFAULT_POLICY_PATH

    home = Path(os.environ["INVENTORY_PIPELINE_HOME"])
    policy = home / "policy.yaml"
    policy.write_text(
        DEFAULT_POLICY_PATH.read_text()
        .replace("service_level: 0.95", "service_level: 0.99")
        .replace("review_period_days: 1", "review_period_days: 7")
        # AutoETS for the smooth series: its parameters are the ones the next plan runs forward
        .replace("smooth: [SeasonalNaive, SeasonalWindowAverage, SeasonalESOptimized, WindowAverage, AutoETS]",
                 "smooth: [AutoETS]")
    )  # fmt: skip
    os.environ["INVENTORY_PIPELINE_POLICY"] = str(policy)
    s = settings()
    cfg = NetworkConfig(regions=1, dcs=1, stores=3, skus=10, suppliers=2, days=100, seed=11, burn_in_days=28)
    generate_landing_zone(cfg, s.landing_uri)
    # a bad row in one daily file: quarantined, the rest of the day kept
    bad = Path(s.landing_uri) / "daily" / "2025-03-01" / "pos_sales.csv"
    bad.write_text(bad.read_text() + "2025-03-01,S001,NOPE,1,1.0,0\n")
    from inventory_pipeline.runner import run_pipeline

    instance = dg.DagsterInstance.ephemeral()
    # the day before first: its exported price changes are the next plan's price book
    first = run_pipeline(plan_date="2025-04-09", instance=instance, log=lambda m: None)
    assert first["results"]["daily_plan"].success
    out = run_pipeline(instance=instance, log=lambda m: None)
    return s, out, instance


def test_master_files_are_ingested_again_only_when_something_they_depend_on_changed(pipeline_run):
    from inventory_pipeline.core.warehouse import Warehouse
    from inventory_pipeline.definitions import defs
    from inventory_pipeline.runner import MASTER_STATE, master_unchanged

    s, _, instance = pipeline_run
    wh = Warehouse(s.warehouse_dir)
    sig, same = master_unchanged(defs, wh, instance)
    assert same and json.loads((wh.root / MASTER_STATE).read_text()) == {"signature": sig}
    # an instance that has never materialised the master tables ingests them, whatever the files
    assert master_unchanged(defs, wh, dg.DagsterInstance.ephemeral()) == (sig, False)
    products = Path(s.landing_uri) / "master" / "products.csv"
    before = products.read_bytes()
    try:
        products.write_bytes(before.replace(b"\n", b"\r\n", 1))  # one byte more: a changed file
        changed, same = master_unchanged(defs, wh, instance)
        assert changed != sig and not same
    finally:
        products.write_bytes(before)
    assert master_unchanged(defs, wh, instance) == (sig, True)


def test_every_run_succeeds_and_the_outbox_is_complete(pipeline_run):
    s, out, _ = pipeline_run
    # the master files are those the first run ingested: they are not ingested again
    assert {k: r.success for k, r in out["results"].items()} == {"ingest_daily": True, "daily_plan": True}
    assert out["plan_date"] == "2025-04-10"
    folder = Path(s.outbox_uri) / "2025-04-10"
    assert sorted(p.name for p in folder.iterdir()) == [
        "manifest.json",
        "price_changes.csv",
        "purchase_orders.csv",
        "transfers.csv",
    ]
    m = json.loads((folder / "manifest.json").read_text())
    assert m["plan_date"] == "2025-04-10" and m["model_versions"][0].startswith("demand_forecaster/v")
    for name, meta in m["files"].items():
        assert len(pd.read_csv(folder / name)) == meta["rows"]
    assert m["files"]["transfers.csv"]["rows"] + m["files"]["purchase_orders.csv"]["rows"] > 0


def test_every_table_a_stage_writes_is_a_materialised_asset(pipeline_run):
    """Lineage is complete: the side tables of the stages are assets of the graph, materialised by
    the plan's run with their row counts, and their partitions are in the warehouse."""
    s, out, _ = pipeline_run
    d = out["plan_date"]
    side = {
        "forecast_run",
        "replenishment_targets",
        "replenishment_unmet",
        "decision_events",
        "decision_inputs",
        "planner_not_applied",
        "reconciled_price_book",
    }
    mats, by_step = {}, {}
    for e in out["results"]["daily_plan"].get_asset_materialization_events():
        key = e.asset_key.to_user_string()
        mats.setdefault(key, e.step_materialization_data.materialization)  # the writing asset's own event
        by_step.setdefault(key, set()).add(e.step_key)
    assert side <= set(mats)
    # the outbox appends its export events to decision_events and says so on that asset
    assert by_step["decision_events"] == {"decision_log", "erp_outbox"}
    for key in side:
        assert mats[key].partition == d and (s.warehouse_dir / key / d / "data.parquet").is_file(), key
    rows = {k: mats[k].metadata["dagster/row_count"].value for k in side}
    assert rows["forecast_run"] == 1 and rows["replenishment_targets"] > 0 and rows["decision_events"] > 0


def test_pricing_reads_its_price_book_and_passes_the_guardrail_check(pipeline_run):
    _, out, _ = pipeline_run
    run = out["results"]["daily_plan"]
    mats = [m for m in run.asset_materializations_for_node("price_recommendations")]
    meta = mats[0].metadata
    assert meta["price_book_entries"].value > 0 and meta["price_changes"].value >= 0
    assert meta["elasticities_estimated_on"].value == "this plan"  # the policy estimates every plan
    checks = {
        e.check_name: e
        for e in run.get_asset_check_evaluations()
        if e.asset_key.to_user_string() == "price_recommendations"
    }
    assert checks["guardrails"].passed and checks["guardrails"].metadata["violations"].value == 0


def test_checks_ran_and_passed(pipeline_run):
    _, out, _ = pipeline_run
    evals = [e for r in out["results"].values() for e in r.get_asset_check_evaluations()]
    names = {(e.asset_key.to_user_string(), e.check_name) for e in evals}
    assert ("raw_pos_sales", "quarantine_within_threshold") in names
    assert ("demand_forecast", "output_contract") in names and ("erp_outbox", "manifest_matches_files") in names
    assert any(n[1].startswith("unique_") for n in names)  # dbt tests are asset checks
    assert all(e.passed for e in evals)


def test_the_next_plan_reuses_the_model_choice_and_says_so(pipeline_run):
    """Plans 2025-04-09 and 2025-04-10: the first chooses its models (CV over every candidate),
    the second, inside the policy's 7-day cadence, reuses that choice; forecast_run, the MLflow
    run and the asset's metadata record which."""
    import mlflow

    s, out, _ = pipeline_run
    first, second = (pd.read_parquet(s.warehouse_dir / "forecast_run" / d / "data.parquet").iloc[0]
                     for d in ("2025-04-09", "2025-04-10"))  # fmt: skip
    assert first["reselected"] and first["selected_on"] == pd.Timestamp("2025-04-09")
    assert not second["reselected"] and second["selected_on"] == pd.Timestamp("2025-04-09")
    assert second["selection"] == first["selection"] and second["config_fingerprint"] == first["config_fingerprint"]
    params = mlflow.MlflowClient(s.mlflow_tracking_uri).get_run(second["mlflow_run_id"]).data.params
    assert params["reselected"] == "False" and params["selected_on"] == "2025-04-09"
    meta = out["results"]["daily_plan"].asset_materializations_for_node("demand_forecast")[0].metadata
    assert meta["model_choice"].value == "reused from 2025-04-09"
    # the AutoETS parameters estimated on the first plan run forward on the second (refit_every_days);
    # a series that became smooth since is estimated on the second
    on_9, on_10 = (pd.read_parquet(s.warehouse_dir / "forecast_fits" / d / "data.parquet")
                   for d in ("2025-04-09", "2025-04-10"))  # fmt: skip
    assert len(on_9) > 0 and (on_9["fitted_on"] == pd.Timestamp("2025-04-09")).all() and first["series_forwarded"] == 0
    carried = on_10[on_10["fitted_on"] == pd.Timestamp("2025-04-09")].reset_index(drop=True)
    kept = on_9.merge(carried[["location_id", "sku_id"]], on=["location_id", "sku_id"])
    pd.testing.assert_frame_equal(carried, kept)  # carried as estimated, not re-estimated
    assert second["series_forwarded"] == len(carried) > 0
    estimated = on_10.loc[on_10["fitted_on"] != pd.Timestamp("2025-04-09"), "fitted_on"]
    assert (estimated == pd.Timestamp("2025-04-10")).all()
    assert second["parameters_estimated_on"] == pd.Timestamp("2025-04-09")
    assert params["parameters_estimated_on"] == "2025-04-09"
    assert meta["parameters"].value.startswith(f"parameters of {len(carried)} series run forward from 2025-04-09")
    # and its intervals and CV metrics are the first plan's cross-validation, not a second one
    assert first["cv_on"] == second["cv_on"] == pd.Timestamp("2025-04-09")
    assert second["cv_wape"] == first["cv_wape"] and second["cv_metrics"] == first["cv_metrics"]
    assert meta["cross_validation"].value == "intervals and CV metrics of the cross-validation of 2025-04-09"
    assert params["cv_on"] == "2025-04-09"


def test_bad_row_is_quarantined_and_the_rest_kept(pipeline_run):
    s, _, _ = pipeline_run
    q = pd.read_parquet(s.warehouse_dir / "quarantine_pos_sales" / "2025-03-01" / "data.parquet")
    assert len(q) == 1 and "unknown sku_id 'NOPE'" in q["reason"].iloc[0]
    kept = pd.read_parquet(s.warehouse_dir / "raw_pos_sales" / "2025-03-01" / "data.parquet")
    lines = (Path(s.landing_uri) / "daily" / "2025-03-01" / "pos_sales.csv").read_text().strip().splitlines()
    assert len(kept) == len(lines) - 2  # header and the bad row


def test_rerunning_the_partition_is_idempotent(pipeline_run):
    s, out, instance = pipeline_run
    from inventory_pipeline.definitions import defs

    folder = Path(s.outbox_uri) / "2025-04-10"
    before = _bytes(folder)
    log_before = pd.read_parquet(s.warehouse_dir / "decision_log" / "2025-04-10" / "data.parquet")
    events_before = pd.read_parquet(s.warehouse_dir / "decision_events" / "2025-04-10" / "data.parquet")
    again = defs.resolve_job_def("daily_plan").execute_in_process(instance=instance, partition_key="2025-04-10")
    assert again.success
    assert _bytes(folder) == before
    log_after = pd.read_parquet(s.warehouse_dir / "decision_log" / "2025-04-10" / "data.parquet")
    assert log_after["decision_id"].is_unique
    assert log_after["decision_id"].tolist() == log_before["decision_id"].tolist()
    events_after = pd.read_parquet(s.warehouse_dir / "decision_events" / "2025-04-10" / "data.parquet")
    assert events_after["event_id"].tolist() == events_before["event_id"].tolist()  # the re-run added no event
    assert set(events_after["event"]) >= {"proposed", "auto_approved", "exported"}


# ---- the twin's pipeline policy is the asset graph, not a copy of it -------------------------


def _frames_from_warehouse(wh, d, history_days):
    from inventory_pipeline.core.sources import WarehouseSource

    return WarehouseSource(wh).history(d, history_days)


def test_one_code_path_plans_the_assets_outputs(pipeline_run):
    """plan_decisions (what the twin's pipeline policy runs every day) over the warehouse source
    gives exactly what the assets wrote: the assets and the twin run the same stage objects, so a
    stage whose asset and twin diverge fails here; the forecast stage likewise."""
    from inventory_pipeline.core.policy import load_policy
    from inventory_pipeline.core.sources import WarehouseSource
    from inventory_pipeline.core.stages import FORECAST, plan_decisions
    from inventory_pipeline.core.warehouse import Warehouse

    s, out, _ = pipeline_run
    d = out["plan_date"]
    wh = Warehouse(s.warehouse_dir)
    pol = load_policy(s.policy_path)
    source = WarehouseSource(wh, pol.reconciliation)
    cfg = FORECAST.config(pol)
    last = source.last_forecast_run(d)
    reuse, _ = FORECAST.model_choice(last, d, cfg)  # the earlier plan's, as the asset
    fits = FORECAST.carried_fits(last, source.kept_fits(last), cfg)  # and the parameters it kept
    cv = source.cv_state(last) if FORECAST.cv_reuse(last, d, cfg, reuse is not None) else None  # and its CV
    assert reuse is not None and fits is not None and cv is not None
    inputs = FORECAST.read(source, d, cfg)
    fc = FORECAST.run(inputs, d, cfg, selection=reuse, fits=fits, cv_state=cv).forecast
    asset_fc = wh.read("demand_forecast", d)
    pd.testing.assert_frame_equal(fc, asset_fc.drop(columns=["model_version"]), check_dtype=False)
    assert len(source.price_book(d, source.history(d, 182)).book) > 0  # the earlier plan's exported prices
    plan = plan_decisions(source, d, pol)
    for table in (
        "price_recommendations",
        "replenishment_orders",
        "rebalancing_transfers",
        "replenishment_targets",
        "replenishment_unmet",
    ):
        got, want = plan.tables[table], wh.read(table, d)
        assert len(want) == len(got), table
        pd.testing.assert_frame_equal(
            got.reset_index(drop=True), want[got.columns].reset_index(drop=True), check_dtype=False, obj=table
        )
    assert len(plan.tables["replenishment_orders"]) > 0
    assert all(v.empty for v in plan.violations.values())

    class Shuffled(WarehouseSource):  # the warehouse promises no row order, so no stage may use one
        def history(self, *args, **kwargs):
            return super().history(*args, **kwargs).sample(frac=1.0, random_state=3).reset_index(drop=True)

    shuffled = plan_decisions(Shuffled(wh, pol.reconciliation), d, pol)
    for table, got in shuffled.tables.items():
        pd.testing.assert_frame_equal(got, plan.tables[table], obj=table)


def test_twin_source_equals_the_warehouse_source(pipeline_run):
    """The stages read the same frames through both sources: what the twin observed by the plan
    date (TwinSource) equals what dbt built from the landing zone the same simulation wrote
    (WarehouseSource): history, products and locations. (Positions are not compared here: the twin
    decides after the day's sales and before the shipments its own orders cause, while this landing
    zone's end-of-day snapshot holds the baseline rule's shipments; the closed loop in `make bench`
    compares whole runs driven through the files.)"""
    from inventory_pipeline.core.policy import load_policy
    from inventory_pipeline.core.sources import WarehouseSource
    from inventory_pipeline.core.warehouse import Warehouse
    from inventory_pipeline.networks import load_network
    from inventory_pipeline.simulation.engine import simulate
    from inventory_pipeline.simulation.pipeline_policy import PipelinePolicy, TwinSource
    from inventory_pipeline.simulation.policies import BaselinePolicy

    s, out, _ = pipeline_run
    d = out["plan_date"]
    net = load_network(s.landing_uri)  # rebuilt from _simulation/network.json
    pol = load_policy(s.policy_path)
    twin_policy = PipelinePolicy(net, pol)
    seen = {}

    class Spy(BaselinePolicy):
        def decide(self, obs):
            if obs.date == pd.Timestamp(d):
                src = TwinSource(twin_policy, obs)
                seen.update(h=src.history(d, 60), prod=src.products(), loc=src.locations())
                seen["h_categorical"] = src.history(d, 60, keys_as_categories=True)
            return super().decide(obs)

    simulate(net, Spy())
    wh_source = WarehouseSource(Warehouse(s.warehouse_dir), pol.reconciliation)

    def same(twin, mart, key):
        mart = mart.sort_values(key, ignore_index=True)
        pd.testing.assert_frame_equal(twin[mart.columns].sort_values(key, ignore_index=True), mart, check_dtype=False)

    mart = wh_source.history(d, 60)
    mart["date"] = pd.to_datetime(mart["date"])
    # the one bad row the fixture injected was quarantined, so the history is otherwise identical
    same(seen["h"], mart, ["location_id", "sku_id", "date"])
    # the stages' read (keys as categoricals): the same rows, keys coded over the twin's stores and SKUs
    h_cat = seen["h_categorical"]
    assert isinstance(h_cat["location_id"].dtype, pd.CategoricalDtype) and isinstance(
        h_cat["sku_id"].dtype, pd.CategoricalDtype
    )
    same(h_cat.astype({"location_id": str, "sku_id": str}), mart, ["location_id", "sku_id", "date"])
    same(seen["prod"], wh_source.products(), ["sku_id"])
    loc = seen["loc"].assign(supplying_dc_id=seen["loc"]["supplying_dc_id"].replace("", None))
    same(loc, wh_source.locations(), ["location_id"])


def test_twin_lead_times_equal_the_dbt_mart(pipeline_run):
    """lead_time_frame (the twin's receipt log as the warehouse has it) equals
    marts.fct_order_lead_times built by dbt from the landing zone the same simulation wrote: every
    row, every column, for the orders the ERP snapshots show (received after the first landing day)."""
    from inventory_pipeline.core.sources import WarehouseSource
    from inventory_pipeline.core.warehouse import Warehouse
    from inventory_pipeline.networks import load_network
    from inventory_pipeline.simulation.engine import simulate
    from inventory_pipeline.simulation.pipeline_policy import LEAD_TIME_COLUMNS, lead_time_frame

    WINDOW = 10  # days
    from inventory_pipeline.simulation.policies import BaselinePolicy

    s, out, _ = pipeline_run
    d = out["plan_date"]
    net = load_network(s.landing_uri)
    seen = {}

    class Spy(BaselinePolicy):
        def decide(self, obs):
            if obs.date == pd.Timestamp(d):
                ids = (net.store_ids, net.dc_ids, net.sku_ids, net.suppliers["supplier_id"].to_numpy())
                seen["lt"] = lead_time_frame(obs.history, obs.t, *ids)
                seen["lt_window"] = lead_time_frame(obs.history, obs.t, *ids, days=WINDOW)
            return super().decide(obs)

    simulate(net, Spy())
    mart = Warehouse(s.warehouse_dir).read_model(
        "select * from marts.fct_order_lead_times where received_date <= cast(? as date)", [d]
    )
    # the mart's last column is its incremental build's bookkeeping (the order's latest snapshot or
    # receipt day), which no stage reads
    assert tuple(mart.columns) == (*LEAD_TIME_COLUMNS, "last_seen_date")
    mart = mart.drop(columns="last_seen_date")
    twin = seen["lt"]
    twin = twin[twin["received_date"] > pd.Timestamp(out["first_date"])]
    key = ["received_date", "order_id"]
    for c in ("order_date", "expected_date", "received_date"):
        mart[c] = pd.to_datetime(mart[c])
    mart = mart.sort_values(key, ignore_index=True)
    pd.testing.assert_frame_equal(twin.sort_values(key, ignore_index=True), mart, check_dtype=False)
    assert set(mart["order_type"]) == {"supplier", "store_replenishment"}  # the baseline makes no transfers
    sup = mart[mart["order_type"] == "supplier"]
    assert (sup["units_received"] < sup["units_ordered"]).any()  # short shipments are there
    assert (sup["lead_time_delay_days"] != 0).any() and (sup["lead_time_days"] >= 1).all()
    # the replenishment stage reads only the lead-time window (`Source.lead_times(d, days)`): on
    # both sides the rows received in the WINDOW days up to the plan date, and nothing else
    first = pd.Timestamp(d) - pd.Timedelta(days=WINDOW)
    read = WarehouseSource(Warehouse(s.warehouse_dir)).lead_times(d, WINDOW)
    assert len(read) and pd.to_datetime(read["received_date"]).gt(first).all()
    in_window = mart[mart["received_date"] > first]
    assert len(read) == len(in_window) < len(mart)
    twin_window = seen["lt_window"][seen["lt_window"]["received_date"] > pd.Timestamp(out["first_date"])]
    pd.testing.assert_frame_equal(
        twin_window.sort_values(key, ignore_index=True), in_window.reset_index(drop=True), check_dtype=False
    )


def test_policy_evaluation_asset_materialises(pipeline_run):
    import json

    from inventory_pipeline.definitions import defs

    s, _, instance = pipeline_run
    cfg = {"days": 20, "cadence_days": 7, "frontier": False, "scenarios": False, "jobs": 1}
    r = defs.resolve_job_def("evaluate_policy").execute_in_process(
        instance=instance, run_config={"ops": {"policy_evaluation": {"config": cfg}}}
    )
    assert r.success
    mat = r.asset_materializations_for_node("policy_evaluation")[0]
    assert {
        "kpi_table",
        "kpis_json",
        "report_html",
        "inventory_plot",
        "forecast_plot",
        "baseline_stockout_rate",
    } <= set(mat.metadata)
    assert "stockout_rate" in mat.metadata["kpi_table"].value  # the KPI table, as Markdown
    report = json.loads(Path(mat.metadata["kpis_json"].value).read_text())
    assert set(report) >= {"baseline", "pipeline", "change", "by_abc", "by_store", "meta"}
    assert report["meta"]["evaluation"]["days"] == 20
    # pricing is on in the policy: the static-price run and its table are there, with no violation
    assert "static" in report["pricing"] and "gross_margin" in mat.metadata["pricing_vs_static_prices"].value
    assert mat.metadata["guardrail_violations_total"].value == 0
    assert (
        report["baseline"]["stockout_rate"] == mat.metadata["baseline_stockout_rate"].value
        or abs(report["baseline"]["stockout_rate"] - mat.metadata["baseline_stockout_rate"].value) < 1e-5
    )


def test_twin_kpis_agree_with_the_kpis_of_the_written_history(pipeline_run):
    """Two independent paths to the same numbers: the twin's accumulators for the baseline run, and
    history_kpis over the dbt marts built from the landing zone that same run wrote."""
    from inventory_pipeline.core.kpis import history_kpis, twin_kpis
    from inventory_pipeline.core.warehouse import Warehouse
    from inventory_pipeline.networks import load_network
    from inventory_pipeline.simulation.engine import simulate
    from inventory_pipeline.simulation.policies import BaselinePolicy

    s, out, _ = pipeline_run
    net = load_network(s.landing_uri)
    res = simulate(net, BaselinePolicy())
    twin = twin_kpis(res.store, None, res.measured_days, 0.25)
    daily = Warehouse(s.warehouse_dir).read_model(
        "select f.date, f.units_sold, f.unit_price, f.on_hand, p.unit_cost from marts.fct_daily_demand f "
        "join marts.dim_products p using (sku_id)"
    )
    hist = history_kpis(daily, 0.25)
    assert hist["days"] == res.measured_days
    assert twin["stockout_rate"] == pytest.approx(hist["stockout_rate"], rel=1e-9)
    assert twin["avg_store_inventory_value"] == pytest.approx(hist["avg_inventory_value"], rel=1e-6)
    assert twin["sales_units"] == hist["units_sold"]
    assert twin["revenue"] == pytest.approx(hist["revenue"], rel=1e-6)
    assert twin["gross_margin"] == pytest.approx(hist["gross_margin"], rel=1e-6)


# ---- MLflow registry: promotion gate, pyfunc, drift ------------------------------------------


@pytest.fixture(scope="module")
def forecast_sandbox(pipeline_run, tmp_path_factory):
    """A copy of the built warehouse and an empty MLflow store, to run demand_forecast alone."""
    import shutil

    s, out, instance = pipeline_run
    root = tmp_path_factory.mktemp("forecast_sandbox")
    shutil.copytree(s.warehouse_dir, root / "warehouse")
    return {
        "root": root,
        "date": out["plan_date"],
        "instance": instance,
        "uri": f"sqlite:///{root / 'mlflow.db'}",
        "artifacts": str(root / "artifacts"),
    }


def _policy(root, name, candidates=None, family=None):
    import yaml

    from inventory_pipeline.config import DEFAULT_POLICY_PATH

    data = yaml.safe_load(DEFAULT_POLICY_PATH.read_text())
    if candidates:
        data["forecast"]["candidates"] = candidates
    if family:
        data["forecast"]["family"] = family
    data["version"] = name
    p = root / f"{name}.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def _materialise_forecast(sb, policy_path, date=None):
    from inventory_pipeline.defs.forecasting import demand_forecast
    from inventory_pipeline.defs.resources import (
        ForecastEngineResource,
        MlflowResource,
        PolicyResource,
        WarehouseResource,
    )

    r = dg.materialize(
        [demand_forecast],
        partition_key=date or sb["date"],
        instance=sb["instance"],
        resources={
            "warehouse": WarehouseResource(root=str(sb["root"] / "warehouse")),
            "policy": PolicyResource(path=str(policy_path)),
            "mlflow": MlflowResource(tracking_uri=sb["uri"], artifact_root=sb["artifacts"]),
            "forecast_engine": ForecastEngineResource(),
        },
    )
    assert r.success
    checks = {e.check_name: e for e in r.get_asset_check_evaluations()}
    return r.asset_materializations_for_node("demand_forecast")[0].metadata, checks


WEAK = {
    "smooth": ["SeasonalNaive"],
    "erratic": ["SeasonalNaive"],
    "intermittent": ["SeasonalNaive"],
    "lumpy": ["SeasonalNaive"],
}


def test_promotion_gate_promotes_better_and_rejects_worse(forecast_sandbox):
    from inventory_pipeline.core.tracking import registry_version

    sb = forecast_sandbox
    weak, default = _policy(sb["root"], "weak", WEAK), _policy(sb["root"], "default")
    md, checks = _materialise_forecast(sb, weak)  # empty registry: the first configuration becomes champion
    assert checks["promotion_gate"].passed and md["model_version"].value == "demand_forecaster/v1"
    md, checks = _materialise_forecast(sb, default)  # better CV WAPE on the same window: promoted
    gate = checks["promotion_gate"]
    assert gate.passed, gate.description
    assert gate.metadata["candidate_cv_wape"].value <= gate.metadata["champion_cv_wape"].value
    assert (
        registry_version(sb["uri"], "champion")["version"] == "2"
        and md["model_version"].value == "demand_forecaster/v2"
    )
    md, checks = _materialise_forecast(sb, weak)  # worse again: rejected, the champion serves and the check says why
    gate = checks["promotion_gate"]
    assert not gate.passed and "champion kept" in gate.description
    assert registry_version(sb["uri"], "champion")["version"] == "2"
    assert registry_version(sb["uri"], "challenger")["version"] == "1"
    assert md["model_version"].value == "demand_forecaster/v2"
    fc = pd.read_parquet(sb["root"] / "warehouse" / "demand_forecast" / sb["date"] / "data.parquet")
    assert (fc["model_version"] == "demand_forecaster/v2").all()
    assert md["selection"].value != {k: v[0] for k, v in WEAK.items()}  # the champion's models, not the weak ones
    # another model family as challenger: the same gate, whichever way it goes
    md, checks = _materialise_forecast(sb, _policy(sb["root"], "lightgbm", family="mlforecast"))
    gate = checks["promotion_gate"]
    won = gate.metadata["candidate_cv_wape"].value <= gate.metadata["champion_cv_wape"].value
    assert gate.passed == won
    assert registry_version(sb["uri"], "champion")["version"] == ("3" if won else "2")
    assert md["model_version"].value == f"demand_forecaster/v{'3' if won else '2'}"


def test_the_global_models_trained_on_one_plan_serve_the_next_and_the_records_say_so(pipeline_run, tmp_path):
    """The mlforecast family over two plans in an MLflow store of its own: 2025-04-09 trains a
    model per category and stores it; 2025-04-10, inside refit_every_days, predicts with those
    models (its partition points at the day they were trained) and reuses that plan's CV; the
    MLflow run and the asset's metadata say which."""
    import mlflow

    s, _, instance = pipeline_run
    shutil.copytree(s.warehouse_dir, tmp_path / "warehouse")
    sb = {"root": tmp_path, "instance": instance, "uri": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    sb["artifacts"] = str(tmp_path / "artifacts")
    policy = _policy(tmp_path, "lightgbm", family="mlforecast")
    _materialise_forecast(sb, policy, "2025-04-09")
    meta, _ = _materialise_forecast(sb, policy, "2025-04-10")
    kept = {d: pd.read_parquet(tmp_path / "warehouse" / "forecast_global_fits" / d / "data.parquet")
            for d in ("2025-04-09", "2025-04-10")}  # fmt: skip
    n = len(kept["2025-04-09"])
    assert n > 0 and kept["2025-04-09"]["model"].str.startswith("tree").all()
    carried = kept["2025-04-10"][kept["2025-04-10"]["fitted_on"] == pd.Timestamp("2025-04-09")]
    assert sorted(carried["category"]) == sorted(kept["2025-04-09"]["category"])
    assert carried["model"].isna().all()  # pointers to the day they were trained, not copies
    # a category with no series past 'new' on 2025-04-09 has its model trained on 2025-04-10
    trained = kept["2025-04-10"].drop(carried.index)
    assert (trained["fitted_on"] == pd.Timestamp("2025-04-10")).all() and trained["model"].notna().all()
    run = pd.read_parquet(tmp_path / "warehouse" / "forecast_run" / "2025-04-10" / "data.parquet").iloc[0]
    assert run["cv_on"] == pd.Timestamp("2025-04-09")
    r = mlflow.MlflowClient(sb["uri"]).get_run(run["mlflow_run_id"]).data
    assert r.params["global_models_trained_on"] == "2025-04-09"
    assert r.metrics["global_models_reused"] == n and r.metrics["global_models_trained"] == len(trained)
    expected = f"global model of {n} categories kept from 2025-04-09, {len(trained)} trained"
    assert meta["parameters"].value.endswith(expected)


def test_registered_pyfunc_reproduces_the_forecast(forecast_sandbox):
    import json

    import mlflow
    from inventory_pipeline.core.policy import load_policy
    from inventory_pipeline.core.sources import WarehouseSource
    from inventory_pipeline.core.stages import FORECAST
    from inventory_pipeline.core.warehouse import Warehouse

    sb = forecast_sandbox
    _materialise_forecast(sb, _policy(sb["root"], "default"))
    wh = Warehouse(sb["root"] / "warehouse")
    pol = load_policy(_policy(sb["root"], "default"))
    inputs = FORECAST.read(WarehouseSource(wh), sb["date"], FORECAST.config(pol))
    # the model's input schema has string keys (the landing contract's), not the read's categoricals
    hist = inputs.history.astype({"location_id": object, "sku_id": object})
    hist = hist.assign(category=lambda h: h["sku_id"].map(inputs.categories))
    cal = inputs.calendar.assign(date=lambda c: pd.to_datetime(c["date"]).dt.strftime("%Y-%m-%d"))
    mlflow.set_tracking_uri(sb["uri"])
    model = mlflow.pyfunc.load_model("models:/demand_forecaster@champion")
    run = pd.read_parquet(sb["root"] / "warehouse" / "forecast_run" / sb["date"] / "data.parquet").iloc[0]
    params = {"plan_date": sb["date"], "calendar": json.dumps(cal.to_dict("records")), "selection": run["selection"]}
    got = model.predict(hist, params=params)  # the version, given the plan's model choice (reused or its own)
    want = pd.read_parquet(sb["root"] / "warehouse" / "demand_forecast" / sb["date"] / "data.parquet")
    pd.testing.assert_frame_equal(got.reset_index(drop=True), want.drop(columns=["model_version"]), check_dtype=False)
    # its environment: the requirements MLflow would infer, named instead of inferred (no subprocess)
    from inventory_pipeline.core.tracking import pip_requirements

    reqs = mlflow.pyfunc.get_model_dependencies("models:/demand_forecaster@champion")
    assert Path(reqs).read_text().split() == pip_requirements()


def test_drift_check_compares_an_earlier_forecast_with_what_sold(forecast_sandbox):
    sb = forecast_sandbox
    default = _policy(sb["root"], "default")
    earlier = (pd.Timestamp(sb["date"]) - pd.Timedelta(days=14)).date().isoformat()
    _, checks = _materialise_forecast(sb, default, earlier)
    assert checks["forecast_drift"].passed and checks["forecast_drift"].metadata["compared_with"].value == "nothing yet"
    _, checks = _materialise_forecast(sb, default)
    drift = checks["forecast_drift"]
    assert drift.metadata["compared_with"].value == earlier
    assert "all" in drift.metadata["by_class"].value and "bias" in drift.description


# ---- governance: the planner loop through the sensors -----------------------------------------


def test_planner_loop_from_file_to_outbox(pipeline_run):
    """A plan whose orders all wait for review; a planner file in the landing zone; the sensor
    launches its ingestion; the asset sensor republishes the plan; the outbox and the decision
    history show the answers."""
    import os

    from inventory_pipeline.definitions import defs
    from inventory_pipeline.defs.resources import LandingZoneResource, WarehouseResource
    from inventory_pipeline.defs.sensors import planner_answers_applied, planner_files

    s, _, instance = pipeline_run
    policy = Path(os.environ["INVENTORY_PIPELINE_POLICY"])
    original = policy.read_text()
    d = "2025-04-08"
    try:
        policy.write_text(original.replace("max_order_value: 5000.0", "max_order_value: 0.0"))
        assert defs.resolve_job_def("daily_plan").execute_in_process(instance=instance, partition_key=d).success
        wh_root = s.warehouse_dir
        log = pd.read_parquet(wh_root / "decision_log" / d / "data.parquet")
        orders = log[log["decision_type"].isin(["purchase_order", "store_replenishment"])]
        assert len(orders) >= 2 and (orders["status"] == "pending_review").all()
        out = Path(s.outbox_uri) / d
        sent_ids = set(pd.read_csv(out / "purchase_orders.csv")["decision_id"]) | set(
            pd.read_csv(out / "transfers.csv")["decision_id"]
        )
        assert not sent_ids & set(orders["decision_id"])  # nothing pending was exported
        a, b = orders.iloc[0], orders.iloc[1]
        folder = Path(s.landing_uri) / "planner" / "2025-04-09"
        folder.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(
            {
                "decision_id": [a["decision_id"], b["decision_id"], "PO-20250408-000000000000"],
                "action": ["override", "reject", "approve"],
                "override_units_or_price": [float(a["units"]) + 6, None, None],
                "reason": ["promo", "shelf full", ""],
                "planner": ["ana", "ben", "ana"],
            }
        ).to_csv(folder / "decisions.csv", index=False)
        landing = LandingZoneResource(uri=s.landing_uri)
        with dg.build_sensor_context(instance=instance, resources={"landing": landing}) as ctx:
            reqs = list(planner_files(ctx))
            cursor = ctx.cursor
        assert [r.partition_key for r in reqs] == ["2025-04-09"]
        with dg.build_sensor_context(instance=instance, cursor=cursor, resources={"landing": landing}) as ctx2:
            assert isinstance(planner_files(ctx2), dg.SkipReason)  # the same file is not processed twice
        assert (
            defs.resolve_job_def("review_planner")
            .execute_in_process(instance=instance, partition_key="2025-04-09")
            .success
        )
        with dg.build_sensor_context(
            instance=instance, resources={"warehouse": WarehouseResource(root=str(wh_root))}
        ) as actx:
            pub = list(planner_answers_applied(actx))
        assert [r.partition_key for r in pub] == [d]
        assert defs.resolve_job_def("publish_decisions").execute_in_process(instance=instance, partition_key=d).success
        after = pd.read_parquet(wh_root / "decision_log" / d / "data.parquet").set_index("decision_id")
        assert after.loc[a["decision_id"], "status"] == "overridden"
        assert after.loc[a["decision_id"], "units"] == a["units"] + 6
        assert after.loc[b["decision_id"], "status"] == "rejected"
        kind = "purchase_orders.csv" if a["decision_type"] == "purchase_order" else "transfers.csv"
        sent = pd.read_csv(out / kind).set_index("decision_id")
        assert sent.loc[a["decision_id"], "units"] == a["units"] + 6 and b["decision_id"] not in sent.index
        na = pd.read_parquet(wh_root / "planner_not_applied" / d / "data.parquet")
        assert na["reason"].tolist() == ["unknown decision id"]
        events = pd.read_parquet(wh_root / "decision_events" / d / "data.parquet")
        hist = events[events["decision_id"] == a["decision_id"]]["event"].tolist()
        assert hist == ["proposed", "pending_review", "overridden", "exported"]
        n = len(events)
        # republishing again adds nothing
        assert defs.resolve_job_def("publish_decisions").execute_in_process(instance=instance, partition_key=d).success
        assert len(pd.read_parquet(wh_root / "decision_events" / d / "data.parquet")) == n
        q = pd.read_parquet(wh_root / "review_queue" / d / "data.parquet")
        assert a["decision_id"] not in set(q["decision_id"]) and (q["decision_id"].str[3:11] <= "20250408").all()
    finally:
        policy.write_text(original)


def _killed_publish(d: str, kill_at: str) -> int:
    """Run publish_decisions for `d` in a forked child that SIGKILLs itself at `kill_at`
    ("outbox-mid-write": after the first outbox file of the temporary folder; "before-events":
    after the outbox folder is in place, before its export events are recorded). Returns the
    child's wait status."""
    import os
    import signal

    pid = os.fork()
    if pid == 0:  # the child: a run that dies the way a lost node or an OOM kill ends it
        try:
            import inventory_pipeline.core.outbox as outbox_core
            from inventory_pipeline.core.warehouse import Warehouse
            from inventory_pipeline.definitions import build_definitions

            if kill_at == "outbox-mid-write":
                real_open = open

                def dying_open(path, mode="r", *a, **k):
                    if "w" in mode and ".tmp-" in str(path) and str(path).endswith(".csv"):
                        fh = real_open(path, mode, *a, **k)
                        fh.write(b"decision_id,qu")  # half a header, then the process is gone
                        fh.flush()
                        os.kill(os.getpid(), signal.SIGKILL)
                    return real_open(path, mode, *a, **k)

                outbox_core.open = dying_open
            else:
                real_append = Warehouse.append

                def dying_append(self, table, *a, **k):
                    if table == "decision_events":
                        import traceback

                        if any("erp_outbox" in f.name for f in traceback.extract_stack()):
                            os.kill(os.getpid(), signal.SIGKILL)
                    return real_append(self, table, *a, **k)

                Warehouse.append = dying_append
            build_definitions().resolve_job_def("publish_decisions").execute_in_process(
                instance=dg.DagsterInstance.ephemeral(), partition_key=d, raise_on_error=False
            )
        finally:
            os._exit(3)  # not killed: the patch never fired
    return os.waitpid(pid, 0)[1]


def test_a_killed_run_rerun_leaves_no_duplicate_decisions_in_the_outbox(pipeline_run):
    """publish_decisions killed with SIGKILL half-way through writing the outbox, and again after
    the outbox is written but before its export is recorded: the ERP never sees a partial folder,
    and the re-run writes the same bytes with every decision once and every event once."""
    import os
    import signal

    from inventory_pipeline.definitions import build_definitions

    s, out, _ = pipeline_run
    d = out["plan_date"]
    root, folder = Path(s.outbox_uri), Path(s.outbox_uri) / d
    before = _bytes(folder)
    events_before = pd.read_parquet(s.warehouse_dir / "decision_events" / d / "data.parquet")
    shutil.rmtree(folder)  # so the killed run has something to write

    status = _killed_publish(d, "outbox-mid-write")
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert not folder.exists()  # the half-written folder is a hidden temporary, not the plan date
    assert list(root.glob(f".{d}.tmp-*"))

    status = _killed_publish(d, "before-events")
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert _bytes(folder) == before and not list(root.glob(f".{d}.tmp-*"))

    res = (
        build_definitions()
        .resolve_job_def("publish_decisions")
        .execute_in_process(instance=dg.DagsterInstance.ephemeral(), partition_key=d)
    )
    assert res.success
    assert _bytes(folder) == before
    for name in ("purchase_orders.csv", "transfers.csv", "price_changes.csv"):
        f = pd.read_csv(folder / name)
        assert f["decision_id"].is_unique, name
    events = pd.read_parquet(s.warehouse_dir / "decision_events" / d / "data.parquet")
    assert events["event_id"].is_unique
    assert set(events["event_id"]) == set(events_before["event_id"])


def test_the_same_assets_read_landing_from_s3_and_write_the_outbox_to_s3(pipeline_run, s3_endpoint, tmp_path):
    """The plan's landing files in a bucket (moto's S3 server on 127.0.0.1): ingest_master and the
    plan date's raw_pos_sales read from s3:// through the same assets and give the same table as
    the local run; erp_outbox with an s3:// outbox puts the same bytes as the local outbox."""
    from inventory_pipeline.core.warehouse import Warehouse
    from inventory_pipeline.definitions import build_definitions
    from inventory_pipeline.defs.jobs import without_freshness
    from inventory_pipeline.defs.resources import LandingZoneResource, OutboxResource, WarehouseResource

    s, out, _ = pipeline_run
    d = out["plan_date"]
    client = LandingZoneResource(uri="s3://x", s3_endpoint_url=s3_endpoint).s3_client()
    for b in ("pl-landing", "pl-erp"):
        client.create_bucket(Bucket=b)
    land = Path(s.landing_uri)
    for p in sorted(land.rglob("*")):
        if p.is_file() and (p.parent == land / "master" or p.parent == land / "daily" / d):
            client.upload_file(str(p), "pl-landing", f"zone/{p.relative_to(land).as_posix()}")
    wh = tmp_path / "warehouse"
    res = {
        "landing": LandingZoneResource(uri="s3://pl-landing/zone", s3_endpoint_url=s3_endpoint),
        "warehouse": WarehouseResource(root=str(wh)),
    }
    defs3 = build_definitions(resources=res)
    instance = dg.DagsterInstance.ephemeral()
    assert defs3.resolve_job_def("ingest_master").execute_in_process(instance=instance).success
    assert (
        without_freshness(defs3.resolve_job_def("ingest_daily"), [dg.AssetKey("raw_pos_sales")])
        .execute_in_process(instance=instance, partition_key=d)
        .success
    )
    pd.testing.assert_frame_equal(
        Warehouse(wh).read("raw_pos_sales", d), Warehouse(s.warehouse_dir).read("raw_pos_sales", d)
    )

    defs_out = build_definitions(
        resources={"outbox": OutboxResource(uri="s3://pl-erp/outbox", s3_endpoint_url=s3_endpoint)}
    )
    r = without_freshness(
        defs_out.resolve_job_def("publish_decisions"), [dg.AssetKey("erp_outbox")]
    ).execute_in_process(instance=instance, partition_key=d)
    assert r.success
    local = Path(s.outbox_uri) / d
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket="pl-erp", Prefix=f"outbox/{d}/")["Contents"])
    assert keys == sorted(f"outbox/{d}/{p.name}" for p in local.iterdir())
    for p in local.iterdir():
        assert client.get_object(Bucket="pl-erp", Key=f"outbox/{d}/{p.name}")["Body"].read() == p.read_bytes(), p.name
