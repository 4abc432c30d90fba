"""inventory_reconciliation asset: the landing zone's on-hand against the stock ledger
(core.ledger). Its blocking check `ledger_within_tolerance` stops the decision log and the outbox
of the partition when more lines disagree than the policy allows; every discrepancy is listed in
the table (and previewed in the metadata) for reconciliation. A discrepancy that a quarantined row
of the day's files accounts for is listed as explained (which file, which row) and not counted:
the decisions of that location x SKU are held instead (defs/decisions.py).

Its second blocking check `landing_files_usable` stops the plan when a daily file of the plan date
is unusable: absent from the warehouse (ingestion could not read it), or with more than
`ingestion.max_quarantine_share` of its rows quarantined (and at least `ingestion.min_quarantined_rows`)
— measured per file and day."""

import dagster as dg
import pandas as pd

from ..core.ingestion import quarantined_items
from ..core.ledger import LedgerTolerance, ledger_summary, reconcile_ledger
from ._common import blocking_check, operational
from .ingestion import landing_assets
from .partitions import daily_partitions
from .resources import PolicyResource, WarehouseResource

_RAW = {a.key.path[-1]: a for a in landing_assets}
LEDGER_CHECK = "ledger_within_tolerance"
USABLE_CHECK = "landing_files_usable"
DAILY_FILES = ("pos_sales", "inventory", "receipts", "open_orders")


def day_quarantine(wh, d: str, files=DAILY_FILES) -> pd.DataFrame:
    """The quarantined rows of the daily files of day d (every file's table, one frame)."""
    parts = [wh.read(f"quarantine_{f}", d) for f in files if wh.exists(f"quarantine_{f}", d)]
    parts = [p for p in parts if len(p)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["file", "row", "reason", "record"])


def file_usability(wh, d: str, threshold: float, min_rows: int = 1) -> pd.DataFrame:
    """Per daily file of day d: rows kept, rows rejected, share, and why it is unusable ("" if usable)."""
    rows = []
    for f in DAILY_FILES:
        kept = len(wh.read(f"raw_{f}", d)) if wh.exists(f"raw_{f}", d) else None
        q = wh.read(f"quarantine_{f}", d) if wh.exists(f"quarantine_{f}", d) else None
        rej = 0 if q is None else int((q["disposition"] != "held").sum()) if "disposition" in q else len(q)
        total = (kept or 0) + rej
        share = rej / total if total else 0.0
        why = ""
        if kept is None:
            why = f"daily/{d}/{f}: no validated rows in the warehouse (the file was missing or could not be read)"
        elif share > threshold + 1e-12 and rej >= min_rows:
            why = (
                f"daily/{d}/{f}: {rej} of {total} rows quarantined ({share:.2%} > {threshold:.2%}, "
                "ingestion.max_quarantine_share); see quarantine_" + f + f"/{d}, fix the file and re-run the day"
            )
        rows.append(
            {
                "file": f,
                "rows": total,
                "rejected": rej,
                "share": round(share, 6),
                "unusable": why,
            }
        )
    return pd.DataFrame(rows)


def ledger_tolerance(pol) -> LedgerTolerance:
    g = pol.guards
    return LedgerTolerance(
        g.ledger_abs_tolerance_units,
        g.ledger_rel_tolerance,
        g.ledger_max_discrepancy_share,
    )


def _ledger(wh, d: str, prev: str, tol):
    """The day's inventory ledger: yesterday's count + receipts - sales - shipments against today's
    count, quarantined items explained. Returns the opening count (None: nothing to reconcile) and
    the ledger lines."""

    def read(table, day):
        return wh.read(table, day) if wh.exists(table, day) else None

    opening, closing = read("raw_inventory", prev), read("raw_inventory", d)
    quarantined = quarantined_items(
        pd.concat(
            [day_quarantine(wh, d), day_quarantine(wh, prev, ("inventory",))],
            ignore_index=True,
        )
    )
    if closing is None:
        opening = None  # no count of the day: nothing to reconcile (landing_files_usable fails)
    led = reconcile_ledger(
        d,
        opening,
        closing,
        read("raw_receipts", d),
        read("raw_pos_sales", d),
        read("raw_open_orders", d),
        tol,
        quarantined,
    )
    return opening, led


def _ledger_check(s: dict, tol, d: str) -> dg.AssetCheckResult:
    """Passes when the lines that disagree with the ledger, unexplained by quarantined input, stay
    under the policy's share (`s`: ledger_summary)."""
    return dg.AssetCheckResult(
        check_name=LEDGER_CHECK,
        passed=bool(s["passed"]),
        metadata={
            "discrepancies": s["discrepancies"],
            "explained": s["explained"],
            "discrepancy_share": s["discrepancy_share"],
            "max_share": tol.max_share,
            "units_missing": s["units_missing"],
            "units_extra": s["units_extra"],
        },
        description=(f"{s['explained']} line(s) explained by quarantined input rows (held)" if s["explained"] else None)
        if s["passed"]
        else f"{s['discrepancies']} of {s['lines']} lines ({s['discrepancy_share']:.2%}) disagree "
        "with the ledger "
        f"(allowed {tol.max_share:.2%}; {s['explained']} more explained by quarantined rows); "
        f"see table inventory_reconciliation/{d}",
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
        blocking_check(
            LEDGER_CHECK,
            "inventory_reconciliation",
            "on hand = yesterday's on hand + receipts - sales - shipments, within "
            "the policy's tolerance (guards.ledger_*); discrepancies explained by "
            "quarantined input rows are not counted",
        ),
        blocking_check(
            USABLE_CHECK,
            "inventory_reconciliation",
            "every daily file of the plan date was read and at most "
            "ingestion.max_quarantine_share of its rows were quarantined",
        ),
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
    pol = policy.load()
    tol = ledger_tolerance(pol)
    prev = (pd.Timestamp(d) - pd.Timedelta(days=1)).date().isoformat()

    opening, led = _ledger(wh, d, prev, tol)
    wh.write("inventory_reconciliation", led, d)
    s = ledger_summary(led, tol)
    usable = file_usability(wh, d, pol.ingestion.max_quarantine_share, pol.ingestion.min_quarantined_rows)
    unusable = usable[usable["unusable"] != ""]
    for why in unusable["unusable"]:
        context.log.error(f"input unusable: {why}")
    flagged = led[led["flagged"] & ~led["explained"].astype(bool)]
    explained = led[led["explained"].astype(bool)]
    if len(explained):
        context.log.warning(
            f"ledger {d}: {len(explained)} line(s) disagree because input rows were quarantined "
            "(explained; their decisions are held)"
        )
    if opening is None:
        context.log.info(f"no inventory file for {prev}: the first day cannot be reconciled")
    elif len(flagged):
        context.log.warning(f"ledger {d}: {len(flagged)} of {len(led)} location x SKU lines disagree")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(led),
            **{k: v for k, v in s.items() if k != "passed"},
            "discrepancies_preview": dg.MetadataValue.md(
                flagged.drop(columns=["flagged"]).head(20).to_markdown(index=False) if len(flagged) else "none"
            ),
            "explained_preview": dg.MetadataValue.md(
                explained[["location_id", "sku_id", "discrepancy", "explanation"]].head(20).to_markdown(index=False)
                if len(explained)
                else "none"
            ),
        },
        check_results=[
            _ledger_check(s, tol, d),
            dg.AssetCheckResult(
                check_name=USABLE_CHECK,
                passed=unusable.empty,
                metadata={
                    "threshold": pol.ingestion.max_quarantine_share,
                    "files": dg.MetadataValue.md(usable.to_markdown(index=False)),
                },
                description=None if unusable.empty else "input unusable: " + "; ".join(unusable["unusable"]),
            ),
        ],
    )
