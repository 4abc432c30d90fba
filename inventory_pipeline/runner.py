"""Run the whole graph in process (used by `inventory-pipeline run/demo` and the tests).

Three runs, recorded in the Dagster instance (DAGSTER_HOME) so they show in the UI:
  ingest_master             master files (unpartitioned)
  ingest_daily [first..D]   every daily landing file up to D, as one single-run backfill
  daily_plan [D]            dbt build, forecast, pricing, replenishment, rebalancing,
                            decision log and ERP outbox for plan date D

The runs do not raise on a failure: a failed run stops the ones after it (they need its
output), and `run_failures` reads what went wrong from the run's events — failed asset checks
with their numbers, failed steps with the error the asset raised — into `Failure` records a
person can act on (`inventory-pipeline run` prints one paragraph each; the full Dagster error,
traceback included, stays in the run's event log and in `Failure.traceback`). The kind of a
failure decides the CLI's exit code (cli.py, docs/operations.md):

  input_unusable  a landing file could not be used (unreadable, a required file or column
                  missing, its quarantined share over the policy threshold where that stops the day)
  blocked         a blocking asset check failed (e.g. ledger_within_tolerance): the stage's
                  output exists but nothing after it ran, so nothing of the day was exported
  failed          any other step failure (a bug, a service that is down)
  warning         a non-blocking check failed; the day went on (reported, exit code unchanged)
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from .defs.partitions import PARTITION_RANGE_END_TAG, PARTITION_RANGE_START_TAG

INPUT_UNUSABLE, BLOCKED, FAILED, WARNING = "input_unusable", "blocked", "failed", "warning"
# when several kinds happen in one `run`, the outcome is the first of these
SEVERITY = (INPUT_UNUSABLE, BLOCKED, FAILED)
QUARANTINE_CHECK = "quarantine_within_threshold"  # defs/ingestion.py
LEDGER_CHECK = "ledger_within_tolerance"  # defs/ledger.py
USABLE_CHECK = "landing_files_usable"  # defs/ledger.py

_INGEST_STEP_PREFIX = "raw_"  # every landing asset is raw_<file> (defs/ingestion.py)
_DBT_TEST_PREFIXES = ("unique_", "not_null_", "relationships_", "accepted_values_", "dbt_utils_")
_CHECK_ERROR = "DagsterAssetCheckFailedError"
# errors of a landing asset that mean its file could not be read, even if not wrapped as
# core.ingestion.LandingContractError (which is how ingestion names a file it cannot use)
_UNREADABLE = {"UnicodeDecodeError", "ArrowInvalid", "ParserError", "EmptyDataError", "Error"}

# what a person does about a failed check, by check name ({d}: plan date, {asset}: the asset)
_ADVICE = {
    LEDGER_CHECK: "Compare the counted on hand with the ledger line by line in the warehouse table "
    "inventory_reconciliation/{d} (flagged rows: expected vs counted, and why). Correct the landing "
    "files of {d} (inventory.csv, receipts.csv, pos_sales.csv) or of the day before, then rerun "
    "`inventory-pipeline run`; if the discrepancies are real and understood, raise "
    "guards.ledger_max_discrepancy_share in the policy file.",
    USABLE_CHECK: "A daily file of {d} is missing or too much of it was quarantined (the check names the file, "
    "count and share). Resend or fix that file in daily/{d}/ (the quarantined rows, with row and reason, are in "
    "the warehouse tables quarantine_<file>), then rerun `inventory-pipeline run`.",
    QUARANTINE_CHECK: "Look at the quarantined rows (file, row, reason) in the warehouse table {quarantine}, fix "
    "them in the landing file or resend the file, then rerun `inventory-pipeline run`.",
    "guardrails": "A price recommendation broke a pricing guardrail of the policy file; the check's examples are "
    "in the Dagster UI (asset price_recommendations, Checks tab). This is a policy conflict or a bug, "
    "not a data problem: report it with the run id.",
    "order_rules": "A replenishment order broke an order rule (MOQ, case pack, capacity, budget); the check's "
    "examples are in the Dagster UI (asset replenishment_orders, Checks tab). Report it with the run "
    "id; check the master data of the SKUs named there.",
    "transfer_rules": "A transfer broke a rebalancing rule; the check's examples are in the Dagster UI (asset "
    "rebalancing_transfers, Checks tab). Report it with the run id.",
    "output_contract": "The stage's output broke its contract (the check's examples are in the Dagster UI, asset "
    "{asset}, Checks tab). Report it with the run id.",
    # warnings about what happened downstream of the plan: data findings for a person, not errors to rerun
    "book_matches_shelf": "The shelf's regular price (pos_sales) disagrees with prices this pipeline exported: "
    "the ERP or the stores did not apply a change, applied it late, or overrode it. The lines are in the "
    "warehouse table price_reconciliation/{d}; pricing already plans from the shelf's price. Ask whoever runs "
    "the ERP import whether those outbox price changes reached the stores; a rerun changes nothing.",
    "exported_orders_in_erp": "Order lines this pipeline exported are in neither the ERP's open orders nor its "
    "receipts after the grace period: the ERP did not import them, or rejected them. The lines are in the "
    "warehouse table order_reconciliation/{d}. Ask whoever runs the ERP import about those outbox files; a "
    "rerun changes nothing.",
    "forecast_drift": "Realised demand has drifted from the forecast made before it; the bias per demand class "
    "is in the check's metadata (Dagster UI, asset demand_forecast, Checks tab). A lasting drift is a change the "
    "history does not show yet (a promotion, a range or price change, late or missing sales files): check the "
    "landing files of the classes named.",
    "promotion_gate": "The forecast configuration the policy asks for was not promoted: its cross-validated WAPE "
    "is worse than the serving model's on the same window, so that model keeps serving (both WAPEs are in the "
    "check's metadata, Dagster UI, asset demand_forecast, Checks tab). Nothing to rerun; review the policy "
    "file's forecast settings.",
    "manifest_matches_files": "A file of the ERP outbox for {d} does not match its manifest.json (rows or "
    "sha256): it changed after it was written. Keep the ERP from importing that folder and rerun "
    "`inventory-pipeline run --date {d}`, which writes the folder again.",
    "runtime_guards": "The decision log's runtime guards stopped the day (the check's metadata in the Dagster UI, "
    "asset decision_log, Checks tab, says which guard). Review the inputs it names, then rerun.",
}
_DBT_ADVICE = (
    "A dbt test on the warehouse models failed: usually duplicated or missing keys across the landing "
    "files (a row twice in a file, or a day's rows in another day's folder). Find the rows with the "
    "test's query (dbt_project/target/run_results.json names it), fix the landing files and rerun."
)
_GENERIC_ADVICE = (
    "Rerun with `inventory-pipeline run --verbose` for the traceback, or open run {run_id} in the "
    "Dagster UI (`make dev`); a transient error (network, a locked DuckDB file) may clear on a rerun."
)


class NoLandingDay(LookupError):
    """The landing zone has no daily/YYYY-MM-DD/ folder to plan, or none for the date asked."""


@dataclass
class Failure:
    """One thing that went wrong in a run, in words a person can act on."""

    kind: str  # INPUT_UNUSABLE | BLOCKED | FAILED | WARNING
    job: str
    run_id: str
    what: str  # what failed: the check or step, the asset and partition
    where: str  # which file / row / check numbers
    todo: str  # what to do about it
    numbers: str = ""  # the short form of `where` for a one-line verdict (lines off, share, allowed)
    traceback: str = ""  # Dagster's error chain with the stack, for --verbose

    def paragraph(self, verbose: bool = False) -> str:
        label = {INPUT_UNUSABLE: "INPUT UNUSABLE", BLOCKED: "BLOCKED BY A CHECK", FAILED: "FAILED", WARNING: "WARNING"}[
            self.kind
        ]
        where = "\n  ".join(x.strip() for x in self.where.strip().splitlines() if x.strip())
        text = f"{label}: {self.what}\n  {where}\n  What to do: {self.todo}\n  (job {self.job}, run {self.run_id})"
        if verbose and self.traceback:
            text += "\n  Dagster error:\n    " + self.traceback.rstrip().replace("\n", "\n    ")
        return text


@dataclass
class Outcome:
    """What `run_pipeline` did: the plan date, the runs, what went wrong, what did not run."""

    plan_date: str
    first_date: str
    results: dict
    failures: list[Failure] = field(default_factory=list)
    not_run: list[str] = field(default_factory=list)  # later jobs skipped after a failed run, and skipped steps

    @property
    def kind(self) -> str:
        """The worst failure kind (SEVERITY order), or "ok" when every run succeeded."""
        kinds = {f.kind for f in self.failures}
        for k in SEVERITY:
            if k in kinds:
                return k
        return "ok" if all(r.success for r in self.results.values()) else FAILED


def _value(meta: dict, key: str):
    v = meta.get(key)
    return getattr(v, "value", v)


def _numbers(meta: dict) -> str:
    out = []
    for k, v in meta.items():
        v = getattr(v, "value", v)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        out.append(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}")
    return ", ".join(out)


def _units(v) -> str:
    """A unit count as a person writes it: 250, not 250.0 or -0.0."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    return str(int(round(f)) + 0) if f == round(f) else f"{f:.2f}"


def _error_chain(err) -> list:
    out = []
    while err is not None:
        out.append(err)
        err = err.cause
    return out


def _without_class(message: str, cls: str) -> str:
    """A SerializableErrorInfo message without its leading `package.module.Class: `."""
    message = message.strip()
    head, sep, rest = message.partition(": ")
    return rest.strip() if sep and head.rsplit(".", 1)[-1] == cls else message


def _quarantine_examples(asset: str, wh, n: int = 3) -> str:
    """The first quarantined rows of a landing file's quarantine table: file, row and reason."""
    table = "quarantine_" + asset.removeprefix(_INGEST_STEP_PREFIX)
    try:
        q = wh.query(
            f'select file, "row", reason from {wh.scan(table)} order by partition_date desc, file, "row" limit {n}'
        )
    except Exception:  # noqa: BLE001 - the examples are a courtesy; the check's numbers are the message
        return ""
    return "; ".join(f"{r.file} row {r.row}: {r.reason}" for r in q.itertuples(index=False))


def _check_failure(job: str, run_id: str, step: str, e, stopped: bool, plan_date: str, wh) -> Failure:
    asset = e.asset_key.to_user_string()
    meta = dict(e.metadata or {})
    part = e.partition or plan_date
    what = f"check {e.check_name} on {asset} [{part}] failed"
    numbers = _numbers(meta)
    if e.check_name == QUARANTINE_CHECK:
        kind = INPUT_UNUSABLE if stopped else WARNING
        # the threshold is per file and day: quote the worst file's share
        share = _value(meta, "max_file_share")
        share = _value(meta, "quarantine_share") if share is None else share
        thr, rows = _value(meta, "threshold"), _value(meta, "rows_quarantined")
        numbers = (
            f"{rows} row(s) quarantined; the worst file has {share:.2%} of its rows quarantined, allowed {thr:.2%}"
            if share is not None and thr is not None
            else numbers
        )
        if e.description:
            numbers = f"{numbers} ({e.description})"
        ex = _quarantine_examples(asset, wh) if wh is not None else ""
        where = f"Landing file {asset.removeprefix(_INGEST_STEP_PREFIX)}: {numbers}." + (
            f" First rows: {ex}." if ex else ""
        )
        todo = _ADVICE[QUARANTINE_CHECK].format(quarantine="quarantine_" + asset.removeprefix(_INGEST_STEP_PREFIX))
        return Failure(kind, job, run_id, what, where, todo, numbers)
    kind = BLOCKED if stopped or (e.blocking and e.severity == dg.AssetCheckSeverity.ERROR) else WARNING
    if e.check_name == USABLE_CHECK and kind == BLOCKED:
        kind = INPUT_UNUSABLE  # a missing day file or one past the quarantine threshold: the input, not a rule
    if e.check_name == LEDGER_CHECK:
        n, share, allowed = (_value(meta, k) for k in ("discrepancies", "discrepancy_share", "max_share"))
        miss, extra = _value(meta, "units_missing"), _value(meta, "units_extra")
        if None not in (n, share, allowed):
            numbers = f"{n} location x SKU lines off the ledger = {share:.2%} of lines, allowed {allowed:.2%}"
        where = (e.description or numbers) + f"; units missing {_units(miss)}, units extra {_units(extra)}."
    else:
        where = (e.description + ". " if e.description else "") + (numbers or "no numbers recorded") + "."
    if e.check_name.startswith(_DBT_TEST_PREFIXES) or step == "warehouse_models":
        todo = _DBT_ADVICE
    else:
        todo = _ADVICE.get(e.check_name, _GENERIC_ADVICE).format(d=part, asset=asset, run_id=run_id)
    if kind == BLOCKED:
        todo = "Nothing after this check ran for the day, so nothing of it reached the outbox. " + todo
    return Failure(kind, job, run_id, what, where, todo, numbers)


def run_failures(job: str, result, plan_date: str, wh=None) -> list[Failure]:
    """The failures of one finished in-process run, read from its events (no exception raised)."""
    run_id = result.run_id
    failed_steps = {ev.step_key: ev.step_failure_data.error for ev in result.get_step_failure_events()}
    out: list[Failure] = []
    stopped_steps = set()
    for ev in result.all_events:
        if ev.event_type != dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            continue
        e = ev.asset_check_evaluation_data
        if e.passed:
            continue
        stopped = ev.step_key in failed_steps and e.severity == dg.AssetCheckSeverity.ERROR
        f = _check_failure(job, run_id, ev.step_key, e, stopped, plan_date, wh)
        if stopped:
            stopped_steps.add(ev.step_key)
            f.traceback = failed_steps[ev.step_key].to_string() if failed_steps[ev.step_key] else ""
        out.append(f)
    for step, err in failed_steps.items():
        if step in stopped_steps:
            continue  # its failed checks say why
        chain = _error_chain(err)
        names = {x.cls_name for x in chain}
        user = chain[-1] if chain else None
        cls = user.cls_name if user else "error"
        message = _without_class(user.message if user else "", cls) or "(no message)"
        first_line = " ".join(x.strip() for x in message.splitlines())[:400]
        tb = err.to_string() if err else ""
        ingesting = step.startswith(_INGEST_STEP_PREFIX)
        name = step.removeprefix(_INGEST_STEP_PREFIX)
        if "LandingContractError" in names or (ingesting and names & _UNREADABLE):
            out.append(
                Failure(
                    INPUT_UNUSABLE,
                    job,
                    run_id,
                    f"landing file {name} could not be used (step {step})",
                    message,
                    "Fix or resend the file named above in the landing zone (the landing-zone contract: "
                    "inventory_pipeline/contracts/landing.py), then rerun `inventory-pipeline run`. Nothing after "
                    "ingestion ran.",
                    first_line,
                    tb,
                )
            )
        elif _CHECK_ERROR in names:
            out.append(
                Failure(
                    BLOCKED,
                    job,
                    run_id,
                    f"a blocking check stopped step {step}",
                    message,
                    _GENERIC_ADVICE.format(run_id=run_id),
                    first_line,
                    tb,
                )
            )
        else:
            what = f"step {step}" + (f" (ingesting landing file {name})" if ingesting else "") + f" failed: {cls}"
            out.append(
                Failure(
                    FAILED,
                    job,
                    run_id,
                    what,
                    message[:2000],
                    _GENERIC_ADVICE.format(run_id=run_id),
                    f"{cls}: {first_line}",
                    tb,
                )
            )
    return out


def not_run_steps(result) -> list[str]:
    """The steps of a finished run that did not run (after a failed step or a blocking check)."""
    done = {ev.step_key for ev in result.all_events if ev.is_step_success or ev.is_step_failure}
    planned = [n.name for n in result.job_def.nodes]
    return [n for n in planned if n not in done and not any(k.startswith(n + ".") for k in done)]


_ENGINE_NOTES = ("Dependencies for step ",)  # Dagster's own skip notes: listed as "not run" instead


def _print_warnings(instance: dg.DagsterInstance, run_id: str, warn: Callable[[str], None]) -> None:
    """The warnings the assets logged (context.log.warning), one line each, without Dagster's
    framing; the event log keeps them all."""
    import logging

    for rec in instance.all_logs(run_id):
        if (
            rec.dagster_event is None
            and rec.level >= logging.WARNING
            and rec.user_message
            and not rec.user_message.startswith(_ENGINE_NOTES)
        ):
            warn(f"{rec.step_key or 'run'}: {rec.user_message}")


def plan_complete(instance: dg.DagsterInstance, plan_date: str) -> bool:
    """Whether the newest `daily_plan` run of `plan_date` ran the whole job and succeeded. A run
    killed with its process never finishes (STARTED), a failed or cancelled one did not succeed,
    and a run of part of the job is not a plan: all three leave the date to be planned again."""
    runs = instance.get_runs(dg.RunsFilter(job_name="daily_plan", tags={"dagster/partition": plan_date}), limit=1)
    return bool(runs) and runs[0].status == dg.DagsterRunStatus.SUCCESS and not runs[0].asset_selection


def plan_dates_to_run(
    instance: dg.DagsterInstance, dates: list[str], stale_from: str | None = None
) -> tuple[list[str], list[str]]:
    """(already planned, to plan) of a backfill's `dates` in date order: every date from the first
    one not completely planned on is planned (again), because each plan reads the state the plan
    before it left. `stale_from`: the earliest plan a late or corrected file made stale
    (core.replan); it and every date after it are planned again even when their runs succeeded."""
    done = 0
    while done < len(dates) and plan_complete(instance, dates[done]) and not (stale_from and dates[done] >= stale_from):
        done += 1
    return dates[:done], dates[done:]


MASTER_STATE = "_master_ingest.json"  # in the warehouse: the signature of the last successful ingest_master run


def master_unchanged(defs: dg.Definitions, wh, instance: dg.DagsterInstance) -> tuple[str, bool]:
    """The master files' signature now (core.ingestion.master_signature: their bytes, the policy's
    ingestion settings, the validating code), and whether an `ingest_master` run of this command
    already succeeded on the same signature, with its tables still in the warehouse and their
    materialisations in this instance. Then ingesting again would write the same tables, so the
    command does not (the new day's plan pays only for its day)."""
    from .contracts.landing import MASTER_FILES
    from .core.ingestion import master_signature

    settings = defs.resources["policy"].load().ingestion.model_dump_json()
    sig = master_signature(defs.resources["landing"].store(), MASTER_FILES, settings)
    if (wh.read_state(MASTER_STATE) or {}).get("signature") != sig:
        return sig, False
    tables = [f"raw_{f.name}" for f in MASTER_FILES]
    same = all(wh.exists(t) for t in tables) and all(
        instance.get_latest_materialization_event(dg.AssetKey(t)) is not None for t in tables
    )
    return sig, same


def _stale_plans(wh, plan_from: str | None, plan_date: str, warn: Callable[[str], None]) -> str | None:
    """The earliest plan a late or corrected file made stale (core.replan), after this run's
    ingest. A backfill (`plan_from`) plans it again when it is in its range; otherwise say which
    plans are stale and how to re-plan them (under `dagster dev` the `stale_plans` sensor does)."""
    from .core.replan import recorded_inputs, stale_from

    recorded = recorded_inputs(wh)
    stale = stale_from(recorded, wh.sha256)
    if stale is None:
        return None
    latest = str(recorded["plan_date"].max())  # every plan from the stale one on is stale
    if not (plan_from and plan_from <= stale.plan_date and latest <= plan_date):  # this run re-plans them all
        warn(
            f"{stale.reason()}: the plans {stale.plan_date} .. {latest} used data that has changed since; "
            f"`inventory-pipeline run --plan-from {stale.plan_date} --date {latest}` plans them again in date order"
        )
    return stale.plan_date


def run_pipeline(
    plan_date: str | None = None,
    first_date: str | None = None,
    instance: dg.DagsterInstance | None = None,
    log=print,
    log_level: str = "WARNING",
    warn: Callable[[str], None] | None = None,
    plan_from: str | None = None,
    defs: dg.Definitions | None = None,
) -> dict:
    """Run the three jobs (`ingest_master` only when the master files, the ingestion settings or
    the validating code changed since its last successful run: `master_unchanged`); Dagster's
    console log shows `log_level` and above (the full event log is in the instance either way).
    A run that fails stops the runs after it; the returned dict has `results` (job -> in-process
    result, only for the jobs that ran) and `outcome` (Outcome: the failures as
    paragraphs-to-be and the overall kind). `warn` receives one line per ignored stray folder
    under daily/ and per warning an asset logged (default: stderr).

    `plan_from` makes it a backfill: `daily_plan` runs for every landing day from `plan_from` to
    `plan_date`, one run each, in date order, and resumes: the leading dates already planned
    (`plan_complete`) are skipped, and planning starts at the first that is not (a killed or
    failed run's date included). `results["daily_plan"]` is the last plan run; `planned` and
    `skipped` list the dates. `defs`: the code location (default: this package's, from the
    settings)."""
    from .core.landing_dates import landing_dates
    from .core.warehouse import Warehouse

    if defs is None:
        from .definitions import defs

    warn = warn or (lambda m: print(f"warning: {m}", file=sys.stderr, flush=True))
    landing = defs.resources["landing"]
    dates = landing_dates(landing.store().list_dirs("daily"), warn=warn)
    if not dates:
        raise NoLandingDay(f"no daily/YYYY-MM-DD/ folders in the landing zone {landing.uri}")
    for asked in (plan_date, first_date):
        if asked and asked not in dates:
            raise NoLandingDay(
                f"no folder daily/{asked}/ in the landing zone {landing.uri} (landing days: "
                f"{dates[0]} .. {dates[-1]}, {len(dates)} folders)"
            )
    plan_date = plan_date or dates[-1]
    first_date = first_date or dates[0]
    if first_date > plan_date:
        raise NoLandingDay(f"the first landing day {first_date} is after the plan date {plan_date}")
    if plan_from and plan_from not in dates:
        raise NoLandingDay(f"no folder daily/{plan_from}/ in the landing zone {landing.uri}")
    if plan_from and plan_from > plan_date:
        raise NoLandingDay(f"the first plan date {plan_from} is after the plan date {plan_date}")
    instance = instance or dg.DagsterInstance.get()
    quiet = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    results: dict = {}
    outcome = Outcome(plan_date, first_date, results)
    wh = Warehouse(Path(defs.resources["warehouse"].root))

    def finish(name: str, day: str) -> bool:  # the per-run table, warnings and failures; True when it succeeded
        from .core.run_records import format_run_summary
        from .defs.sensors import summarise_run

        res = results[name]
        run = instance.get_run_by_id(res.run_id)
        log("  " + format_run_summary(summarise_run(instance, run)).replace("\n", "\n  "))
        if log_level.upper() in ("ERROR", "CRITICAL"):  # Dagster's console did not show them
            _print_warnings(instance, res.run_id, warn)
        outcome.failures += run_failures(name, res, day, wh)
        outcome.not_run += not_run_steps(res)
        return res.success

    def run_jobs(jobs: list[tuple[str, str, dict]], later: list[str]) -> bool:  # stops at the first failure
        for i, (name, title, kwargs) in enumerate(jobs):
            log(title)
            results[name] = defs.resolve_job_def(name).execute_in_process(
                instance=instance, run_config=quiet, raise_on_error=False, **kwargs
            )
            day = kwargs.get("partition_key", plan_date)
            if not finish(name, day):
                outcome.plan_date = day  # what was not exported: the failed date and every later one
                outcome.not_run += [
                    f"{n} {k['partition_key']}" if "partition_key" in k else n for n, _, k in jobs[i + 1 :]
                ]
                outcome.not_run += later
                return False
        return True

    backfill = [d for d in dates if (plan_from or plan_date) <= d <= plan_date]
    master_sig, master_same = master_unchanged(defs, wh, instance)
    if master_same:
        log(f"master files unchanged since the last ingest_master run ({master_sig[:12]}): not ingested again")
    ingest = [
        *([] if master_same else [("ingest_master", f"ingest master files from {landing.uri}", {})]),
        (
            "ingest_daily",
            f"ingest daily files {first_date} .. {plan_date} (one run)",
            {"tags": {PARTITION_RANGE_START_TAG: first_date, PARTITION_RANGE_END_TAG: plan_date}},
        ),
    ]
    skipped, planned = [], []
    ingested = run_jobs(ingest, [f"daily_plan {d}" for d in backfill])
    if "ingest_master" in results and results["ingest_master"].success:
        wh.write_state(MASTER_STATE, {"signature": master_sig})
    if ingested:
        stale = _stale_plans(wh, plan_from, plan_date, warn)
        skipped, planned = plan_dates_to_run(instance, backfill, stale) if plan_from else ([], backfill)
        for d in skipped:
            log(
                f"plan {d}: already planned (its last daily_plan run succeeded, and what it read is unchanged), skipped"
            )
        run_jobs(
            [
                (
                    "daily_plan",
                    f"plan {d}: dbt build, forecast, pricing, replenishment, rebalancing, decisions, outbox",
                    {"partition_key": d},
                )
                for d in planned
            ],  # fmt: skip
            [],
        )
    return {
        "plan_date": plan_date,
        "first_date": first_date,
        "results": results,
        "outcome": outcome,
        "planned": planned,
        "skipped": skipped,
    }


def apply_planner_answers(instance: dg.DagsterInstance | None = None, log=print) -> dict:
    """One pass of the planner loop without the Dagster daemon (`inventory-pipeline apply-answers`):
    the `planner_files` sensor, the `review_planner` runs it asks for, then the
    `planner_answers_applied` sensor and the `publish_decisions` runs it asks for — the same sensors
    and jobs the daemon runs, in the same order. Their cursors are kept beside the warehouse
    (`_apply_answers_cursors.json`), so a file already applied is not read again; a pass that finds
    nothing runs nothing. Returns {job: [partition, ...]} of the runs, each of which succeeded."""
    import json

    from .config import settings
    from .definitions import defs
    from .defs.sensors import planner_answers_applied, planner_files

    instance = instance or dg.DagsterInstance.get()
    cursors_path = settings().warehouse_dir / "_apply_answers_cursors.json"
    cursors = json.loads(cursors_path.read_text()) if cursors_path.is_file() else {}
    done: dict[str, list[str]] = {}
    for sensor, job in ((planner_files, "review_planner"), (planner_answers_applied, "publish_decisions")):
        resources = {k: defs.resources[k] for k in sensor.required_resource_keys}
        with dg.build_sensor_context(instance=instance, cursor=cursors.get(sensor.name), resources=resources) as ctx:
            result = sensor(ctx)
            requests = [] if isinstance(result, dg.SkipReason) else list(result or [])
            cursors[sensor.name] = ctx.cursor
        for r in requests:
            log(f"{job} {r.partition_key}")
            res = defs.resolve_job_def(job).execute_in_process(
                instance=instance,
                partition_key=r.partition_key,
                tags=r.tags,
                run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}},
                raise_on_error=False,
            )
            if not res.success:
                raise RuntimeError(f"{job} {r.partition_key} failed (run {res.run_id}): see the Dagster event log")
            done.setdefault(job, []).append(r.partition_key)
        cursors_path.parent.mkdir(parents=True, exist_ok=True)
        cursors_path.write_text(json.dumps(cursors, sort_keys=True))
    return done
