"""The short report `make demo` prints: rows per stage, store KPIs of the history, the outbox;
and the last line of a successful `inventory-pipeline run` (`plan_verdict`).

Tables are read here through pyarrow's own file reader (`_Reader`), not `pd.read_parquet(path)`:
pandas hands pyarrow a Python file object, and a read-ahead buffer of such a file released by
pyarrow's I/O thread while the interpreter exits aborts the process (cli._exit_process). These
are the last reads before the CLI exits, so they must not leave such buffers behind.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .config import settings
from .core.kpis import history_kpis
from .core.policy import load_policy
from .core.warehouse import Warehouse


class _Reader:
    """A Warehouse's partitions read through pyarrow's native files (see the module docstring)."""

    def __init__(self, wh: Warehouse):
        self.wh = wh

    def exists(self, table: str, partition: str | None = None) -> bool:
        return self.wh.exists(table, partition)

    def read(self, table: str, partition: str | None = None) -> pd.DataFrame:
        import pyarrow.parquet as pq

        return pq.read_table(str(self.wh.path(table, partition))).to_pandas()

    def read_model(self, sql: str, params: list | None = None) -> pd.DataFrame:
        return self.wh.read_model(sql, params)


def _reasons(reasons: pd.Series, n: int = 3) -> str:
    """The most common review reasons, numbers replaced by N so that like reasons count together."""
    why = (
        reasons.fillna("")
        .astype(str)
        .str.split("; ")
        .explode()
        .str.replace(r"-?\d[\d.]*", "N", regex=True)
        .value_counts()
        .head(n)
    )
    return "; ".join(f"{r} ({k})" for r, k in why.items() if r)


def quarantined_rows(wh, plan_date: str) -> dict[str, pd.DataFrame]:
    """Landing file -> its rows quarantined for the plan date (daily files) or ever (master files)."""
    out = {}
    root = wh.wh.root if isinstance(wh, _Reader) else wh.root
    for t in sorted(p.name for p in Path(root).glob("quarantine_*") if p.is_dir()):
        part = plan_date if wh.exists(t, plan_date) else None
        if wh.exists(t, part):
            q = wh.read(t, part)
            if len(q):
                out[t.removeprefix("quarantine_")] = q
    return out


def plan_verdict(plan_date: str, warnings: int = 0) -> str:
    """The last line of a successful run: what was exported, how many decisions are held for a
    planner and why, how many landing rows were quarantined and why."""
    s = settings()
    wh = _Reader(Warehouse(s.warehouse_dir))
    parts = [f"plan {plan_date} exported to the ERP outbox"]
    manifest = Path(s.outbox_uri) / plan_date / "manifest.json"
    if manifest.is_file():
        files = json.loads(manifest.read_text())["files"]
        parts[0] += (
            " (" + ", ".join(f"{v['rows']} {n.removesuffix('.csv').replace('_', ' ')}" for n, v in files.items()) + ")"
        )
    if wh.exists("decision_log", plan_date):
        log = wh.read("decision_log", plan_date)
        held = log[log["status"] == "pending_review"]
        parts.append(
            f"{len(log)} decisions, {len(held)} held for review"
            + (f" ({_reasons(held['review_reason'])})" if len(held) else "")
        )
    q = quarantined_rows(wh, plan_date)
    n = sum(len(x) for x in q.values())
    parts.append(
        f"{n} landing row(s) quarantined"
        + (" (" + "; ".join(f"{name} {len(x)}: {_reasons(x['reason'], 1)}" for name, x in q.items()) + ")" if n else "")
    )
    if warnings:
        parts.append(f"{warnings} warning(s) above")
    return "inventory-pipeline run: OK (exit 0): " + "; ".join(parts)


def print_summary(plan_date: str) -> None:
    s = settings()
    wh = _Reader(Warehouse(s.warehouse_dir))
    pol = load_policy(s.policy_path)
    print(f"\n=== inventory_pipeline: plan {plan_date} (takes effect the next day) ===")
    for table in (
        "demand_forecast",
        "price_recommendations",
        "replenishment_orders",
        "rebalancing_transfers",
        "decision_log",
    ):
        n = len(wh.read(table, plan_date)) if wh.exists(table, plan_date) else "missing"
        print(f"  {table:<24} {n} rows")
    daily = wh.read_model(
        "select f.date, f.units_sold, f.unit_price, f.on_hand, p.unit_cost from marts.fct_daily_demand f "
        "join marts.dim_products p using (sku_id) where f.date > cast(? as date) - interval 364 day and f.date "
        "<= cast(? as date)",
        [plan_date, plan_date],
    )
    k = history_kpis(daily, pol.costs.annual_holding_rate)
    print(f"\nstore KPIs over the last {k['days']} days of history (the baseline rule that generated it):")
    print(
        f"  stockout rate {k['stockout_rate']:.2%}   inventory turns {k['inventory_turns']:.1f}   "
        f"avg inventory value {k['avg_inventory_value']:,.0f}"
    )
    print(
        f"  revenue {k['revenue']:,.0f}   gross margin {k['gross_margin']:,.0f}   carrying cost "
        f"{k['carrying_cost']:,.0f} "
        f"({k['carrying_cost_pct_revenue']:.2%} of revenue)"
    )
    fc = wh.read("demand_forecast", plan_date) if wh.exists("demand_forecast", plan_date) else None
    if fc is not None and len(fc):
        print(f"  forecast model version {fc['model_version'].iloc[0]}")
    out = Path(s.outbox_uri) / plan_date
    manifest = out / "manifest.json"
    if manifest.is_file():
        m = json.loads(manifest.read_text())
        rows = ", ".join(f"{n} {v['rows']}" for n, v in m["files"].items())
        print(f"\nERP outbox {out}: {rows}; decisions {m['decisions_by_status']}")
    if wh.exists("decision_log", plan_date):
        log = wh.read("decision_log", plan_date)
        pend = log[log["status"] == "pending_review"]
        print(
            f"\ndecision log {plan_date}: {len(log)} decisions {log['status'].value_counts().to_dict()}; "
            f"policy {pol.tag}; inputs fingerprint {log['inputs_fingerprint'].iloc[0] if len(log) else '-'}"
        )
        if len(pend):
            print(
                f"  waiting for a planner (review_queue): {len(pend)}; top reasons: {_reasons(pend['review_reason'])}"
            )
            print(f"  answer in {s.landing_uri}/planner/YYYY-MM-DD/decisions.csv (docs/governance.md)")
    if wh.exists("inventory_reconciliation", plan_date):
        led = wh.read("inventory_reconciliation", plan_date)
        print(
            f"  inventory ledger {plan_date}: {int(led['flagged'].sum())} discrepancies in {len(led)} location x "
            "SKU lines"
        )
    print(
        "\nOpen the Dagster UI with `make dev` (http://127.0.0.1:3000) and MLflow with `make mlflow-ui` "
        "(http://127.0.0.1:5000)."
    )
