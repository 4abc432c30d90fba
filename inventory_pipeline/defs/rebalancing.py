"""rebalancing_transfers asset: store <-> store transfers, the rebalancing stage
(core.stages.REBALANCING over the warehouse; no maths here).

Reads the replenishment stage's store targets (`replenishment_targets`, written by the
replenishment asset for the same partition) and the day's replenishment orders, the lanes and the locations; calls
`plan_transfers` with the policy file's `rebalancing:` section. Two blocking checks: the pandera
contract, and `transfer_rules` (`transfer_violations`, re-derived from the inputs independently
of the optimiser). A solver failure yields no transfers and a reason in the metadata, not a
failed run."""

import dagster as dg

from ..contracts.outputs import RebalancingTransfers
from ..core.rebalancing import TRANSFER_COLUMNS
from ..core.sources import WarehouseSource
from ..core.stages import REBALANCING
from ._common import (
    blocking_check,
    contract_check,
    contract_spec,
    model_key,
    operational,
    preview,
    violations_check,
    write_tables,
)
from .partitions import daily_partitions
from .pricing import price_recommendations
from .resources import PolicyResource, WarehouseResource


@dg.asset(
    partitions_def=daily_partitions,
    group_name="decisions",
    deps=[
        "replenishment_orders",
        "replenishment_targets",
        price_recommendations,
        "demand_forecast",
        model_key("fct_inventory_positions"),
        model_key("dim_locations"),
        model_key("dim_products"),
        model_key("stg_lanes"),
    ],
    check_specs=[
        contract_spec("rebalancing_transfers", RebalancingTransfers),
        blocking_check(
            "transfer_rules",
            "rebalancing_transfers",
            "every transfer is whole units > 0 along a store->store lane faster than "
            "the receiver's next replenishment, at least min_transfer_units, keeps the "
            "donor at its need and within its on hand, and no store both sends and "
            "receives a SKU",
        ),
    ],
    kinds={"cvxpy"},
    description="Store<->store transfers inside a region: a transport MILP (HiGHS via cvxpy) that moves stock from "
    "stores above their need to stores that would lose sales before their next replenishment can arrive, "
    "where the expected shortage cost saved exceeds the transfer cost.",
)
@operational
def rebalancing_transfers(context: dg.AssetExecutionContext, warehouse: WarehouseResource, policy: PolicyResource):
    d = context.partition_key
    wh = warehouse.get()
    pol = policy.load()
    inputs = REBALANCING.read(WarehouseSource(wh, pol.reconciliation), d, pol)
    plan = REBALANCING.run(inputs, d, pol)
    transfers, summary = plan.transfers, plan.summary
    write_tables(wh, REBALANCING.tables(plan), d)
    if summary.get("status") == "solver_failed":
        context.log.warning(f"rebalancing_transfers {d}: {summary.get('reason')}")
    else:
        context.log.info(f"rebalancing_transfers {d}: {summary.get('status')} {summary.get('reason', '')}".rstrip())
    violations = REBALANCING.check(inputs, plan, pol)
    rules = violations_check("transfer_rules", violations, "rule", "transfer rule violation(s)", pol.tag)
    keys = [
        "status",
        "reason",
        "method",
        "solver_status",
        "solve_seconds",
        "seconds",
        "store_skus",
        "donors",
        "receivers",
        "skus_with_both",
        "skus_solved",
        "arcs",
        "binaries",
        "lines_dropped_nonpositive",
        "invalid_target_rows",
    ]
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(transfers),
            "units_moved": int(summary.get("units", 0)),
            "expected_shortage_saved_units": float(summary.get("expected_shortage_saved", 0.0)),
            "expected_cost_saved": float(summary.get("expected_cost_saved", 0.0)),
            "transfer_cost": float(summary.get("transfer_cost", 0.0)),
            "net_value": float(summary.get("net_value", 0.0)),
            **{k: summary.get(k) if summary.get(k) is not None else "" for k in keys},
            "binding_constraints": transfers["binding_constraint"].value_counts().to_dict(),
            "policy_version": pol.tag,
            "preview": preview(transfers[TRANSFER_COLUMNS].drop(columns=["rationale"])),
        },
        check_results=[contract_check("output_contract", RebalancingTransfers, transfers), rules],
    )
