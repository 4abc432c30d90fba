"""Carried fits against re-estimating every plan, on Walmart's M5 sales (real data).

For consecutive plan dates the forecast stage runs twice on the same history, with the same
model choice (the first plan's; `reselect_every_days` is not what is compared):

- `refit`: every plan estimates the chosen models' parameters (`refit_every_days: 1`);
- `carried`: the policy's cadence (`refit_every_days: 7`): the first plan of each week estimates
  and cross-validates, the others run its AutoETS parameters forward over their own series
  (core.forecast_fits) with its intervals (core.forecasting.CvState), as the asset does.

With `--family mlforecast` (or `combined`) the same comparison is the global model's: `carried`
predicts with the week's first plan's LightGBM models (core.forecast_global_fits) and CV, `refit`
trains them every plan. With `--dask-workers N` both runs go through the Dask engine on a local
cluster of N one-thread workers (statsforecast through fugue, the global model through
mlforecast's `DistributedMLForecast`).

Each plan's mean forecast is scored against M5's realised sales of the next 28 days (WAPE and
bias, all series and the AutoETS series alone) and the share of days inside its 80% interval
(p10-p90), and each run_forecast is timed. Results:
<out>/refit_cadence.{json,md}.

    python -m benchmarks.refit_cadence --out bench [--stores CA_1 TX_2] [--plans 14] [--family mlforecast]
        [--dask-workers 2]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd

HORIZON = 28


def _score(fc: pd.DataFrame, panel, pos: pd.Series, origin: int, horizons: int) -> dict:
    """WAPE and bias of the forecast's mean over days 1..`horizons`, all series and AutoETS's."""
    f = fc[fc["horizon"] <= horizons]
    idx = pos.reindex((f["location_id"] + "|" + f["sku_id"]).to_numpy()).to_numpy()
    a = panel.units[idx, origin + f["horizon"].to_numpy() - 1].astype(float)
    m = f["mean"].to_numpy(float)
    ets = (f["model"] == "AutoETS").to_numpy()

    def wape(sel):  # nan where no series has the model (the global model's families)
        return float(np.abs(m[sel] - a[sel]).sum() / max(a[sel].sum(), 1e-9)) if sel.any() else float("nan")

    def bias(sel):
        return float((m[sel] - a[sel]).sum() / max(a[sel].sum(), 1e-9)) if sel.any() else float("nan")

    every = np.ones(len(m), bool)
    inside = (a >= f["p10"].to_numpy(float)) & (a <= f["p90"].to_numpy(float))
    return {
        "wape": wape(every),
        "bias": bias(every),
        "coverage_80": float(inside.mean()),
        "wape_autoets": wape(ets),
        "bias_autoets": bias(ets),
        "coverage_80_autoets": float(inside[ets].mean()) if ets.any() else float("nan"),
    }


def run(stores: tuple[str, ...], plans: int, log=print, family: str | None = None, engine: str = "local") -> dict:
    from inventory_pipeline.config import settings
    from inventory_pipeline.core.forecasting import ForecastSettings, reusable_cv, run_forecast
    from inventory_pipeline.core.policy import load_policy
    from inventory_pipeline.realdata.backtest import history_frame, m5_calendar, m5_panel
    from inventory_pipeline.realdata.m5 import M5_DAYS, m5_date

    panel = m5_panel(stores)
    keys = panel.keys
    pos = pd.Series(np.arange(len(keys)), index=(keys["store_id"] + "|" + keys["item_id"]).to_numpy())
    categories = keys.drop_duplicates("item_id").set_index("item_id")["cat_id"]
    calendar = m5_calendar()
    base = ForecastSettings.of(load_policy(settings().policy_path).forecast)
    base = base.model_copy(update={"family": family}) if family else base
    base = base.model_copy(update={"engine": engine})
    cfgs = {"refit": base.model_copy(update={"refit_every_days": 1}), "carried": base}
    first = M5_DAYS - HORIZON - plans + 1  # every plan has 28 days of realised sales after it
    rows, selection, last = [], None, None
    for i, origin in enumerate(range(first, first + plans)):
        d = m5_date(origin).isoformat()
        hist = history_frame(panel, origin, base.history_days_read)
        for name, cfg in cfgs.items():
            carry = {}
            if name == "carried" and last is not None:
                run = {"cv_on": pd.Timestamp(last.cv_on), "config_fingerprint": cfg.fingerprint()}
                reuse_cv = reusable_cv(run, d, cfg, choice_reused=True)
                carry = {"fits": last.fits, "cv_state": last.cv_state() if reuse_cv else None}
                carry["global_fits"] = last.global_fits
            t0 = time.perf_counter()
            res = run_forecast(hist, d, cfg, categories, calendar, selection=selection, **carry)
            secs = time.perf_counter() - t0
            if selection is None:
                selection = res.selection  # the first plan's choice serves every plan of both runs
            if name == "carried":
                last = res
            row = {"plan_date": d, "run": name, "seconds": round(secs, 2), "cv_on": res.cv_on, **res.fitting}
            for h in (7, HORIZON):
                row.update({f"{k}_{h}": v for k, v in _score(res.forecast, panel, pos, origin, h).items()})
            rows.append(row)
            log(f"plan {i + 1}/{plans} {d} {name}: {secs:.1f} s, {res.fitting}, WAPE 1-28 {row['wape_28']:.4f}")
    table = pd.DataFrame(rows)
    return {
        "stores": list(stores),
        "series": int(len(keys)),
        "family": base.family,
        "engine": engine,
        "selection": selection,
        "rows": table,
    }


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per run: mean seconds (plans that estimate and cross-validate, plans that carry, apart) and
    the mean and worst plan's WAPE, bias and 80% coverage."""
    out = []
    for name, g in table.groupby("run", sort=False):
        carried = g["cv_on"] != g["plan_date"]  # a plan that carried the fits and the CV of an earlier one
        out.append(
            {
                "run": name,
                "plans": len(g),
                "s per plan (estimating)": round(g.loc[~carried, "seconds"].mean(), 1),
                "s per plan (carrying)": round(g.loc[carried, "seconds"].mean(), 1) if carried.any() else None,
                "WAPE 1-7 mean": round(g["wape_7"].mean(), 4),
                "WAPE 1-28 mean": round(g["wape_28"].mean(), 4),
                "WAPE 1-28 worst plan": round(g["wape_28"].max(), 4),
                "AutoETS WAPE 1-28 mean": round(g["wape_autoets_28"].mean(), 4),
                "AutoETS WAPE 1-28 worst plan": round(g["wape_autoets_28"].max(), 4),
                "bias 1-28 mean": round(g["bias_28"].mean(), 4),
                "80% coverage 1-28 mean": round(g["coverage_80_28"].mean(), 4),
                "80% coverage 1-28 worst plan": round(g["coverage_80_28"].min(), 4),
            }
        )
    return pd.DataFrame(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="bench")
    ap.add_argument("--stores", nargs="+", default=["CA_1", "TX_2"])
    ap.add_argument("--plans", type=int, default=14, help="consecutive plan dates (two weeks of the cadence)")
    ap.add_argument("--family", default=None, help="the forecast family compared (default: the policy's)")
    ap.add_argument("--twin-seeds", type=int, nargs="*", default=None, help="run the twin comparison instead")
    ap.add_argument("--twin-days", type=int, default=21)
    ap.add_argument("--dask-workers", type=int, default=0, help="run on a local Dask cluster of N workers")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    if a.twin_seeds is not None:
        return _twin_report(a, t0)
    with _cluster(a.dask_workers):
        res = run(tuple(a.stores), a.plans, family=a.family, engine="dask" if a.dask_workers else "local")
    table = res.pop("rows")
    summ = summary(table)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    meta = {
        **res,
        "commit": commit,
        "python": platform.python_version(),
        "minutes": round((time.perf_counter() - t0) / 60, 1),
    }
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    doc = {"meta": meta, "summary": summ.to_dict("records"), "plans": table.to_dict("records")}
    name = "refit_cadence" if res["family"] == "statsforecast" else f"refit_cadence_{res['family']}"
    name += "_dask" if a.dask_workers else ""
    (out / f"{name}.json").write_text(json.dumps(doc, indent=2, default=str))
    where = f", Dask engine, {a.dask_workers} local workers" if a.dask_workers else ""
    md = [
        f"# Carried fits vs re-estimating every plan ({res['family']}): M5 stores {', '.join(res['stores'])} "
        f"({res['series']:,} series){where}",
        "",
        f"Commit {commit}, {meta['minutes']} min. Model choice (the first plan's, for every plan): {res['selection']}.",
        "",
        summ.to_markdown(index=False),
        "",
        "Per plan:",
        "",
        table.round(4).to_markdown(index=False),
        "",
    ]
    (out / f"{name}.md").write_text("\n".join(md))
    print("\n".join(md[:6]))
    return 0


@contextlib.contextmanager
def _cluster(workers: int):
    """A local Dask cluster of `workers` one-thread worker processes as the default client (the
    engine's `_dask_client` uses it), or nothing."""
    if not workers:
        yield
        return
    import logging

    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=None, silence_logs=logging.ERROR) as c:
        with Client(c):
            yield


TWIN_KPIS = ["lost_sales_units", "fill_rate", "avg_inventory_value", "gross_margin", "wape_h7", "seconds"]


def _twin_report(a, t0: float) -> int:
    table = twin(tuple(a.twin_seeds), a.twin_days)
    side = table.pivot(index="seed", columns="run", values=TWIN_KPIS)
    side.columns = [f"{kpi} ({run})" for kpi, run in side.columns]
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "refit_cadence_twin.json").write_text(json.dumps(table.to_dict("records"), indent=2, default=float))
    md = [
        "# The twin with parameters and intervals refit every plan vs by the policy's cadence",
        "",
        f"Demo-size network (8 stores x 60 SKUs), seeds {a.twin_seeds}, the last {a.twin_days} days; the "
        f"pipeline forecasts every day, model choice kept 7 days. {(time.perf_counter() - t0) / 60:.1f} min.",
        "",
        side.round(4).to_markdown(),
        "",
    ]
    (out / "refit_cadence_twin.md").write_text("\n".join(md))
    print("\n".join(md))
    return 0


def twin(seeds: tuple[int, ...], days: int, log=print) -> pd.DataFrame:
    """The in-memory twin on the demo-size network (8 stores x 60 SKUs, a year of history), the
    pipeline forecasting every day with the model choice kept a week (as the assets do), with
    parameters and intervals estimated every plan (`refit_every_days: 1`) or by the policy's
    cadence (7): the KPIs of the last `days` days per seed, and the seconds each run took."""
    from dataclasses import replace
    from functools import partial

    from inventory_pipeline.config import settings
    from inventory_pipeline.core.policy import load_policy
    from inventory_pipeline.simulation.engine import simulate
    from inventory_pipeline.simulation.evaluation import run_kpis
    from inventory_pipeline.simulation.network import NetworkConfig, build_network
    from inventory_pipeline.simulation.pipeline_policy import PipelinePolicy
    from inventory_pipeline.simulation.policies import BaselinePolicy, SwitchingPolicy

    pol = load_policy(settings().policy_path)
    rows = []
    for seed in seeds:
        cfg = NetworkConfig(stores=8, skus=60, days=400, dcs=2, regions=2, seed=seed)
        cfg = replace(cfg, suppliers=min(cfg.suppliers, 30))
        net = build_network(cfg)
        switch = cfg.burn_in_days + cfg.days - days
        rule = partial(BaselinePolicy, review_period_days=cfg.review_period_days)
        for name, every in (("refit", 1), ("carried", 7)):
            p = pol.with_changes("forecast", refit_every_days=every)
            t0 = time.perf_counter()
            pipeline = PipelinePolicy(net, p, cadence_days=1, reselect_every=7)
            run = simulate(net, SwitchingPolicy(rule(), pipeline, switch), measure_from=switch)
            secs = time.perf_counter() - t0
            k = run_kpis({"store": run.store, "dc": run.dc, "days": run.measured_days}, pol.costs.annual_holding_rate)
            rows.append({"seed": seed, "run": name, "seconds": round(secs, 1), **k})
            log(f"twin seed {seed} {name}: {secs:.0f} s, lost {k['lost_sales_units']:.0f}, fill {k['fill_rate']:.4f}")
    return pd.DataFrame(rows)


if __name__ == "__main__":
    raise SystemExit(main())
