"""The short report `make demo` prints: rows per stage, store KPIs of the history, the outbox."""

from __future__ import annotations

import json
from pathlib import Path

from .config import settings
from .core.kpis import history_kpis
from .core.policy import load_policy
from .core.warehouse import Warehouse


def print_summary(plan_date: str) -> None:
    s = settings()
    wh = Warehouse(s.warehouse_dir)
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
        "join marts.dim_products p using (sku_id) where f.date > cast(? as date) - interval 364 day and f.date <= cast(? as date)",
        [plan_date, plan_date],
    )
    k = history_kpis(daily, pol.costs.annual_holding_rate)
    print(f"\nstore KPIs over the last {k['days']} days of history (the baseline rule that generated it):")
    print(
        f"  stockout rate {k['stockout_rate']:.2%}   inventory turns {k['inventory_turns']:.1f}   "
        f"avg inventory value {k['avg_inventory_value']:,.0f}"
    )
    print(
        f"  revenue {k['revenue']:,.0f}   gross margin {k['gross_margin']:,.0f}   carrying cost {k['carrying_cost']:,.0f} "
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
            why = (
                pend["review_reason"]
                .str.split("; ")
                .explode()
                .str.replace(r"-?\d[\d.]*", "N", regex=True)
                .value_counts()
                .head(3)
            )
            print(
                f"  waiting for a planner (review_queue): {len(pend)}; top reasons: "
                + "; ".join(f"{r} ({n})" for r, n in why.items())
            )
            print(f"  answer in {s.landing_uri}/planner/YYYY-MM-DD/decisions.csv (docs/governance.md)")
    if wh.exists("inventory_reconciliation", plan_date):
        led = wh.read("inventory_reconciliation", plan_date)
        print(
            f"  inventory ledger {plan_date}: {int(led['flagged'].sum())} discrepancies in {len(led)} location x SKU lines"
        )
    print(
        f"\nOpen the Dagster UI with `make dev` (http://127.0.0.1:3000) and MLflow with `make mlflow-ui` "
        f"(http://127.0.0.1:5000)."
    )
