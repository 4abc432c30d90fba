"""`inventory-pipeline run` as a person or a scheduler meets it:
stray folders under daily/ are ignored with a warning (by `run`, the landing sensor and the
schedule), every failure is one paragraph naming the file or check with what to do, the exit code
says which kind of failure it was, and the process exits 0 after every successful run.

The CLI runs as the installed console script in a subprocess with its own home (landing zone,
warehouse, MLflow store, Dagster instance) on a tiny network: 2 stores x 5 SKUs x 60 days."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from inventory_pipeline.cli import EXIT_BLOCKED, EXIT_FAILED, EXIT_INPUT_UNUSABLE, EXIT_OK, build_parser
from inventory_pipeline.core.landing_dates import landing_date_files, landing_dates

LAST_DAY = "2025-03-01"  # the network below: 2025-01-01 .. 2025-03-01
STRAY = ("2025-04-31", "zzz", "notes")


# ---------------------------------------------------------------------------------------------
# the rule: which folders are landing days


def test_only_real_calendar_dates_are_landing_days_and_every_other_folder_is_named():
    said: list[str] = []
    names = ["2025-04-30", "2025-04-31", "zzz", "notes", "2025-4-30", "20250430", "2024-02-29", "2025-02-29"]
    assert landing_dates(names, warn=said.append) == ["2024-02-29", "2025-04-30"]
    assert len(said) == 6
    for bad in ("2025-04-31", "zzz", "notes", "2025-4-30", "20250430", "2025-02-29"):
        assert sum(f"daily/{bad}/" in m for m in said) == 1
    assert "not a calendar date" in next(m for m in said if "2025-04-31" in m)
    files = {"2025-04-30/pos_sales.csv": 1, "zzz/pos_sales.csv": 2, "zzz/inventory.csv": 3, "readme.txt": 4}
    said.clear()
    assert landing_date_files(files, warn=said.append) == {"2025-04-30/pos_sales.csv": 1}
    assert len(said) == 1 and "daily/zzz/" in said[0]  # one warning per folder, not per file


def test_a_plan_date_that_is_not_a_calendar_date_is_a_usage_error():
    for bad in ("2025-04-31", "zzz", "2025-4-30"):
        with pytest.raises(SystemExit) as e:
            build_parser().parse_args(["run", "--date", bad])
        assert e.value.code == 2
    assert build_parser().parse_args(["run", "--date", "2025-04-30"]).date == "2025-04-30"


def _day(root: Path, d: str) -> None:
    (root / "daily" / d).mkdir(parents=True, exist_ok=True)
    for n in ("pos_sales", "inventory", "receipts", "open_orders"):
        (root / "daily" / d / f"{n}.csv").write_text("x\n")


def test_the_landing_sensor_and_the_schedule_ignore_stray_folders_with_a_warning(tmp_path, monkeypatch):
    from inventory_pipeline.defs.resources import LandingZoneResource
    from inventory_pipeline.defs.schedules import daily_cycle_schedule
    from inventory_pipeline.defs.sensors import landing_days_complete

    monkeypatch.setenv("INVENTORY_PIPELINE_LANDING_SETTLE_SECONDS", "0")
    for d in ("2025-02-27", "2025-02-28", *STRAY):  # the stray folders hold complete-looking files
        _day(tmp_path, d)
    landing = LandingZoneResource(uri=str(tmp_path))
    with dg.build_sensor_context(resources={"landing": landing}) as ctx:
        reqs = landing_days_complete(ctx)
        cursor = ctx.cursor
    assert [(r.job_name, r.partition_key) for r in reqs] == [
        ("ingest_daily", "2025-02-27"),
        ("daily_cycle", "2025-02-28"),
    ]
    assert sorted(json.loads(cursor)) == ["2025-02-27", "2025-02-28"]  # no stray folder in the cursor
    with dg.build_sensor_context(resources={"landing": landing}, cursor=cursor) as ctx:
        skip = landing_days_complete(ctx)
    assert isinstance(skip, dg.SkipReason)
    for bad in STRAY:  # the tick says which folders it ignored, and why
        assert f"daily/{bad}/" in skip.skip_message
    when = pd.Timestamp("2025-03-01 06:00", tz="UTC").to_pydatetime()
    with dg.instance_for_test() as instance:
        with dg.build_schedule_context(
            instance=instance, scheduled_execution_time=when, resources={"landing": landing}
        ) as ctx:
            r = daily_cycle_schedule(ctx)
    assert isinstance(r, dg.RunRequest) and r.partition_key == "2025-02-28"


# ---------------------------------------------------------------------------------------------
# classifying a run's failures (in process, toy assets)


def test_failures_are_classified_from_the_run_events_with_their_numbers():
    from inventory_pipeline.core.ingestion import LandingContractError
    from inventory_pipeline.runner import BLOCKED, FAILED, INPUT_UNUSABLE, WARNING, Outcome, not_run_steps, run_failures

    @dg.asset
    def raw_inventory():
        raise LandingContractError(
            "inventory: 1 landing file(s) cannot be used:\n  daily/2025-03-01/inventory.csv: "
            "missing required column(s) ['on_hand']"
        )

    @dg.asset(
        check_specs=[
            dg.AssetCheckSpec("ledger_within_tolerance", asset="inventory_reconciliation", blocking=True),
            dg.AssetCheckSpec("landing_files_usable", asset="inventory_reconciliation", blocking=True),
        ]
    )
    def inventory_reconciliation():
        return dg.MaterializeResult(
            check_results=[
                dg.AssetCheckResult(
                    check_name="landing_files_usable",
                    passed=False,
                    description="input unusable: daily/2025-03-01/receipts.csv missing",
                ),
                dg.AssetCheckResult(
                    check_name="ledger_within_tolerance",
                    passed=False,
                    metadata={
                        "discrepancies": 5,
                        "discrepancy_share": 0.05,
                        "max_share": 0.01,
                        "units_missing": 12,
                        "units_extra": 0,
                    },
                    description="5 of 100 lines (5.00%) disagree with the ledger (allowed 1.00%)",
                ),
            ]
        )

    @dg.asset(deps=[inventory_reconciliation])
    def decision_log():
        return None

    @dg.asset(check_specs=[dg.AssetCheckSpec("forecast_drift", asset="demand_forecast")])
    def demand_forecast():
        return dg.MaterializeResult(
            check_results=[
                dg.AssetCheckResult(
                    check_name="forecast_drift",
                    passed=False,
                    severity=dg.AssetCheckSeverity.WARN,
                    metadata={"wape": 0.4},
                )
            ]
        )

    @dg.asset(check_specs=[dg.AssetCheckSpec("quarantine_within_threshold", asset="raw_pos_sales", blocking=True)])
    def raw_pos_sales():
        return dg.MaterializeResult(
            check_results=[
                dg.AssetCheckResult(
                    check_name="quarantine_within_threshold",
                    passed=False,
                    metadata={
                        "quarantine_share": 0.001,
                        "max_file_share": 5 / 37,
                        "threshold": 0.01,
                        "rows_quarantined": 5,
                    },
                )
            ]
        )

    @dg.asset
    def price_recommendations():
        raise ZeroDivisionError("division by zero")

    res = dg.materialize(
        [raw_inventory, inventory_reconciliation, decision_log, demand_forecast, price_recommendations, raw_pos_sales],
        raise_on_error=False,
    )
    failures = {
        f.what.split(" ")[1] if f.what.startswith("check") else f.what: f
        for f in run_failures("daily_plan", res, LAST_DAY)
    }
    kinds = sorted(f.kind for f in failures.values())
    assert kinds == sorted([INPUT_UNUSABLE, INPUT_UNUSABLE, INPUT_UNUSABLE, BLOCKED, WARNING, FAILED])
    missing = failures["landing_files_usable"]  # a missing day file is the input's fault, not a rule's (exit 4)
    assert missing.kind == INPUT_UNUSABLE and "receipts.csv" in missing.where and "daily/" in missing.todo
    quarantine = failures["quarantine_within_threshold"]  # a file's quarantine share that stops the day
    assert quarantine.kind == INPUT_UNUSABLE
    # the worst file's own share, not the share over the whole ingested range
    assert (
        quarantine.numbers == "5 row(s) quarantined; the worst file has 13.51% of its rows quarantined, allowed 1.00%"
    )
    assert "quarantine_pos_sales" in quarantine.todo and "pos_sales" in quarantine.where
    unusable = next(f for f in failures.values() if f.kind == INPUT_UNUSABLE and f not in (quarantine, missing))
    assert "inventory.csv" in unusable.where and "on_hand" in unusable.numbers
    assert "LandingContractError" in unusable.traceback  # the Dagster error, for --verbose only
    assert "LandingContractError" not in unusable.paragraph() and "Traceback" not in unusable.paragraph()
    ledger = failures["ledger_within_tolerance"]
    assert ledger.kind == BLOCKED
    assert ledger.numbers == "5 location x SKU lines off the ledger = 5.00% of lines, allowed 1.00%"
    assert "inventory_reconciliation/2025-03-01" in ledger.todo and "units missing 12" in ledger.where
    bug = next(f for f in failures.values() if f.kind == FAILED)
    assert "price_recommendations" in bug.what and "ZeroDivisionError" in bug.what and "--verbose" in bug.todo
    assert not_run_steps(res) == ["decision_log"]
    out = Outcome(LAST_DAY, "2025-01-01", {"daily_plan": res}, list(failures.values()))
    assert out.kind == INPUT_UNUSABLE  # input_unusable > blocked > failed
    out.failures = [ledger, bug]
    assert out.kind == BLOCKED


# ---------------------------------------------------------------------------------------------
# the console script, in a subprocess per run


@pytest.fixture(scope="module")
def landing_template(tmp_path_factory):
    from inventory_pipeline.simulation import NetworkConfig, generate_landing_zone

    root = tmp_path_factory.mktemp("cli_landing")
    cfg = NetworkConfig(regions=1, dcs=1, stores=2, skus=5, suppliers=2, days=60, seed=7)
    gen = generate_landing_zone(cfg, str(root), write_truth=False)
    assert gen["last_date"] == LAST_DAY
    return root


def _home(tmp_path: Path, template: Path) -> Path:
    from inventory_pipeline.config import DEFAULT_POLICY_PATH

    shutil.copytree(template, tmp_path / "data" / "landing")
    (tmp_path / "dagster_home").mkdir()
    (tmp_path / "policy.yaml").write_text(DEFAULT_POLICY_PATH.read_text())
    return tmp_path


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INVENTORY_PIPELINE_", "MLFLOW_", "DAGSTER_"))}
    env.update(
        INVENTORY_PIPELINE_HOME=str(home),
        DAGSTER_HOME=str(home / "dagster_home"),
        INVENTORY_PIPELINE_POLICY=str(home / "policy.yaml"),
    )
    exe = Path(sys.executable).parent / "inventory-pipeline"
    return subprocess.run([str(exe), *args], cwd=home, env=env, capture_output=True, text=True, timeout=900)


def _rewrite(path: Path, edit) -> None:
    rows = list(csv.reader(path.open()))
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(edit(rows))


def _last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


def test_every_check_of_the_code_location_has_advice_of_its_own():
    """A failed check's 'What to do' is written for that check: the generic advice (rerun for the
    traceback; a transient error may clear) is for steps that raised, not for a data finding."""
    from inventory_pipeline import runner
    from inventory_pipeline.definitions import defs
    from inventory_pipeline.defs.jobs import FRESHNESS_CHECK

    checks = {k.name for k in defs.resolve_asset_graph().asset_check_keys}
    dbt_tests = {c for c in checks if c.startswith(runner._DBT_TEST_PREFIXES)}
    assert dbt_tests and len(checks - dbt_tests) >= 10
    assert checks - dbt_tests - {FRESHNESS_CHECK} <= set(runner._ADVICE)
    for advice in runner._ADVICE.values():
        advice.format(d="2025-03-01", asset="an_asset", quarantine="quarantine_x", run_id="r")  # every field known


@pytest.mark.slow
def test_run_ignores_stray_folders_and_exits_0_every_time_in_a_row(tmp_path, landing_template):
    """Item 6: the intermittent `terminate called without an active exception` (exit 134) after
    a successful run. Two runs in a row (the first ingests every day and plans, the second re-runs
    the plan date's partitions: re-ingesting the 59 days before it again is not what this test is
    about, and was ~40 s of the suite) must each exit 0 with the plan exported; stray folders
    sorting after the dates must not become the plan date (item 3)."""
    home = _home(tmp_path, landing_template)
    daily = home / "data" / "landing" / "daily"
    for bad in STRAY:
        shutil.copytree(daily / LAST_DAY, daily / bad)  # complete-looking files: only the name is wrong
    for attempt, first in enumerate(((), ("--first-date", LAST_DAY))):
        r = _cli(home, "run", *first)
        assert r.returncode == EXIT_OK, f"run {attempt + 1}: exit {r.returncode}\n{r.stderr[-3000:]}"
        assert "terminate called" not in r.stderr
        last = _last_line(r.stdout)
        assert last.startswith("inventory-pipeline run: OK (exit 0): plan 2025-03-01 exported"), last
        assert "held for review" in last and "quarantined" in last
        for bad in STRAY:
            assert f"daily/{bad}/" in r.stderr
        assert "Traceback" not in r.stderr + r.stdout
    assert (home / "data" / "outbox" / LAST_DAY / "manifest.json").is_file()
    assert not (home / "data" / "outbox" / "zzz").exists()


@pytest.mark.slow
def test_an_unusable_landing_file_exits_4_and_names_the_file(tmp_path, landing_template):
    home = _home(tmp_path, landing_template)
    bad = home / "data" / "landing" / "daily" / LAST_DAY / "inventory.csv"
    _rewrite(bad, lambda rows: [r[:3] for r in rows])  # on_hand column gone
    # only the bad day ingested: the other 59 days' ingest is not what this test is about (and two
    # runs of it were ~20 s of the suite)
    r = _cli(home, "run", "--first-date", LAST_DAY)
    assert r.returncode == EXIT_INPUT_UNUSABLE, r.stderr[-3000:]
    assert "INPUT UNUSABLE: landing file inventory could not be used" in r.stderr
    assert f"{bad}: missing required column(s) ['on_hand']" in r.stderr
    assert "What to do: Fix or resend the file" in r.stderr
    assert "Traceback" not in r.stderr and "dagster._core" not in r.stderr
    last = _last_line(r.stderr)
    assert last.startswith(f"inventory-pipeline run: INPUT UNUSABLE (exit {EXIT_INPUT_UNUSABLE})") and "on_hand" in last
    assert not (home / "data" / "outbox" / LAST_DAY).exists()
    # the Dagster error chain, traceback included, behind --verbose
    v = _cli(home, "run", "--first-date", LAST_DAY, "--verbose")
    assert v.returncode == EXIT_INPUT_UNUSABLE and "Dagster error:" in v.stderr and "Stack Trace" in v.stderr


@pytest.mark.slow
def test_a_blocked_ledger_exits_3_with_its_numbers(tmp_path, landing_template):
    home = _home(tmp_path, landing_template)
    inv = home / "data" / "landing" / "daily" / LAST_DAY / "inventory.csv"
    _rewrite(
        inv, lambda rows: [rows[0]] + [[*r[:3], str(int(r[3]) + 50)] if i < 5 else r for i, r in enumerate(rows[1:])]
    )  # 5 counts 50 units too high
    r = _cli(home, "run", "--first-date", "2025-02-28")  # the ledger needs the day before's counts, no more
    assert r.returncode == EXIT_BLOCKED, r.stderr[-3000:]
    assert (
        "BLOCKED BY A CHECK: check ledger_within_tolerance on inventory_reconciliation [2025-03-01] failed" in r.stderr
    )
    assert "inventory_reconciliation/2025-03-01" in r.stderr and "What to do:" in r.stderr
    assert "not run: " in r.stderr and "erp_outbox" in r.stderr
    last = _last_line(r.stderr)
    assert last.startswith(f"inventory-pipeline run: BLOCKED BY A CHECK (exit {EXIT_BLOCKED})"), last
    assert "5 location x SKU lines off the ledger" in last and "% of lines, allowed 1.00%" in last
    assert "Traceback" not in r.stderr
    assert not (home / "data" / "outbox" / LAST_DAY).exists()


def test_exit_codes_are_distinct_and_documented():
    codes = {EXIT_OK, EXIT_FAILED, 2, EXIT_BLOCKED, EXIT_INPUT_UNUSABLE}
    assert len(codes) == 5 and 134 not in codes
    doc = (Path(__file__).resolve().parents[1] / "docs" / "operations.md").read_text()
    for name, code in (
        ("EXIT_BLOCKED", EXIT_BLOCKED),
        ("EXIT_INPUT_UNUSABLE", EXIT_INPUT_UNUSABLE),
        ("EXIT_FAILED", EXIT_FAILED),
    ):
        assert f"`{code}`" in doc and name in doc
