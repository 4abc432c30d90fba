"""policy_evaluation asset: the digital twin's verdict on the pipeline against the baseline rule.

Thin: rebuilds the network behind the landing zone, runs simulation.evaluation (a process pool
of twin runs), writes kpis.json / report.html / plots beside the warehouse and puts the KPI
tables and plot paths in the materialisation's metadata. Not part of the daily plan: launch it
from the UI (job `evaluate_policy`) after a change to a stage or to the policy file.
"""

import dagster as dg

from ..networks import load_network
from ..simulation.evaluation import (
    EvaluationConfig,
    add_override_rates,
    evaluate,
    governance_table,
    kpi_table,
    pricing_table,
    scenario_table,
    write_report,
)
from ._common import operational
from .resources import LandingZoneResource, PolicyResource, WarehouseResource

_FILE_KEYS = {"kpis": "kpis_json", "report": "report_html"}


class PolicyEvaluationConfig(dg.Config):
    days: int = 90
    cadence_days: int = 7
    service_level: float = 0.0  # 0 = the policy file's
    frontier: bool = True
    scenarios: bool = True
    jobs: int = 2


@dg.asset(
    group_name="evaluation",
    kinds={"simulation"},
    description=(
        "Digital-twin evaluation: pipeline vs the baseline rule on the same demand (KPIs, frontier, stress scenarios)."
    ),
)
@operational
def policy_evaluation(
    context: dg.AssetExecutionContext,
    config: PolicyEvaluationConfig,
    landing: LandingZoneResource,
    policy: PolicyResource,
    warehouse: WarehouseResource,
):
    network = load_network(landing.uri, landing.store())
    ecfg = EvaluationConfig(
        days=config.days,
        cadence_days=config.cadence_days,
        service_level=config.service_level or None,
        frontier=config.frontier,
        scenarios=config.scenarios,
        jobs=config.jobs,
    )
    report = evaluate(network, policy.path, ecfg, progress=context.log.info)
    add_override_rates(report, warehouse.get())
    out = warehouse.get().root.parent / "evaluation"
    paths = write_report(report, out)
    b, p = report["baseline"], report["pipeline"]
    md = {
        "kpi_table": dg.MetadataValue.md(kpi_table(report).to_markdown(index=False)),
        "baseline_stockout_rate": round(b["stockout_rate"], 5),
        "pipeline_stockout_rate": round(p["stockout_rate"], 5),
        "baseline_avg_inventory_value": round(b["avg_inventory_value"], 2),
        "pipeline_avg_inventory_value": round(p["avg_inventory_value"], 2),
        "window": " .. ".join(report["meta"]["window"]),
        "policy_version": report["meta"]["policy_version"],
        "runs": report["meta"]["runs"],
        "seconds": report["meta"]["seconds"],
        **{_FILE_KEYS.get(name, name): dg.MetadataValue.path(str(path)) for name, path in paths.items()},
    }
    pr = report.get("pricing") or {}
    if "static" in pr:
        md["pricing_vs_static_prices"] = dg.MetadataValue.md(pricing_table(report).to_markdown(index=False))
    md["guardrail_violations_total"] = int(pr.get("guardrail_violations_total", 0))
    md["governance"] = dg.MetadataValue.md(governance_table(report).round(4).to_markdown(index=False))
    if report.get("scenarios"):
        md["scenarios"] = dg.MetadataValue.md(scenario_table(report).to_markdown(index=False))
    return dg.MaterializeResult(metadata=md)


evaluate_policy_job = dg.define_asset_job("evaluate_policy", selection=[policy_evaluation])
