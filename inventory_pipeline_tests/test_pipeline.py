"""Integration: the whole asset graph materialised in process on a tiny network."""

import hashlib
import json
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
    policy.write_text(DEFAULT_POLICY_PATH.read_text().replace("service_level: 0.95", "service_level: 0.99")
                      .replace("review_period_days: 1", "review_period_days: 7"))
    os.environ["INVENTORY_PIPELINE_POLICY"] = str(policy)
    s = settings()
    cfg = NetworkConfig(regions=1, dcs=1, stores=3, skus=10, suppliers=2, days=100, seed=11, burn_in_days=28)
    generate_landing_zone(cfg, s.landing_uri)
    # a bad row in one daily file: quarantined, the rest of the day kept
    bad = Path(s.landing_uri) / "daily" / "2025-03-01" / "pos_sales.csv"
    bad.write_text(bad.read_text() + "2025-03-01,S001,NOPE,1,1.0,0\n")
    from inventory_pipeline.runner import run_pipeline

    instance = dg.DagsterInstance.ephemeral()
    out = run_pipeline(instance=instance, log=lambda m: None)
    return s, out, instance


def test_every_run_succeeds_and_the_outbox_is_complete(pipeline_run):
    s, out, _ = pipeline_run
    assert {k: r.success for k, r in out["results"].items()} == {"ingest_master": True, "ingest_daily": True, "daily_plan": True}
    assert out["plan_date"] == "2025-04-10"
    folder = Path(s.outbox_uri) / "2025-04-10"
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json", "price_changes.csv", "purchase_orders.csv", "transfers.csv"]
    m = json.loads((folder / "manifest.json").read_text())
    assert m["plan_date"] == "2025-04-10" and m["model_versions"][0].startswith("demand_forecast/")
    for name, meta in m["files"].items():
        assert len(pd.read_csv(folder / name)) == meta["rows"]
    assert m["files"]["transfers.csv"]["rows"] + m["files"]["purchase_orders.csv"]["rows"] > 0


def test_checks_ran_and_passed(pipeline_run):
    _, out, _ = pipeline_run
    evals = [e for r in out["results"].values() for e in r.get_asset_check_evaluations()]
    names = {(e.asset_key.to_user_string(), e.check_name) for e in evals}
    assert ("raw_pos_sales", "quarantine_within_threshold") in names
    assert ("demand_forecast", "output_contract") in names and ("erp_outbox", "manifest_matches_files") in names
    assert any(n[1].startswith("unique_") for n in names)  # dbt tests are asset checks
    assert all(e.passed for e in evals)


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
    again = defs.resolve_job_def("daily_plan").execute_in_process(instance=instance, partition_key="2025-04-10")
    assert again.success
    assert _bytes(folder) == before
    log_after = pd.read_parquet(s.warehouse_dir / "decision_log" / "2025-04-10" / "data.parquet")
    assert log_after["decision_id"].is_unique
    assert log_after["decision_id"].tolist() == log_before["decision_id"].tolist()
