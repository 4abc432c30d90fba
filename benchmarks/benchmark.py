"""`make bench`: speed, memory and cost of the asset graph on a simulated network, measured.

    python -m benchmarks.benchmark --scale small|m5|large --out bench

What runs (every number in the results is measured on this machine; nothing is estimated unless
a field says `extrapolated`):

1. generate   the simulated network (`simulation.generate_landing_zone`, Parquet landing files)
              into the bench working folder `data/bench/<scale>/` (own landing zone, warehouse,
              outbox, Dagster instance and MLflow store: the project's own data is not touched);
2. setup      (own process) import of the code location, `ingest_master`, the history up to the
              day before the plan date D as one single-run backfill, MLflow store creation;
3. daily      (own process) one daily partition of the whole graph for plan date D, one stage at
              a time in dependency order, each its own in-process Dagster run: ingest_daily [D]
              -> dbt build -> demand_forecast -> price_recommendations -> replenishment_orders ->
              rebalancing_transfers -> decision_log -> erp_outbox; then the forecast stage's core
              functions once more outside Dagster for a breakdown (read, censoring + uplift, model
              selection CV + fits + intervals, plot);
4. backfill   (own process) the 90 days before D-2: ingestion of the 90 daily partitions as one
              single-run backfill, one dbt build, then the decision stages (one daily_plan run per
              plan date) for the last `--backfill-plan-dates` of them;
5. next days  (own process) D-2 and D-1, the days after the backfill, each as the schedule and the
              landing sensor run a new day: one `daily_cycle` run (its daily files, the incremental
              dbt build, every decision stage, the decision log and the ERP outbox). After 28 plan
              dates of the forecast's 7-day cadence the first is a refit day, the second a reuse day.

Per stage: wall seconds (perf_counter), CPU seconds = user + system of this process (all threads)
plus its finished children (dbt runs as a subprocess), peak resident memory of this process
during the stage (Linux VmHWM, reset before the stage through /proc/self/clear_refs) and of its
children when their high-water mark rose during the stage, and Dagster's own step time.

Every phase after `generate` runs in a fresh Python process (`--phase`, internal) so settings are
read from the bench environment before the code location is imported and one phase's memory does
not inflate the next one's. Results: `<out>/results.json` and `<out>/results.md` (also printed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
import warnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from inventory_pipeline.config import PROJECT_DIR
from inventory_pipeline.core.stages import PLAN_ASSETS

RESULTS_SCHEMA = 1
# history starts here so 730 days end (2026-10-31) before today: Dagster's daily partitions only
# offer days up to yesterday
START_DATE = "2024-11-01"
DAILY_ASSETS = ["raw_pos_sales", "raw_inventory", "raw_receipts", "raw_open_orders", "raw_planner_decisions"]
DECISION_ASSETS = list(PLAN_ASSETS)
PACKAGES = [
    "dagster",
    "dagster-dbt",
    "dbt-core",
    "dbt-duckdb",
    "duckdb",
    "pandas",
    "numpy",
    "pyarrow",
    "pandera",
    "statsforecast",
    "mlflow",
    "cvxpy",
    "scipy",
]


@dataclass(frozen=True)
class Scale:
    """A benchmark scale: the simulated network and the backfill it measures."""

    regions: int
    dcs: int
    stores: int
    skus: int
    suppliers: int
    days: int
    backfill_days: int = 90
    backfill_plan_dates: int = 90  # decision-stage runs in the backfill (the last N of its days)
    burn_in_days: int = 56
    # the days after the backfill measured as whole partitions (phase_next_days): D-2 and D-1 (at
    # M5 scale a refit day, then a reuse day)
    next_days: int = 2
    note: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def sku_locations(self) -> int:
        """Nominal SKU-locations planned each day: every SKU at every store and every DC."""
        return (self.stores + self.dcs) * self.skus


SCALES = {
    # hidden, for the unit test: seconds, not minutes
    # one next day: the unit test checks the machinery, and a second reuse day adds nothing to it
    "tiny": Scale(regions=1, dcs=1, stores=2, skus=8, suppliers=2, days=40, backfill_days=2, backfill_plan_dates=1,
                  burn_in_days=28, next_days=1, note="unit-test scale"),
    "small": Scale(regions=1, dcs=1, stores=4, skus=200, suppliers=3, days=200, backfill_days=90, backfill_plan_dates=5,
                   note="quick check of the machinery (2-3 minutes)"),
    # M5 (Walmart) has 10 stores in 3 states and 3,049 items; DCs and suppliers are the simulator's
    # by default the last 28 of the 90 plan dates run, measured one by one (issue #24: four weeks
    # of the forecast's 7-day model-choice cadence, refit and reuse days apart; at ~100 s per
    # plan date on 2 cores, about 50 of the benchmark's ~60 minutes); --backfill-plan-dates 90
    # measures all of them
    "m5": Scale(regions=3, dcs=3, stores=10, skus=3049, suppliers=6, days=730, backfill_days=90, backfill_plan_dates=28,
                note="M5 scale: 10 stores, 3 DCs, 3,049 SKUs, 2 years"),
    "large": Scale(regions=6, dcs=6, stores=20, skus=6000, suppliers=12, days=730, backfill_days=90,
                   backfill_plan_dates=3, note="twice M5 and more; runnable, not part of the committed results"),
}  # fmt: skip


# ----------------------------------------------------------------------------------------------
# measuring


def _say(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _status_kb(name: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(name + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset this process's resident-memory high-water mark (Linux: VmHWM); False if unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _mb(kb: float | None) -> float | None:
    return None if kb is None else round(kb / 1024, 1)


def _descendants(pid: int | str = "self") -> list[int]:
    """Every live descendant of `pid` (Linux /proc/<pid>/task/<tid>/children)."""
    out = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            kids = [int(k) for k in Path(f"/proc/{pid}/task/{tid}/children").read_text().split()]
        except (OSError, ValueError):
            continue
        for k in kids:
            out += [k, *_descendants(k)]
    return out


class _ChildPeak:
    """Samples the memory high-water mark (VmHWM) of every descendant process started during the
    measurement, every `every` s.

    VmHWM only grows during a process's life, so the last sample before a child exits is its peak
    up to that moment; a child living shorter than one interval can be missed. A child caught
    between fork and exec still shows this process's memory (same command line): skipped."""

    def __init__(self, every: float = 0.1):
        import threading

        self.every, self.peak_kb, self._stop = every, 0, threading.Event()
        self._before = set(_descendants())  # helpers already running (multiprocessing's resource tracker)
        self._cmdline = Path("/proc/self/cmdline").read_bytes() if Path("/proc/self/cmdline").exists() else b""
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            for pid in set(_descendants()) - self._before:
                try:
                    if Path(f"/proc/{pid}/cmdline").read_bytes() == self._cmdline:
                        continue
                    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                        if line.startswith("VmHWM:"):
                            self.peak_kb = max(self.peak_kb, int(line.split()[1]))
                except (OSError, ValueError):
                    pass
            self._stop.wait(self.every)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def _machine_busy_s() -> float | None:
    """CPU seconds the whole machine has been busy (all processes, all CPUs), from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        # user nice system idle iowait irq softirq steal ...: everything but idle and iowait
        return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


@contextmanager
def measure(stage: str, **extra):
    """Measure the block: wall, CPU (self + finished children) and peak RSS. Yields the record,
    which the block may add fields to."""
    rec: dict = {"stage": stage, **extra}
    exact = _reset_peak_rss()
    s0, c0 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    rss0 = _status_kb("VmRSS")
    busy0 = _machine_busy_s()
    t0 = time.perf_counter()
    with _ChildPeak() as children:
        yield rec
    wall = time.perf_counter() - t0
    s1, c1 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_self = (s1.ru_utime + s1.ru_stime) - (s0.ru_utime + s0.ru_stime)
    cpu_children = (c1.ru_utime + c1.ru_stime) - (c0.ru_utime + c0.ru_stime)
    hwm = _status_kb("VmHWM") if exact else None
    busy1 = _machine_busy_s()
    # CPU used meanwhile by processes outside this measurement: high values mean the wall time
    # was inflated by competition for the cores
    other = None if busy0 is None or busy1 is None else max(0.0, (busy1 - busy0) - (cpu_self + cpu_children))
    rec.update(
        {
            "wall_s": round(wall, 3),
            "cpu_s": round(cpu_self + cpu_children, 3),
            "cpu_self_s": round(cpu_self, 3),
            "cpu_children_s": round(cpu_children, 3),
            "peak_rss_mb": _mb(hwm if hwm is not None else s1.ru_maxrss),
            "peak_rss_exact": exact,  # False: the process's peak since it started (no per-stage reset)
            "rss_start_mb": _mb(rss0),
            "rss_end_mb": _mb(_status_kb("VmRSS")),
            # largest child process (dbt) during the stage, sampled; None: no child process seen
            "children_peak_rss_mb": _mb(children.peak_kb) if children.peak_kb else None,
            "other_processes_cpu_s": None if other is None else round(other, 2),
        }
    )


def speed_probe(repeat: int = 3) -> float:
    """Seconds for a fixed single-core workload like the stages' (a numpy sort, a pandas group-by,
    a Python loop), the best of `repeat`. The same code measured 20% apart on this machine within
    one day: a probe at the start and end of a benchmark says how fast the machine ran, so two
    benchmarks are compared at the same machine speed (lower is faster)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    x = rng.random(2_000_000)
    keys = rng.integers(0, 30_000, 2_000_000)
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        np.sort(x)
        pd.DataFrame({"k": keys, "x": x}).groupby("k")["x"].agg(["sum", "mean", "max"])
        sum(i * i for i in range(1_000_000))
        best = min(best, time.perf_counter() - t)
    return round(best, 3)


def machine_info() -> dict:
    from importlib import metadata

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    versions = {}
    for p in PACKAGES:
        try:
            versions[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            versions[p] = None
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    commit, modified = None, None
    try:
        git = ["git", "-C", str(PROJECT_DIR)]
        commit = (
            subprocess.run(
                [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
            ).stdout.strip()
            or None
        )
        # tracked files changed since that commit: the code measured is the commit plus these
        modified = subprocess.run(
            [*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=10
        ).stdout.split("\n")
        modified = sorted(line[3:] for line in modified if line.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return {
        "cpu_model": cpu,
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable,
        "ram_gb": round(mem_kb / 1024 / 1024, 1) if mem_kb else None,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "packages": versions,
        "git_commit": commit,
        "git_modified_files": modified,
    }


# ----------------------------------------------------------------------------------------------
# the bench environment and the phases (run in child processes)


def bench_env(workdir: Path, start_date: str) -> dict:
    """Environment of the phase processes: every path of the pipeline inside `workdir`."""
    env = dict(os.environ)
    for var in ("INVENTORY_PIPELINE_END_DATE", "INVENTORY_PIPELINE_S3_ENDPOINT_URL", "INVENTORY_PIPELINE_POLICY"):
        env.pop(var, None)
    env.update(
        {
            "INVENTORY_PIPELINE_HOME": str(workdir),
            "INVENTORY_PIPELINE_LANDING_URI": str(workdir / "landing"),
            "INVENTORY_PIPELINE_OUTBOX_URI": str(workdir / "outbox"),
            "INVENTORY_PIPELINE_WAREHOUSE_DIR": str(workdir / "warehouse"),
            "INVENTORY_PIPELINE_START_DATE": start_date,
            "MLFLOW_TRACKING_URI": f"sqlite:///{workdir / 'mlflow' / 'mlflow.db'}",
            "INVENTORY_PIPELINE_MLFLOW_ARTIFACTS": str(workdir / "mlflow" / "artifacts"),
            "DAGSTER_HOME": str(workdir / "dagster_home"),
            "PYTHONWARNINGS": "ignore",
        }
    )
    # dbt (a subprocess of the phase) is found next to the interpreter
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


class _Graph:
    """The code location, the instance and helpers to run a subset of it for one partition."""

    QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}

    def __init__(self):
        warnings.filterwarnings("ignore")
        import dagster as dg

        from inventory_pipeline.config import settings
        from inventory_pipeline.core.warehouse import Warehouse
        from inventory_pipeline.definitions import defs
        from inventory_pipeline.defs.dbt import warehouse_models

        self.dg, self.defs = dg, defs
        self.instance = dg.DagsterInstance.get()
        self.settings = settings()
        self.wh = Warehouse(self.settings.warehouse_dir)
        self.dbt_keys = sorted(warehouse_models.keys, key=lambda k: k.to_user_string())
        self.dbt_checks = len(list(warehouse_models.check_keys))

    def run(self, job: str, keys: list | None = None, partition_key: str | None = None, tags: dict | None = None):
        """One in-process run; raises if it fails. Returns (result, run facts)."""
        dg = self.dg
        sel = [k if isinstance(k, dg.AssetKey) else dg.AssetKey(k) for k in keys] if keys else None
        from inventory_pipeline.defs.jobs import without_freshness

        jd = self.defs.resolve_job_def(job)
        jd = without_freshness(jd, sel) if sel else jd
        res = jd.execute_in_process(
            instance=self.instance, run_config=self.QUIET, partition_key=partition_key, tags=tags
        )
        return res, self.facts(res)

    def facts(self, res) -> dict:
        steps = self.instance.get_run_step_stats(res.run_id)
        step_s = {s.step_key: round((s.end_time or 0) - (s.start_time or 0), 3) for s in steps if s.start_time}
        checks = res.get_asset_check_evaluations()
        rows = {}
        for ev in res.get_asset_materialization_events():
            mat = ev.event_specific_data.materialization
            n = mat.metadata.get("dagster/row_count")
            # a single-run backfill emits one materialisation per partition, each carrying the
            # run's total: count each asset once
            if n is not None and mat.asset_key.to_user_string() not in rows:
                rows[mat.asset_key.to_user_string()] = int(n.value)
        return {
            "run_id": res.run_id,
            "success": res.success,
            "step_seconds": step_s,
            "dagster_step_s": round(sum(step_s.values()), 3),
            "materializations": len(res.get_asset_materialization_events()),
            "checks": len(checks),
            "checks_failed": sum(not c.passed for c in checks),
            "rows": rows,
        }


def _days(first: str, last: str) -> list[str]:
    d0, d1 = date.fromisoformat(first), date.fromisoformat(last)
    return [(d0 + timedelta(days=i)).isoformat() for i in range((d1 - d0).days + 1)]


def _shift(d: str, days: int) -> str:
    return (date.fromisoformat(d) + timedelta(days=days)).isoformat()


def _report(rec: dict) -> None:
    extra = f", {rec['dagster_step_s']:.1f} s in Dagster steps" if "dagster_step_s" in rec else ""
    _say(
        f"  {rec['stage']}: {rec['wall_s']:.1f} s wall, {rec['cpu_s']:.1f} s CPU, "
        f"peak {rec['peak_rss_mb']:.0f} MB{extra}"
    )


def phase_setup(a: argparse.Namespace) -> dict:
    from inventory_pipeline.config import settings

    stages = []
    with measure("import code location") as rec:
        g = _Graph()
    _report(rec)
    stages.append(rec)
    with measure("ingest_master", assets=6) as rec:
        _, facts = g.run("ingest_master")
        rec.update(facts)
    _report(rec)
    stages.append(rec)
    from inventory_pipeline.defs.partitions import PARTITION_RANGE_END_TAG, PARTITION_RANGE_START_TAG

    days = _days(a.start_date, _shift(a.plan_date, -1))
    size = a.history_chunk_days or len(days)
    chunks = [days[i : i + size] for i in range(0, len(days), size)]
    _say(f"history: ingest {days[0]} .. {days[-1]} ({len(days)} daily partitions, {len(chunks)} run(s))")
    with measure("ingest history", partitions=len(days), runs=len(chunks), first=days[0], last=days[-1]) as rec:
        acc: dict = {
            "rows": {},
            "dagster_step_s": 0.0,
            "materializations": 0,
            "checks": 0,
            "checks_failed": 0,
            "run_ids": [],
        }
        for c in chunks:
            _, facts = g.run("ingest_daily", tags={PARTITION_RANGE_START_TAG: c[0], PARTITION_RANGE_END_TAG: c[-1]})
            acc["rows"] = {k: acc["rows"].get(k, 0) + v for k, v in facts["rows"].items()}
            acc["run_ids"].append(facts["run_id"])
            for k in ("dagster_step_s", "materializations", "checks", "checks_failed"):
                acc[k] += facts[k]
        rec.update(acc, success=True, dagster_step_s=round(acc["dagster_step_s"], 3))
    _report(rec)
    stages.append(rec)
    # a new MLflow SQLite store takes seconds to create its tables: once, not every day
    with measure("mlflow store") as rec:
        import mlflow

        s = settings()
        Path(s.mlflow_tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        mlflow.MlflowClient(tracking_uri=s.mlflow_tracking_uri).search_experiments()
    _report(rec)
    stages.append(rec)
    return {"stages": stages}


def _forecast_breakdown(g: _Graph, d: str) -> dict:
    """The forecast stage's core functions once more, outside Dagster, to see where its time goes."""
    import tempfile

    from inventory_pipeline.contracts.outputs import DemandForecast
    from inventory_pipeline.core.forecasting import ForecastSettings, adjust_history, prepare_series, run_forecast
    from inventory_pipeline.core.plots import plot_forecasts
    from inventory_pipeline.core.policy import load_policy
    from inventory_pipeline.core.sources import WarehouseSource
    from inventory_pipeline.core.stages import FORECAST
    from inventory_pipeline.core.tracking import fingerprint, log_run
    from inventory_pipeline.core.warehouse import Warehouse

    pol = load_policy(g.settings.policy_path)
    cfg = ForecastSettings.of(pol.forecast)
    out, ctx = [], {}
    with measure("read history, categories, calendar (DuckDB)") as rec:
        inputs = FORECAST.read(WarehouseSource(g.wh), d, cfg)
        ctx["h"] = inputs.history
        rec["rows"] = len(ctx["h"])
    out.append(rec)
    with measure("run_forecast (censoring, uplifts, classes, CV model choice, fits, intervals)") as rec:
        res = run_forecast(ctx["h"], d, cfg, inputs.categories, inputs.calendar)
        ctx["fc"] = res.forecast
        series = ctx["fc"].drop_duplicates(["location_id", "sku_id"])
        rec["series"] = len(series)
        rec["series_by_model"] = series["model"].value_counts().to_dict()
        rec["cv_wape"] = res.metrics.get("cv_wape")
    rec["series_per_second"] = round(rec["series"] / rec["wall_s"], 1) if rec["wall_s"] else None
    out.append(rec)
    with measure("within run_forecast: prepare_series + adjust_history, run on their own") as rec:
        rec["rows"] = len(adjust_history(prepare_series(ctx["h"], d, cfg), cfg, inputs.categories, inputs.calendar)[0])
    out.append(rec)
    with measure("fingerprint (model version)") as rec:
        fingerprint(cfg, pol.tag, ctx["h"])
    out.append(rec)
    with tempfile.TemporaryDirectory() as tmp:
        with measure("plot") as rec:
            plot = plot_forecasts(ctx["h"], ctx["fc"], Path(tmp) / "p.png")
        out.append(rec)
        with measure("contract check (pandera)") as rec:
            DemandForecast.validate(ctx["fc"], lazy=True)
        out.append(rec)
        with measure("Parquet write") as rec:
            Warehouse(Path(tmp)).write("demand_forecast", ctx["fc"], d)
        out.append(rec)
        with measure("MLflow run (params, metrics, plot)") as rec:
            log_run(
                g.settings.mlflow_tracking_uri,
                g.settings.mlflow_artifact_root,
                "benchmark_breakdown",
                run_name=f"breakdown {d}",
                params={"plan_date": d},
                metrics={"series": len(series)},
                artifacts=[plot],
            )
        out.append(rec)
    for r in out:
        _report(r)
    return {
        "note": "the stage's steps re-run outside Dagster after the stage (MLflow into its own experiment, "
        "Parquet into a temporary folder)",
        "steps": out,
    }


def _table_rows(g: _Graph, d: str) -> dict:
    rows = {}
    for t in DAILY_ASSETS + DECISION_ASSETS[:-1]:
        if g.wh.exists(t, d):
            rows[t] = len(g.wh.read(t, d))
    for m in (
        "marts.fct_daily_demand",
        "marts.fct_inventory_positions",
        "marts.dim_products",
        "marts.dim_locations",
        "marts.dim_date",
    ):
        rows[m] = int(g.wh.read_model(f"select count(*) as n from {m}")["n"].iloc[0])
    manifest = Path(g.settings.outbox_uri) / d / "manifest.json"
    if manifest.is_file():
        for name, meta in json.loads(manifest.read_text())["files"].items():
            rows[f"outbox/{name}"] = meta["rows"]
    return rows


def _series(g: _Graph, d: str) -> int:
    fc = g.wh.read("demand_forecast", d)
    return int(fc[["location_id", "sku_id"]].drop_duplicates().shape[0])


def _model_choice(g: _Graph, d: str) -> str | None:
    """ "refit" when the plan chose its forecast models afresh (cross-validation over every
    candidate) or cross-validated and estimated them itself, "reuse" when it reused the last
    choice, parameters and intervals (policy forecast.reselect_every_days, refit_every_days)."""
    if not g.wh.exists("forecast_run", d):
        return None
    run = g.wh.read("forecast_run", d)
    if "reselected" not in run or not len(run):
        return None
    own_cv = "cv_on" in run and str(run["cv_on"].iloc[0])[:10] == d
    return "refit" if bool(run["reselected"].iloc[0]) or own_cv else "reuse"


def _by_model_choice(per_date: list[dict]) -> dict:
    """Per-date wall, CPU and peak RSS, split into the plans that chose afresh and those that reused."""
    out = {}
    for kind in ("refit", "reuse"):
        rows = [p for p in per_date if p.get("forecast_model_choice") == kind]
        if rows:
            walls = sorted(p["wall_s"] for p in rows)
            out[kind] = {
                "plan_dates": len(rows),
                "wall_s_mean": round(sum(walls) / len(rows), 2),
                "wall_s_median": walls[len(walls) // 2],
                "wall_s_max": walls[-1],
                "cpu_s_mean": round(sum(p["cpu_s"] for p in rows) / len(rows), 2),
                "peak_rss_mb_max": max(p["peak_rss_mb"] for p in rows),
            }
    return out


def phase_daily(a: argparse.Namespace) -> dict:
    d = a.plan_date
    stages = []
    with measure("import code location") as rec:
        g = _Graph()
    _report(rec)
    imp = rec
    plan = [("ingest_daily", "ingest_daily", DAILY_ASSETS), ("dbt build", "daily_plan", g.dbt_keys)]
    plan += [(name, "daily_plan", [name]) for name in DECISION_ASSETS]
    _say(f"daily partition {d}: {len(plan)} stages, one in-process run each")
    for name, job, keys in plan:
        with measure(name, assets=len(keys)) as rec:
            _, facts = g.run(job, keys, partition_key=d)
            rec.update(facts)
        _report(rec)
        stages.append(rec)
    series = _series(g, d)
    fc = next(s for s in stages if s["stage"] == "demand_forecast")
    total = _total(stages)
    sku_locations = SCALES[a.scale].sku_locations
    return {
        "plan_date": d,
        "import": imp,
        "stages": stages,
        "total": total,
        "series": series,
        "series_per_second": round(series / fc["wall_s"], 2),
        "series_per_second_dagster_step": round(series / fc["dagster_step_s"], 2) if fc.get("dagster_step_s") else None,
        "sku_locations": sku_locations,
        "cpu_s_per_sku_location": round(total["cpu_s"] / sku_locations, 6),
        "cpu_s_per_series": round(total["cpu_s"] / series, 6) if series else None,
        "rows": _table_rows(g, d),
        "forecast_breakdown": _forecast_breakdown(g, d),
    }


def _total(stages: list[dict]) -> dict:
    return {
        "wall_s": round(sum(s["wall_s"] for s in stages), 3),
        "cpu_s": round(sum(s["cpu_s"] for s in stages), 3),
        "peak_rss_mb": max(s["peak_rss_mb"] or 0 for s in stages),
        "children_peak_rss_mb": max((s["children_peak_rss_mb"] or 0 for s in stages), default=0) or None,
        "dagster_step_s": round(sum(s.get("dagster_step_s", 0) for s in stages), 3),
        "other_processes_cpu_s": round(sum(s.get("other_processes_cpu_s") or 0 for s in stages), 2),
    }


def _plan_dates(g, plan_dates: list, a: argparse.Namespace) -> tuple[list, int, dict]:
    """The decision stages of each plan date in turn (until the time budget, if any): per-date
    wall times, the series forecast, and the totals the stage record gets."""
    n = len(plan_dates)
    per_date, step_sums, series, checks, checks_failed, deadline = [], {}, 0, 0, 0, None
    if a.backfill_budget_minutes:
        deadline = time.perf_counter() + 60 * a.backfill_budget_minutes
    t0 = time.perf_counter()
    for i, d in enumerate(plan_dates, 1):
        with measure(f"plan date {d}") as one:  # its own wall, CPU and peak RSS (VmHWM reset per date)
            _, facts = g.run("daily_plan", DECISION_ASSETS, partition_key=d)
        wall = one["wall_s"]
        s = _series(g, d)
        series += s
        checks += facts["checks"]
        checks_failed += facts["checks_failed"]
        for k, v in facts["step_seconds"].items():
            step_sums[k] = round(step_sums.get(k, 0) + v, 3)
        per_date.append(
            {
                "plan_date": d,
                "wall_s": round(wall, 3),
                "cpu_s": one["cpu_s"],
                "peak_rss_mb": one["peak_rss_mb"],
                "forecast_model_choice": _model_choice(g, d),
                "dagster_step_s": facts["dagster_step_s"],
                "series": s,
            }
        )
        done = time.perf_counter() - t0
        _say(
            f"  plan date {d} ({i}/{n}): {wall:.1f} s; {done / 60:.1f} min so far, "
            f"about {done / i * (n - i) / 60:.1f} min to go"
        )
        if deadline and time.perf_counter() > deadline and i < n:
            _say(f"  budget of {a.backfill_budget_minutes} min reached after {i} of {n} plan dates: stopping")
            break
    totals = {
        "plan_dates": len(per_date),
        "first_plan_date": per_date[0]["plan_date"] if per_date else None,
        "last_plan_date": per_date[-1]["plan_date"] if per_date else None,
        "checks": checks,
        "checks_failed": checks_failed,
        "dagster_step_s": round(sum(step_sums.values()), 3),
        "step_seconds": step_sums,
    }
    return per_date, series, totals


def _backfill_summary(a, first, last, window, n, imp, stages, per_date, series, rec) -> dict:
    """The backfill's results: per plan date and their spread, throughput, and an extrapolation to
    the whole window when fewer plan dates were measured (labelled as such)."""
    step_sums = rec["step_seconds"]
    measured = len(per_date)
    fc_s = step_sums.get("demand_forecast", 0)
    walls = sorted(p["wall_s"] for p in per_date)
    out = {
        "window": [first, last],
        "partitions_ingested": len(window),
        "plan_dates_requested": n,
        "plan_dates_measured": measured,
        "import": imp,
        "stages": stages,
        "total": _total(stages),
        "per_plan_date": per_date,
        "decision_wall_s_per_plan_date": {
            "mean": round(sum(walls) / measured, 3) if measured else None,
            "min": walls[0] if walls else None,
            "median": walls[len(walls) // 2] if walls else None,
            "max": walls[-1] if walls else None,
        },
        "by_model_choice": _by_model_choice(per_date),
        "series_forecast": series,
        "series_per_second": round(series / fc_s, 2) if fc_s else None,
        "sku_locations": SCALES[a.scale].sku_locations,
        "cpu_s_per_sku_location_plan_date": round(rec["cpu_s"] / measured / SCALES[a.scale].sku_locations, 6)
        if measured
        else None,
    }
    if measured < len(window):
        mean = out["decision_wall_s_per_plan_date"]["mean"]
        cpu_mean = rec["cpu_s"] / measured if measured else None
        out["extrapolated"] = {
            "label": f"EXTRAPOLATION, not measured: {len(window)} plan dates x the measured mean of {measured}",
            "decision_stages_wall_s": round(mean * len(window), 1) if mean else None,
            "decision_stages_cpu_s": round(cpu_mean * len(window), 1) if cpu_mean else None,
            "backfill_total_wall_s": round(stages[0]["wall_s"] + stages[1]["wall_s"] + mean * len(window), 1)
            if mean
            else None,
        }
    return out


def phase_backfill(a: argparse.Namespace) -> dict:
    from inventory_pipeline.defs.partitions import PARTITION_RANGE_END_TAG, PARTITION_RANGE_START_TAG

    nxt = SCALES[a.scale].next_days
    first, last = _shift(a.plan_date, -a.backfill_days - nxt), _shift(a.plan_date, -1 - nxt)
    window = _days(first, last)
    n = min(a.backfill_plan_dates, len(window))
    plan_dates = window[len(window) - n :]
    stages = []
    with measure("import code location") as rec:
        g = _Graph()
    _report(rec)
    imp = rec
    _say(
        f"backfill {first} .. {last}: ingest {len(window)} partitions (one run), dbt build, "
        f"decision stages for {n} plan date(s) {plan_dates[0] if plan_dates else '-'} .. {last}"
    )
    with measure("ingest_daily", partitions=len(window), first=first, last=last) as rec:
        _, facts = g.run("ingest_daily", tags={PARTITION_RANGE_START_TAG: first, PARTITION_RANGE_END_TAG: last})
        rec.update(facts)
    _report(rec)
    stages.append(rec)
    with measure("dbt build", assets=len(g.dbt_keys)) as rec:
        _, facts = g.run("daily_plan", g.dbt_keys, partition_key=last)
        rec.update(facts)
    _report(rec)
    stages.append(rec)
    with measure("decision stages", plan_dates_requested=n) as rec:
        per_date, series, totals = _plan_dates(g, plan_dates, a)
    rec.update(totals)
    # each plan date reset the high-water mark for its own peak: the stage's peak is the largest
    rec["peak_rss_mb"] = max([rec["peak_rss_mb"], *(p["peak_rss_mb"] for p in per_date)])
    _report(rec)
    stages.append(rec)
    out = _backfill_summary(a, first, last, window, n, imp, stages, per_date, series, rec)
    return out


def phase_next_days(a: argparse.Namespace) -> dict:
    """The days after the backfill, each one partition end to end as the schedule and the landing
    sensor run a new day: one `daily_cycle` run (ingest, incremental dbt, every stage, outbox)."""
    with measure("import code location") as imp:
        g = _Graph()
    _report(imp)
    days = [_shift(a.plan_date, -k) for k in range(SCALES[a.scale].next_days, 0, -1)]
    _say(f"next days {days[0]} .. {days[-1]}: one daily_cycle run each (ingest, dbt, stages, outbox)")
    partitions = []
    for d in days:
        with measure(f"partition {d}") as rec:
            _, facts = g.run("daily_cycle", partition_key=d)
            rec.update(facts)
        rec.update(plan_date=d, forecast_model_choice=_model_choice(g, d))
        _report(rec)
        partitions.append(rec)
    return {"import": imp, "partitions": partitions, "launched": _launched_run(days[-1])}


def _launched_run(d: str) -> dict:
    """The last next day planned again as a deployment runs it: a new process (`dagster job
    execute`, as the daemon's run worker) that imports the code location and every library its
    steps use, then runs `daily_cycle` for `d` with the code location's executor. Its wall is what
    a launched run costs; the runs above share a process that had already imported everything."""
    cmd = [
        str(Path(sys.executable).parent / "dagster"),
        *("job", "execute", "-m", "inventory_pipeline.definitions", "-j", "daily_cycle"),
        *("--tags", json.dumps({"dagster/partition": d})),
    ]
    log = Path(os.environ["INVENTORY_PIPELINE_HOME"]) / "launched_run.log"
    _say(f"partition {d} again in a new process, as a launched run (log: {log})")
    with measure(f"partition {d}, a new process") as rec, log.open("w") as out:
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=PROJECT_DIR)
    rec.update(plan_date=d, returncode=proc.returncode)
    _report(rec)
    if proc.returncode != 0:
        raise RuntimeError(f"the launched run of {d} failed (exit {proc.returncode}); see {log}")
    return rec


PHASES = {"setup": phase_setup, "daily": phase_daily, "backfill": phase_backfill, "next_days": phase_next_days}


# ----------------------------------------------------------------------------------------------
# the driver


def _generate(scale: Scale, workdir: Path, fmt: str, reuse: bool) -> tuple[dict, dict]:
    from inventory_pipeline.simulation import NetworkConfig, generate_landing_zone

    cfg = NetworkConfig(
        regions=scale.regions,
        dcs=scale.dcs,
        stores=scale.stores,
        skus=scale.skus,
        suppliers=scale.suppliers,
        days=scale.days,
        start_date=START_DATE,
        seed=42,
        burn_in_days=scale.burn_in_days,
    )
    landing = workdir / "landing"
    marker = workdir / "network.json"
    want = {"config": cfg.to_dict(), "format": fmt}
    if reuse and marker.is_file() and (landing / "daily").is_dir():
        have = json.loads(marker.read_text())
        if have.get("network") == want:
            _say(f"reusing the landing zone in {landing} (generated earlier with the same network and format)")
            return have["summary"], {**have["generate"], "reused": True}
    if landing.exists():
        shutil.rmtree(landing)
    _say(
        f"generating {scale.stores} stores, {scale.dcs} DCs, {scale.skus} SKUs, {scale.days} days ({fmt}) into "
        f"{landing}"
    )
    last = [0.0]

    def progress(msg: str) -> None:  # a line every 15 s
        if time.perf_counter() - last[0] > 15:
            last[0] = time.perf_counter()
            _say(f"  {msg}")

    with measure("generate") as rec:
        summary = generate_landing_zone(cfg, landing, fmt=fmt, write_truth=False, progress=progress)
    rec["reused"] = False
    rec["landing_mb"] = round(sum(p.stat().st_size for p in landing.rglob("*") if p.is_file()) / 2**20, 1)
    summary = {k: v for k, v in summary.items() if k != "config"}
    marker.write_text(json.dumps({"network": want, "summary": summary, "generate": rec}, indent=2, default=str))
    _report(rec)
    return summary, rec


def _run_phase(name: str, a: argparse.Namespace, workdir: Path, plan_date: str) -> dict:
    """Run phase(s) `name` ("setup" or "setup,daily,backfill") in a fresh process; their stdout
    (dbt's log) goes to <workdir>/<name>.log, progress lines to stderr."""
    tag = name.replace(",", "_")
    result, log = workdir / f"phase_{tag}.json", workdir / f"phase_{tag}.log"
    result.unlink(missing_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.benchmark",
        "--phase",
        name,
        "--scale",
        a.scale,
        "--plan-date",
        plan_date,
        "--start-date",
        START_DATE,
        "--phase-result",
        str(result),
        "--backfill-days",
        str(a.backfill_days),
        "--backfill-plan-dates",
        str(a.backfill_plan_dates),
        "--backfill-budget-minutes",
        str(a.backfill_budget_minutes or 0),
        "--history-chunk-days",
        str(a.history_chunk_days or 0),
    ]
    _say(f"phase {name} (own process; its stdout goes to {log})")
    t0 = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.run(cmd, env=bench_env(workdir, START_DATE), cwd=PROJECT_DIR, stdout=out)
    if proc.returncode != 0 or not result.is_file():
        raise SystemExit(f"benchmark phase {name} failed (exit code {proc.returncode}); see above and {log}")
    out = json.loads(result.read_text())
    for v in out.values():
        v["process_wall_s"] = round(time.perf_counter() - t0, 3)
    return out


def _fresh_workdir(workdir: Path) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    for sub in ("warehouse", "outbox", "dagster_home", "mlflow"):
        shutil.rmtree(workdir / sub, ignore_errors=True)
    (workdir / "dagster_home").mkdir()
    (workdir / "dagster_home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")


def _lock(workdir: Path):
    """One benchmark per working folder: a second run would wipe the first one's state mid-run."""
    import fcntl

    workdir.mkdir(parents=True, exist_ok=True)
    f = open(workdir / ".bench.lock", "w")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as busy:
        f.close()
        raise SystemExit(
            f"another benchmark is running in {workdir}: wait for it, or give this one its own --workdir"
        ) from busy
    return f


def run(a: argparse.Namespace) -> dict:
    scale = SCALES[a.scale]
    a.backfill_days = a.backfill_days or scale.backfill_days
    a.backfill_plan_dates = a.backfill_plan_dates or scale.backfill_plan_dates
    workdir = Path(a.workdir or PROJECT_DIR / "data" / "bench" / a.scale).resolve()
    lock = _lock(workdir)  # held until this function returns
    started, load0 = datetime.now(UTC), list(os.getloadavg())
    probe0 = speed_probe()
    _say(f"speed probe: {probe0:.3f} s")
    t0 = time.perf_counter()
    _fresh_workdir(workdir)
    summary, gen = _generate(scale, workdir, a.format, a.reuse_landing)
    plan_date = summary["last_date"]
    if a.backfill_days + scale.next_days >= scale.days:  # the window ends next_days before D
        raise SystemExit(
            f"--backfill-days {a.backfill_days} must be shorter than the history ({scale.days} days) "
            f"less the {scale.next_days} days after the backfill"
        )
    if a.one_process:
        phases = _run_phase(",".join(PHASES), a, workdir, plan_date)
    else:
        phases = {k: v for name in PHASES for k, v in _run_phase(name, a, workdir, plan_date).items()}
    total = time.perf_counter() - t0
    probe1 = speed_probe()
    _say(f"speed probe: {probe1:.3f} s (at the start: {probe0:.3f} s)")
    measured = phases["daily"]["stages"] + phases["backfill"]["stages"]
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    wall = sum(s["wall_s"] for s in measured)
    other = sum(s.get("other_processes_cpu_s") or 0 for s in measured)
    contention = {
        "other_processes_cpu_s": round(other, 1),
        "share_of_capacity": round(other / (wall * cpus), 4) if wall else None,
        "note": "CPU time other processes on the machine used during the measured daily and backfill stages, "
        "as a share of all cores over those stages' wall time (from /proc/stat); near 0 = a quiet machine",
        "load_average_at_start": load0,
        "load_average_at_end": list(os.getloadavg()),
    }
    results = {
        "schema": RESULTS_SCHEMA,
        "scale": a.scale,
        "network": {
            **{k: v for k, v in asdict(scale).items() if k not in ("extra", "note")},
            "start_date": START_DATE,
            "seed": 42,
            "landing_format": a.format,
            "sku_locations": scale.sku_locations,
            "note": scale.note,
        },
        "history": summary,
        "plan_date": plan_date,
        "started_at": started.isoformat(timespec="seconds"),
        "total_wall_s": round(total, 1),
        "machine": {**machine_info(), "speed_probe_s": {"start": probe0, "end": probe1}},
        "contention": contention,
        "workdir": str(workdir),
        # where the forecast ran (the stages' resources read these; unset = local, this process)
        "settings": {
            "policy": "packaged default",
            "forecast_engine": os.environ.get("INVENTORY_PIPELINE_FORECAST_ENGINE") or "local",
            "dask_scheduler": os.environ.get("INVENTORY_PIPELINE_DASK_SCHEDULER"),
        },
        "generate": gen,
        "setup": phases["setup"],
        "daily": phases["daily"],
        "backfill": phases["backfill"],
        "next_days": phases["next_days"],
    }
    lock.close()
    return results


# ----------------------------------------------------------------------------------------------
# the report


def _f(x, nd: int = 1) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:,.2f}" if nd == 1 and 0 < abs(x) < 1 else f"{x:,.{nd}f}"
    return f"{x:,}"


def _stage_rows(stages: list[dict]) -> list[str]:
    lines = [
        "| stage | wall s | CPU s | of which child processes | peak RSS MB | RSS at start MB | largest child MB "
        "| Dagster step s | rows written | other processes' CPU s |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for s in stages:
        rows = sum(s.get("rows", {}).values()) if s.get("rows") else None
        lines.append(
            f"| {s['stage']} | {_f(s['wall_s'])} | {_f(s['cpu_s'])} | {_f(s['cpu_children_s'])} | "
            f"{_f(s['peak_rss_mb'], 0)} | {_f(s['rss_start_mb'], 0)} | {_f(s['children_peak_rss_mb'], 0)} | "
            f"{_f(s.get('dagster_step_s'))} | {_f(rows)} | {_f(s.get('other_processes_cpu_s'))} |"
        )
    return lines


def _total_row(t: dict) -> str:
    return (
        f"| **total** | **{_f(t['wall_s'])}** | **{_f(t['cpu_s'])}** | | **{_f(t['peak_rss_mb'], 0)}** | | "
        f"{_f(t['children_peak_rss_mb'], 0)} | {_f(t['dagster_step_s'])} | | {_f(t.get('other_processes_cpu_s'))} |"
    )


def render_markdown(r: dict) -> str:
    m, n = r["machine"], r["network"]
    pk = m["packages"]
    lines = [
        f"# Benchmark, scale `{r['scale']}`: {n['stores']} stores, {n['dcs']} DCs, {n['skus']:,} SKUs, "
        f"{n['days']} days",
        "",
        f"Machine: {m['cpu_model']}, {m['usable_cpus']} CPUs, {m['ram_gb']} GB RAM, {m['os']}, Python {m['python']}; "
        f"dagster {pk.get('dagster')}, dbt-core {pk.get('dbt-core')} + dbt-duckdb {pk.get('dbt-duckdb')}, "
        f"duckdb {pk.get('duckdb')}, statsforecast {pk.get('statsforecast')}, mlflow {pk.get('mlflow')}, "
        f"pandas {pk.get('pandas')}. Commit {m.get('git_commit')}, run {r['started_at']}, "
        f"whole benchmark {r['total_wall_s'] / 60:.1f} min wall.",
        "",
        *_probe_line(m),
        f"Other processes used {r['contention']['share_of_capacity']:.1%} of the machine's CPU capacity during the "
        f"measured stages ({r['contention']['other_processes_cpu_s']:,.0f} CPU s)"
        + (
            " — the wall times below are inflated by that competition."
            if r["contention"]["share_of_capacity"] > 0.05
            else " (a quiet machine)."
        ),
        "",
        f"Network: {n['regions']} regions, {n['suppliers']} suppliers, history {r['history']['first_date']} .. "
        f"{r['history']['last_date']} ({n['landing_format']} landing files), {n['sku_locations']:,} SKU-locations "
        f"(stores + DCs) x SKUs. Plan date D = {r['plan_date']}.",
        "",
    ]
    lines += _daily_section(r) + _backfill_section(r) + _next_days_section(r) + _setup_section(r)
    return "\n".join(lines)


def _probe_line(m: dict) -> list[str]:
    p = m.get("speed_probe_s")
    if not p:
        return []
    return [
        f"Speed probe (`speed_probe`, a fixed numpy/pandas/Python workload on one core; lower is faster): "
        f"{p['start']:.3f} s at the start, {p['end']:.3f} s at the end.",
        "",
    ]


def _daily_section(r: dict) -> list[str]:
    """The benchmark report's daily partition: every stage, throughput, the forecast breakdown."""
    d = r["daily"]
    dt = d["total"]
    return [
        f"## One daily partition (D = {d['plan_date']}): every stage, in dependency order",
        "",
        *_stage_rows(d["stages"]),
        _total_row(dt),
        "",
        f"- series forecast: {d['series']:,} store x SKU series; **{_f(d['series_per_second'])} series/s** "
        f"(demand_forecast stage wall: CV model choice + fits + intervals + plots + MLflow + Parquet + checks)",
        f"- CPU per SKU-location (whole daily plan): **{d['cpu_s_per_sku_location'] * 1000:.2f} ms** "
        f"({_f(dt['cpu_s'])} CPU s / {d['sku_locations']:,}); per forecast series "
        f"{d['cpu_s_per_series'] * 1000:.2f} ms",
        f"- importing the code location (once per process, not in the total): {_f(d['import']['wall_s'])} s",
        "",
        "Forecast stage breakdown (its core functions re-run outside Dagster):",
        "",
        "| step | wall s | CPU s | peak RSS MB | RSS at start MB |",
        "|---|--:|--:|--:|--:|",
        *[
            f"| {s['stage']} | {_f(s['wall_s'])} | {_f(s['cpu_s'])} | {_f(s['peak_rss_mb'], 0)} | "
            f"{_f(s['rss_start_mb'], 0)} |"
            for s in d["forecast_breakdown"]["steps"]
        ],
        "",
        *[
            f"run_forecast alone: {_f(s['series_per_second'])} series/s ("
            + ", ".join(f"{k} {v:,}" for k, v in s.get("series_by_model", {}).items())
            + ")."
            for s in d["forecast_breakdown"]["steps"]
            if s.get("series_per_second")
        ],
        "",
    ]


def _backfill_section(r: dict) -> list[str]:
    """The benchmark report's backfill: stages, per plan date, and any extrapolation (labelled)."""
    b = r["backfill"]
    bt = b["total"]
    lines = [
        f"## {b['partitions_ingested']}-day backfill ({b['window'][0]} .. {b['window'][1]})",
        "",
        *_stage_rows(b["stages"]),
        _total_row(bt),
        "",
        f"- decision stages measured for **{b['plan_dates_measured']} of {b['partitions_ingested']} plan dates** "
        f"({b['per_plan_date'][0]['plan_date'] if b['per_plan_date'] else '-'} .. "
        f"{b['per_plan_date'][-1]['plan_date'] if b['per_plan_date'] else '-'}), one daily_plan run each; "
        f"per plan date: mean {_f(b['decision_wall_s_per_plan_date']['mean'])} s, "
        f"min {_f(b['decision_wall_s_per_plan_date']['min'])} s, max {_f(b['decision_wall_s_per_plan_date']['max'])} s",
        f"- series forecast: {b['series_forecast']:,} in total, **{_f(b['series_per_second'])} series/s** "
        f"(Dagster step time of demand_forecast)",
        f"- CPU per SKU-location and plan date (decision stages): "
        f"{(b['cpu_s_per_sku_location_plan_date'] or 0) * 1000:.2f} ms",
        "- time per decision stage, summed over the plan dates (Dagster step time): "
        + ", ".join(f"{k} {v:,.1f} s" for k, v in b["stages"][-1].get("step_seconds", {}).items()),
    ]
    for kind, k in b.get("by_model_choice", {}).items():
        lines.append(
            f"- {kind} days (forecast model choice {'made afresh' if kind == 'refit' else 'reused'}): "
            f"{k['plan_dates']} plan dates, wall mean {_f(k['wall_s_mean'])} s (median {_f(k['wall_s_median'])}, "
            f"max {_f(k['wall_s_max'])}), CPU mean {_f(k['cpu_s_mean'])} s, peak RSS {k['peak_rss_mb_max']:,} MB"
        )
    if b["per_plan_date"] and "cpu_s" in b["per_plan_date"][0]:
        lines += ["", "| plan date | model choice | wall s | CPU s | peak RSS MB |", "|---|---|--:|--:|--:|"]
        lines += [
            f"| {p['plan_date']} | {p.get('forecast_model_choice') or '-'} | {_f(p['wall_s'])} | {_f(p['cpu_s'])} "
            f"| {p['peak_rss_mb']:,} |"
            for p in b["per_plan_date"]
        ]
        lines.append("")
    if b.get("extrapolated"):
        e = b["extrapolated"]
        lines += [
            f"- **{e['label']}**: decision stages {_f(e['decision_stages_wall_s'])} s wall, "
            f"{_f(e['decision_stages_cpu_s'])} s CPU; whole backfill {_f(e['backfill_total_wall_s'])} s wall "
            f"({e['backfill_total_wall_s'] / 3600:.1f} h)"
        ]
    return lines


def _next_days_section(r: dict) -> list[str]:
    """The benchmark report's days after the backfill: each partition as one run, its steps."""
    parts = r.get("next_days", {}).get("partitions", [])
    if not parts:
        return []
    steps = sorted({k for p in parts for k in p["step_seconds"]}, key=lambda k: -parts[-1]["step_seconds"].get(k, 0))
    head = " | ".join(f"{p['plan_date']} ({p['forecast_model_choice'] or '-'})" for p in parts)
    lines = [
        "",
        "## The days after the backfill: one partition end to end, one `daily_cycle` run each",
        "",
        "Each run ingests the day's files, builds the dbt models incrementally and runs every stage, the decision "
        "log and the ERP outbox, as the schedule and the landing sensor do for a new day. Importing the code "
        f"location ({_f(r['next_days']['import']['wall_s'])} s, once per process) is not in the run's wall.",
        "",
        f"| | {head} |",
        "|---|" + "--:|" * len(parts),
        "| **run wall s** | " + " | ".join(f"**{_f(p['wall_s'])}**" for p in parts) + " |",
        "| CPU s | " + " | ".join(_f(p["cpu_s"]) for p in parts) + " |",
        "| peak RSS MB | " + " | ".join(_f(p["peak_rss_mb"], 0) for p in parts) + " |",
        "| Dagster steps, s | " + " | ".join(_f(p["dagster_step_s"]) for p in parts) + " |",
    ]
    lines += [f"| {k} | " + " | ".join(_f(p["step_seconds"].get(k)) for p in parts) + " |" for k in steps[:12]]
    rest = steps[12:]
    if rest:
        lines.append(
            f"| {len(rest)} other steps | "
            + " | ".join(_f(sum(p["step_seconds"].get(k, 0) for k in rest)) for p in parts)
            + " |"
        )
    run = r["next_days"].get("launched")  # results before 2026-12-07 have none
    if run:
        lines += [
            "",
            f"**{run['plan_date']} again as a launched run: {_f(run['wall_s'])} s** (CPU {_f(run['cpu_s'])} s, "
            f"largest process {_f(run.get('children_peak_rss_mb'), 0)} MB): `dagster job execute` in a new process, as "
            "the daemon's run worker does, so the wall includes the process's start and every import.",
        ]
    return lines


def _setup_section(r: dict) -> list[str]:
    """The benchmark report's setup steps (not in the totals) and the daily partition's rows."""
    d = r["daily"]
    s = r["setup"]["stages"]
    g = r["generate"]
    return [
        "",
        "## Setup (before the measured day; not in the totals above)",
        "",
        "| step | wall s | CPU s | peak RSS MB | rows written |",
        "|---|--:|--:|--:|--:|",
        f"| generate the network (simulator){' — reused, measured earlier' if g.get('reused') else ''} | "
        f"{_f(g['wall_s'])} | {_f(g['cpu_s'])} | {_f(g['peak_rss_mb'], 0)} | {_f(g.get('landing_mb'))} MB on disk |",
        *[
            f"| {x['stage']}{' (' + str(x['partitions']) + ' partitions, one run)' if x.get('partitions') else ''} | "
            f"{_f(x['wall_s'])} | {_f(x['cpu_s'])} | {_f(x['peak_rss_mb'], 0)} | "
            f"{_f(sum(x['rows'].values()) if x.get('rows') else None)} |"
            for x in s
        ],
        "",
        "Rows in the daily partition: " + ", ".join(f"{k} {v:,}" for k, v in d["rows"].items()) + ".",
        "",
    ]


def write_results(results: dict, out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    js, md = out / "results.json", out / "results.md"
    js.write_text(json.dumps(results, indent=2, default=str) + "\n")
    md.write_text(render_markdown(results))
    return js, md


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.benchmark",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--scale",
        choices=list(SCALES),
        default="m5",
        help="small (2-3 min), m5 (10 stores, 3 DCs, 3,049 SKUs, 730 days) or large",
    )
    p.add_argument("--out", default="bench", help="folder for results.json and results.md")
    p.add_argument(
        "--workdir", help="bench working folder (default: data/bench/<scale>/); its pipeline state is replaced"
    )
    p.add_argument("--format", choices=["parquet", "csv"], default="parquet", help="landing file format")
    p.add_argument("--backfill-days", type=int, default=0, help="days in the backfill (default: the scale's, 90)")
    p.add_argument(
        "--backfill-plan-dates",
        type=int,
        default=0,
        help="plan dates of the backfill whose decision stages run (the last N; default: the scale's)",
    )
    p.add_argument(
        "--backfill-budget-minutes",
        type=float,
        default=0,
        help="stop the backfill's decision stages after this many minutes (0 = no limit); "
        "the results say how many plan dates were measured",
    )
    p.add_argument(
        "--history-chunk-days",
        type=int,
        default=0,
        help="load the history before D in runs of this many partitions (default 0: one run; "
        "a 729-day run at M5 scale peaks at about 11 GB)",
    )
    p.add_argument(
        "--reuse-landing",
        action="store_true",
        help="reuse the landing zone of an earlier run with the same network (generation is then not re-measured)",
    )
    p.add_argument(
        "--one-process",
        action="store_true",
        help="run setup, daily and backfill in one process (faster: one import; memory is then not isolated per phase)",
    )
    # internal: phase(s) in their own process
    p.add_argument("--phase", help=argparse.SUPPRESS)
    p.add_argument("--phase-result", help=argparse.SUPPRESS)
    p.add_argument("--plan-date", help=argparse.SUPPRESS)
    p.add_argument("--start-date", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    if a.phase:
        out = {name: PHASES[name](a) for name in a.phase.split(",")}
        Path(a.phase_result).write_text(json.dumps(out, indent=2, default=str))
        return 0
    results = run(a)
    js, md = write_results(results, Path(a.out))
    print(md.read_text())
    print(f"wrote {js} and {md}; bench working data in {results['workdir']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
