"""replenishment_orders asset: the replenishment stage (core.stages.REPLENISHMENT over the
warehouse) with the price-adjusted forecast, the
supplier lead times observed in receipts, and the policy file's replenishment section. The
blocking `order_rules` check re-derives every order rule from the output (core.order_violations),
independently of the planner: a failure stops the downstream stages of the partition."""

import dagster as dg

from ..contracts.outputs import ReplenishmentOrders
from ..core.sources import WarehouseSource
from ..core.stages import REPLENISHMENT
from ._common import (
    blocking_check,
    contract_check,
    contract_spec,
    decision_table,
    model_key,
    operational,
    preview,
    violations_check,
    write_tables,
)
from .partitions import daily_partitions
from .resources import PolicyResource, WarehouseResource

_DEPS = [
    "demand_forecast",
    "price_recommendations",
    model_key("fct_inventory_positions"),
    model_key("fct_order_lead_times"),
    model_key("fct_daily_demand"),
    model_key("dim_products"),
    model_key("dim_locations"),
]


@dg.multi_asset(
    name="replenishment_orders",
    partitions_def=daily_partitions,
    specs=[
        decision_table(
            "replenishment_orders",
            _DEPS,
            "Supplier->DC purchase orders and DC->store replenishments: (s, S) targets from the "
            "forecast distribution and observed lead times, class service levels, case packs, MOQ, capacity, budget.",
            kinds={"cvxpy"},
        ),
        decision_table(
            "replenishment_targets",
            _DEPS,
            "Per store x SKU: demand over the protection period, class, service level, the order-up-to "
            "target and its position; what rebalancing plans against.",
        ),
        decision_table(
            "replenishment_unmet",
            _DEPS,
            "What a limit (capacity, budget, DC stock, supplier minimum) kept from being ordered, and why.",
        ),
    ],
    check_specs=[
        contract_spec("replenishment_orders", ReplenishmentOrders),
        blocking_check(
            "order_rules",
            "replenishment_orders",
            "non-negative whole case packs, MOQ, DC stock, capacity, budget and "
            "supplier minimum: every order rule re-checked from the output",
        ),
    ],
    can_subset=True,
)
@operational
def replenishment_orders(context: dg.AssetExecutionContext, warehouse: WarehouseResource, policy: PolicyResource):
    d = context.partition_key
    wh = warehouse.get()
    pol = policy.load()
    inputs = REPLENISHMENT.read(WarehouseSource(wh, pol.reconciliation), d, pol)
    plan = REPLENISHMENT.run(inputs, d, pol)
    write_tables(wh, REPLENISHMENT.tables(plan), d)
    orders = plan.orders
    violations = REPLENISHMENT.check(inputs, plan, pol)
    by_type = orders.groupby("decision_type").agg(
        lines=("units", "size"), units=("units", "sum"), value=("order_value", "sum")
    )
    lt = plan.lead_times
    context.log.info(
        f"replenishment {d}: {len(orders):,} order lines, {len(plan.unmet):,} items short of a limit, "
        f"lead times of {int((lt['n_orders'] > 0).sum())}/{len(lt)} suppliers from {int(lt['n_orders'].sum()):,} "
        "receipts"
    )
    rules = violations_check("order_rules", violations, "rule", "order line(s) break a rule", pol.tag)
    return (
        dg.MaterializeResult(
            asset_key="replenishment_orders",
            metadata={
                "dagster/row_count": len(orders),
                "by_type": dg.MetadataValue.md(by_type.round(2).to_markdown()),
                "binding_constraints": orders["binding_constraint"].value_counts().to_dict(),
                "service_levels_by_class": plan.targets.groupby("item_class")["service_level"]
                .first()
                .round(4)
                .to_dict(),
                "items_by_class": plan.targets["item_class"].value_counts().to_dict(),
                "expected_shortage_units": round(float(orders["expected_shortage_units"].sum()), 2),
                "expected_cost": round(float(orders["expected_cost"].sum()), 2),
                "unmet_requirements": len(plan.unmet),
                "unmet": dg.MetadataValue.md(plan.unmet.head(20).to_markdown(index=False)),
                "supplier_lead_times": dg.MetadataValue.md(lt.round(2).to_markdown(index=False)),
                "policy_version": pol.tag,
                "preview": preview(orders.drop(columns=["rationale"])),
            },
            check_results=[contract_check("output_contract", ReplenishmentOrders, orders), rules],
        ),
        dg.MaterializeResult(
            asset_key="replenishment_targets",
            metadata={"dagster/row_count": len(plan.targets), "preview": preview(plan.targets)},
        ),
        dg.MaterializeResult(
            asset_key="replenishment_unmet",
            metadata={"dagster/row_count": len(plan.unmet), "preview": preview(plan.unmet)},
        ),
    )
