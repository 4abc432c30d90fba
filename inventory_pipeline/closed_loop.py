"""The closed loop through the files: the twin drives the real code location the way a retailer's
production does, through landing files in and outbox files out.

Every simulated day the twin writes that day's landing files at its close (`daily/D/{pos_sales,
inventory,receipts,open_orders}`, exactly as `inventory-pipeline generate` writes a history). From
the switch day on, each morning t:
  1. the real code location plans D = t - 1, as `inventory-pipeline run --date D` does
     (`runner.run_pipeline`: ingest master, ingest the new daily files, `daily_plan` -> dbt,
     forecast, pricing, replenishment, rebalancing, decision log, ERP outbox);
  2. a planner approves every decision that waits for review (`planner/D/decisions.csv`, then the
     `review_planner` and `publish_decisions` jobs: the planner contract's own path), because the
     in-memory twin executes every decision as if approved;
  3. the twin applies `outbox/D/` on day t = D + 1 -- purchase orders to the DCs, DC -> store
     replenishments and store <-> store transfers, price changes from tomorrow -- which is the
     outbox contract's "a plan for D takes effect on D + 1".
Nothing of the pipeline is called directly: it sees only files, the twin only the outbox.

The in-memory twin (`PipelinePolicy`) plans at the close of day t and executes at once; the loop
executes the same plan a morning later, from the same information (the close of t - 1). So the
loop is the in-memory twin with a one-day execution lag, and that lag is the only intended
difference; with the same cadence (a forecast and a model selection every day) the KPIs must agree
within what one day of lag explains. `run_closed_loop` reports both, and the baseline rule.

It sits beside `runner.py`, not in the twin's package: it drives Dagster jobs, which the twin's
core never imports. The code location binds its paths when first imported, so a loop runs in a process whose
`INVENTORY_PIPELINE_HOME` and `DAGSTER_HOME` point at the loop's own folder: `python -m
inventory_pipeline.closed_loop` (used by `make bench-loop` and a test) sets them first.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from .simulation.engine import DayRecord, simulate
from .simulation.landing import LandingWriter
from .simulation.network import Network, NetworkConfig, build_network
from .simulation.policies import BaselinePolicy, Observation, Orders, SwitchingPolicy

PLANNER = "twin-planner"  # who answers in the loop (the planner contract records it on every answer)


def read_outbox(folder: Path) -> dict[str, pd.DataFrame]:
    """The three decision files of one outbox folder (an empty frame for a missing file)."""
    out = {}
    for name in ("purchase_orders", "transfers", "price_changes"):
        p = folder / f"{name}.csv"
        out[name] = pd.read_csv(p, dtype={"sku_id": str}) if p.exists() and p.stat().st_size else pd.DataFrame()
    return out


def outbox_orders(files: dict[str, pd.DataFrame], network: Network, price_factor: np.ndarray) -> Orders:
    """The twin's orders for one day from an outbox: positions by id, units summed per cell, prices
    as a factor on the network's shelf price (new / old, as the in-memory twin applies them)."""
    stores = {s: i for i, s in enumerate(network.store_ids.astype(str))}
    dcs = {s: i for i, s in enumerate(network.dc_ids.astype(str))}
    skus = {s: i for i, s in enumerate(network.sku_ids.astype(str))}
    L, S, D = len(stores), len(skus), len(dcs)
    store, dc = np.zeros((L, S), dtype=np.int64), np.zeros((D, S), dtype=np.int64)
    po = files["purchase_orders"]
    if len(po):
        np.add.at(
            dc,
            (po["ship_to_location_id"].map(dcs).to_numpy(int), po["sku_id"].map(skus).to_numpy(int)),
            po["units"].to_numpy(np.int64),
        )
    tr = files["transfers"]
    transfers = None
    if len(tr):
        rp, rb = tr[tr["transfer_type"] == "replenishment"], tr[tr["transfer_type"] == "rebalancing"]
        np.add.at(
            store,
            (rp["to_location_id"].map(stores).to_numpy(int), rp["sku_id"].map(skus).to_numpy(int)),
            rp["units"].to_numpy(np.int64),
        )
        if len(rb):
            transfers = {
                "sku": rb["sku_id"].map(skus).to_numpy(int),
                "src": rb["from_location_id"].map(stores).to_numpy(int),
                "dest": rb["to_location_id"].map(stores).to_numpy(int),
                "units": rb["units"].to_numpy(int),
            }
    factor = price_factor.copy()
    pc = files["price_changes"]
    if len(pc):
        li, si = pc["location_id"].map(stores).to_numpy(int), pc["sku_id"].map(skus).to_numpy(int)
        factor[li, si] *= (pc["new_price"] / pc["old_price"]).to_numpy(float)
    return Orders(store=store, dc=dc, transfers=transfers, price_factor=factor)


class FilePipelinePolicy:
    """The pipeline as a twin policy that sees only files: writes the day, runs the code location,
    answers the review queue as an approving planner, applies the outbox (module docstring). It
    takes over from the rule inside a `SwitchingPolicy`; its sink writes every day, the rule's too."""

    name = "pipeline/files"

    def __init__(self, network: Network, log=print) -> None:
        from .config import settings

        self.net, self.log = network, log
        s = settings()
        self.landing, self.outbox, self.warehouse = Path(s.landing_uri), Path(s.outbox_uri), s.warehouse_dir
        self.writer = LandingWriter(network, self.landing, write_truth=False)
        self.writer.write_master()
        self.first_date: str | None = None  # the first landing day (ingested once, on the first plan)
        self.days_run, self.seconds, self.approved = 0, [], 0
        self.applied = {"purchase_order_units": 0, "store_units": 0, "transfer_units": 0, "price_changes": 0}

    def sink(self, rec: DayRecord) -> None:
        """The engine's end-of-day sink: every day becomes landing files."""
        self.first_date = self.first_date or rec.date.date().isoformat()
        self.writer(rec)

    def decide(self, obs: Observation) -> Orders:
        d = (obs.date - pd.Timedelta(days=1)).date().isoformat()  # the plan of yesterday's close
        t0 = time.perf_counter()
        self._run(d)
        files = read_outbox(self.outbox / d)
        self.seconds.append(time.perf_counter() - t0)
        self.days_run += 1
        self.log(
            f"closed loop {d}: {len(files['purchase_orders'])} purchase orders, {len(files['transfers'])} transfers, "
            f"{len(files['price_changes'])} price changes, {self.seconds[-1]:.0f} s"
        )
        factor = obs.price_factor if obs.price_factor is not None else np.ones_like(obs.store_on_hand, dtype=float)
        orders = replace(outbox_orders(files, self.net, factor), forecast=self._expected(d, obs))
        self.applied["purchase_order_units"] += int(orders.dc.sum())
        self.applied["store_units"] += int(orders.store.sum())
        self.applied["transfer_units"] += int(np.sum(orders.transfers["units"])) if orders.transfers else 0
        self.applied["price_changes"] += len(files["price_changes"])
        return orders

    def _run(self, d: str) -> None:
        import dagster as dg

        from .runner import run_pipeline

        first = self.first_date if self.days_run == 0 else d  # the whole history once, then the new day
        out = run_pipeline(plan_date=d, first_date=first, log=lambda m: None)
        failed = [k for k, r in out["results"].items() if not r.success]
        if failed:
            raise RuntimeError(
                f"closed loop {d}: run(s) {failed} failed; see the Dagster instance at {os.environ['DAGSTER_HOME']}"
            )
        self._approve_pending(d, dg.DagsterInstance.get())

    def _expected(self, d: str, obs: Observation) -> np.ndarray | None:
        """The demand plan d expects (the warehouse's `demand_forecast` and `price_recommendations`
        of d), by day offset from today: the engine scores it like the in-memory twin's forecast.
        Plan d forecasts from d + 1 = today, so its row for today + h is the offset h."""
        from .core.warehouse import Warehouse
        from .simulation.pipeline_policy import expected_demand

        wh = Warehouse(self.warehouse)
        if not wh.exists("demand_forecast", d):
            return None
        fc = wh.read("demand_forecast", d)
        fc = fc.assign(horizon=(pd.to_datetime(fc["date"]) - pd.Timestamp(obs.date).normalize()).dt.days)
        pr = (
            wh.read("price_recommendations", d)
            if wh.exists("price_recommendations", d)
            else pd.DataFrame(columns=["location_id", "sku_id", "demand_multiplier"])
        )
        if "demand_multiplier" not in pr:
            pr = pr.assign(demand_multiplier=1.0)
        stores = {s: i for i, s in enumerate(self.net.store_ids.astype(str))}
        skus = {s: i for i, s in enumerate(self.net.sku_ids.astype(str))}
        return expected_demand(
            fc.astype({"location_id": str, "sku_id": str}),
            pr.astype({"location_id": str, "sku_id": str}),
            stores,
            skus,
            obs.store_on_hand.shape,
        )

    def _approve_pending(self, d: str, instance) -> None:
        """Answer the day's review queue through the planner contract: approve every decision."""
        from .core.warehouse import Warehouse
        from .definitions import defs

        wh = Warehouse(self.warehouse)
        queue = wh.read("review_queue", d) if wh.exists("review_queue", d) else pd.DataFrame()
        if not len(queue):
            return
        answers = pd.DataFrame(
            {
                "decision_id": queue["decision_id"],
                "action": "approve",
                "override_units_or_price": "",
                "reason": "closed loop: the twin executes every decision",
                "planner": PLANNER,
            }
        )
        (self.landing / "planner" / d).mkdir(parents=True, exist_ok=True)
        answers.to_csv(self.landing / "planner" / d / "decisions.csv", index=False)
        for job in ("review_planner", "publish_decisions"):
            r = defs.resolve_job_def(job).execute_in_process(instance=instance, partition_key=d)
            if not r.success:
                raise RuntimeError(f"closed loop {d}: {job} failed")
        self.approved += len(answers)


def run_closed_loop(cfg: NetworkConfig, days: int, policy_path: str, log=print) -> dict:
    """The file-driven loop and the in-memory twin on the same network and window; KPIs of both,
    and of the baseline rule, over the last `days` days. Call inside a process whose environment
    points the code location at a loop folder (`main`). The loop's first plan is the switch day's
    eve, so its first outbox is executed on the switch day, like the in-memory twin's first plan."""
    from .core.kpis import relative_change
    from .core.policy import load_policy
    from .simulation.evaluation import run_kpis
    from .simulation.pipeline_policy import PipelinePolicy

    net = build_network(cfg)
    switch = cfg.burn_in_days + cfg.days - days
    rate = load_policy(policy_path).costs.annual_holding_rate
    files = FilePipelinePolicy(net, log)
    # the in-memory twin as the loop runs it: a forecast and a model selection every day
    mem = PipelinePolicy(net, load_policy(policy_path), cadence_days=1, reselect_every=1)
    rule = partial(BaselinePolicy, review_period_days=cfg.review_period_days)
    runs = {}
    for key, policy, sink in (
        ("pipeline/files", files, files.sink),
        ("pipeline/in_memory", mem, None),
        ("baseline", None, None),
    ):
        t0 = time.perf_counter()
        run = rule() if policy is None else SwitchingPolicy(rule(), policy, switch)
        runs[key] = (simulate(net, run, sink=sink, measure_from=switch), time.perf_counter() - t0)
    kpis = {k: run_kpis({"store": r.store, "dc": r.dc, "days": r.measured_days}, rate) for k, (r, _) in runs.items()}
    return {
        "config": cfg.to_dict(),
        "days": days,
        "switch_day": switch,
        "kpis": kpis,
        "files_vs_in_memory": relative_change(kpis["pipeline/in_memory"], kpis["pipeline/files"]),
        "seconds": {k: round(s, 1) for k, (_, s) in runs.items()},
        "seconds_per_loop_day": round(float(np.mean(files.seconds)), 1) if files.seconds else None,
        "planner_approvals": files.approved,
        "applied": files.applied,
        "outbox": str(files.outbox),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="closed loop through the landing and outbox files vs the in-memory twin")
    ap.add_argument("--out", required=True, help="loop folder (landing, warehouse, outbox, Dagster and MLflow homes)")
    ap.add_argument("--days", type=int, default=28, help="days the pipeline runs the network (the last N days)")
    ap.add_argument("--stores", type=int, default=8)
    ap.add_argument("--skus", type=int, default=60)
    ap.add_argument("--history-days", type=int, default=365)
    ap.add_argument("--dcs", type=int, default=2)
    ap.add_argument("--regions", type=int, default=2)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--policy", default=None)
    a = ap.parse_args(argv)
    home = Path(a.out).resolve()
    shutil.rmtree(home, ignore_errors=True)
    from .config import DEFAULT_POLICY_PATH, use_home

    policy = Path(a.policy or DEFAULT_POLICY_PATH).resolve()
    use_home(home, INVENTORY_PIPELINE_POLICY=str(policy))
    cfg = NetworkConfig(stores=a.stores, skus=a.skus, days=a.history_days, dcs=a.dcs, regions=a.regions, seed=a.seed)
    cfg = replace(cfg, suppliers=min(cfg.suppliers, max(1, a.skus // 2)))
    report = run_closed_loop(cfg, a.days, str(policy), log=lambda m: print(m, file=sys.stderr, flush=True))
    (home / "closed_loop.json").write_text(json.dumps(report, indent=2, default=float) + "\n")
    print(
        json.dumps(
            {
                "files_vs_in_memory": report["files_vs_in_memory"],
                "seconds": report["seconds"],
                "seconds_per_loop_day": report["seconds_per_loop_day"],
            },
            indent=2,
            default=float,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
