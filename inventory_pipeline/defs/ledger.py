"""inventory_reconciliation asset: the landing zone's on-hand against the stock ledger
(core.ledger). Its blocking check `ledger_within_tolerance` stops the decision log and the outbox
of the partition when more lines disagree than the policy allows; every discrepancy is listed in
the table (and previewed in the metadata) for reconciliation."""

import dagster as dg
import pandas as pd

from ..core.ledger import LedgerTolerance, ledger_summary, reconcile_ledger
from .ingestion import landing_assets
from .partitions import daily_partitions
from .resources import PolicyResource, WarehouseResource
from ._common import operational

_RAW = {a.key.path[-1]: a for a in landing_assets}
LEDGER_CHECK = "ledger_within_tolerance"


def ledger_tolerance(pol) -> LedgerTolerance:
    g = pol.guards
    return LedgerTolerance(
        g.ledger_abs_tolerance_units,
        g.ledger_rel_tolerance,
        g.ledger_max_discrepancy_share,
    )


@dg.asset(
    partitions_def=daily_partitions,
    group_name="governance",
    deps=[
        _RAW["raw_inventory"],
        _RAW["raw_receipts"],
        _RAW["raw_pos_sales"],
        _RAW["raw_open_orders"],
    ],
    check_specs=[
        dg.AssetCheckSpec(
            LEDGER_CHECK,
            asset="inventory_reconciliation",
            blocking=True,
            description="on hand = yesterday's on hand + receipts - sales - shipments, within "
            "the policy's tolerance (guards.ledger_*)",
        )
    ],
    description="Stock ledger per location x SKU for the day (opening, received, sold, shipped, expected vs counted); "
    "discrepancies flagged with the reason.",
)
@operational
def inventory_reconciliation(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    policy: PolicyResource,
):
    d = context.partition_key
    wh = warehouse.get()
    tol = ledger_tolerance(policy.load())
    prev = (pd.Timestamp(d) - pd.Timedelta(days=1)).date().isoformat()

    def read(table, day):
        return wh.read(table, day) if wh.exists(table, day) else None

    opening = read("raw_inventory", prev)
    led = reconcile_ledger(
        d,
        opening,
        read("raw_inventory", d),
        read("raw_receipts", d),
        read("raw_pos_sales", d),
        read("raw_open_orders", d),
        tol,
    )
    wh.write("inventory_reconciliation", led, d)
    s = ledger_summary(led, tol)
    flagged = led[led["flagged"]]
    if opening is None:
        context.log.info(
            f"no inventory file for {prev}: the first day cannot be reconciled"
        )
    elif len(flagged):
        context.log.warning(
            f"ledger {d}: {len(flagged)} of {len(led)} location x SKU lines disagree"
        )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(led),
            **{k: v for k, v in s.items() if k != "passed"},
            "discrepancies_preview": dg.MetadataValue.md(
                flagged.drop(columns=["flagged"]).head(20).to_markdown(index=False)
                if len(flagged)
                else "none"
            ),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=LEDGER_CHECK,
                passed=bool(s["passed"]),
                metadata={
                    "discrepancies": s["discrepancies"],
                    "discrepancy_share": s["discrepancy_share"],
                    "max_share": tol.max_share,
                    "units_missing": s["units_missing"],
                    "units_extra": s["units_extra"],
                },
                description=None
                if s["passed"]
                else f"{s['discrepancies']} of {s['lines']} lines ({s['discrepancy_share']:.2%}) disagree with the ledger "
                f"(allowed {tol.max_share:.2%}); see table inventory_reconciliation/{d}",
            )
        ],
    )
