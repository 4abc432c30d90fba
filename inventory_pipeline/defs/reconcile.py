"""Reconciliation assets (core.reconcile): what the pipeline exported against what the landing
zone shows happened.

- `price_reconciliation`: the price book (the latest exported price change per store x SKU)
  against the regular price observed in pos_sales; one row per disagreeing store x SKU. The
  pricing stage uses the same reconciled book (`core.sources.WarehouseSource.price_book`), so a new change's
  old_price is the observed shelf price.
- `order_reconciliation`: exported order lines that neither the ERP's open-order snapshots nor
  its receipts show after the grace period.

Their checks warn (non-blocking, WARN severity): a disagreement is listed with its lines for a
planner, it does not stop the plan."""

import dagster as dg
import pandas as pd

from ..core.decisions import EXPORTABLE
from ..core.pricing import PRICING_HISTORY_DAYS
from ..core.reconcile import (
    ORDER_LOOKBACK_DAYS,
    ORDER_TYPES,
    disagreement_markdown,
    reconcile_orders,
)
from ..core.sources import WarehouseSource
from ._common import model_key, operational, preview
from .ingestion import landing_assets
from .partitions import daily_partitions
from .resources import PolicyResource, WarehouseResource

_RAW = {a.key.path[-1]: a for a in landing_assets}
PRICE_CHECK = "book_matches_shelf"
ORDER_CHECK = "exported_orders_in_erp"
PREVIEW_LINES = 20


@dg.multi_asset(
    name="price_reconciliation",
    partitions_def=daily_partitions,
    specs=[
        dg.AssetSpec(
            "price_reconciliation",
            group_name="governance",
            deps=[model_key("fct_daily_demand")],
            description="Price book vs shelf: store x SKUs whose latest exported price change disagrees with the "
            "regular (non-promotion) price observed in pos_sales since; the book follows the shelf.",
        ),
        dg.AssetSpec(
            "reconciled_price_book",
            group_name="governance",
            deps=[model_key("fct_daily_demand")],
            description="The price book after reconciliation: the latest exported price per store x SKU, or the "
            "observed shelf price where the shelf contradicts it (what the pricing stage reads).",
        ),
    ],
    check_specs=[
        dg.AssetCheckSpec(
            PRICE_CHECK,
            asset="price_reconciliation",
            blocking=False,
            description="every exported price change the shelf has been seen at since agrees "
            "with the observed regular price (warns with the lines)",
        )
    ],
    can_subset=True,
)
@operational
def price_reconciliation(context: dg.AssetExecutionContext, warehouse: WarehouseResource, policy: PolicyResource):
    d = context.partition_key
    wh = warehouse.get()
    source = WarehouseSource(wh, policy.load().reconciliation)
    # the same reconciled book the pricing stage reads (core.sources.WarehouseSource.price_book)
    book = source.price_book(d, source.history(d, PRICING_HISTORY_DAYS, keys_as_categories=True))
    reconciled, dis, entries = book.book, book.disagreements, book.entries
    wh.write("price_reconciliation", dis, d)
    wh.write("reconciled_price_book", reconciled, d)
    if len(dis):
        context.log.warning(
            f"price book {d}: {len(dis)} of {entries} exported prices disagree with the shelf; "
            f"see table price_reconciliation/{d}"
        )
    return (
        dg.MaterializeResult(
            asset_key="price_reconciliation",
            metadata={
                "dagster/row_count": len(dis),
                "price_book_entries": entries,
                "disagreements": len(dis),
                "corrected_to_observed": int((reconciled["price_source"] == "observed").sum()),
                "disagreements_preview": dg.MetadataValue.md(disagreement_markdown(dis, PREVIEW_LINES)),
            },
            check_results=[
                _warn(
                    PRICE_CHECK,
                    dis,
                    f"{len(dis)} of {entries} exported price(s) disagree with the regular "
                    f"price observed on the shelf; the book follows the shelf (table price_reconciliation/{d})",
                    price_book_entries=entries,
                )
            ],
        ),
        dg.MaterializeResult(
            asset_key="reconciled_price_book",
            metadata={"dagster/row_count": len(reconciled), "preview": preview(reconciled)},
        ),
    )


def exported_orders(wh, d: str, lookback_days: int = ORDER_LOOKBACK_DAYS) -> pd.DataFrame | None:
    """Exported order lines of the decision logs of the `lookback_days` plan dates before `d`."""
    start = (pd.Timestamp(d) - pd.Timedelta(days=lookback_days + 1)).date().isoformat()
    parts = [p for p in wh.partitions("decision_log") if start <= p < d]
    if not parts:
        return None
    log = pd.concat([wh.read("decision_log", p) for p in parts], ignore_index=True)
    return log[log["decision_type"].isin(ORDER_TYPES) & log["status"].isin(EXPORTABLE)]


def _erp(wh, table: str, d: str, days: int) -> pd.DataFrame | None:
    """The partitions of a raw landing table for the `days` days up to `d`."""
    start = (pd.Timestamp(d) - pd.Timedelta(days=days)).date().isoformat()
    parts = [p for p in wh.partitions(table) if start <= p <= d]
    return pd.concat([wh.read(table, p) for p in parts], ignore_index=True) if parts else None


@dg.asset(
    partitions_def=daily_partitions,
    group_name="governance",
    deps=[_RAW["raw_open_orders"], _RAW["raw_receipts"]],
    check_specs=[
        dg.AssetCheckSpec(
            ORDER_CHECK,
            asset="order_reconciliation",
            blocking=False,
            description="every exported order line shows in the ERP's open orders or receipts "
            "within the policy's order_grace_days of its order date (warns with the lines)",
        )
    ],
    description="Exported order lines (purchase orders, replenishments, transfers) that the ERP's open orders and "
    "receipts do not show after the grace period: missing in the ERP.",
)
@operational
def order_reconciliation(context: dg.AssetExecutionContext, warehouse: WarehouseResource, policy: PolicyResource):
    d = context.partition_key
    wh = warehouse.get()
    rules = policy.load().reconciliation
    grace, lookback = rules.order_grace_days, rules.order_lookback_days
    exported = exported_orders(wh, d, lookback)
    window = lookback + 1
    missing = reconcile_orders(
        exported,
        _erp(wh, "raw_open_orders", d, window),
        _erp(wh, "raw_receipts", d, window),
        d,
        grace_days=grace,
        lookback_days=lookback,
    )
    wh.write("order_reconciliation", missing, d)
    if len(missing):
        context.log.warning(
            f"orders {d}: {len(missing)} exported order line(s) missing in the ERP; see table order_reconciliation/{d}"
        )
    age = (
        (pd.Timestamp(d) - pd.to_datetime(exported["order_date"]).dt.normalize()).dt.days
        if exported is not None
        else None
    )
    judged = 0 if age is None else int(((age >= grace) & (age < lookback)).sum())
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(missing),
            "missing_in_erp": len(missing),
            "lines_judged": judged,
            "grace_days": grace,
            "lookback_days": lookback,
            "missing_preview": dg.MetadataValue.md(disagreement_markdown(missing, PREVIEW_LINES)),
        },
        check_results=[
            _warn(
                ORDER_CHECK,
                missing,
                f"{len(missing)} exported order line(s) not in the ERP's open orders "
                f"or receipts {grace}+ days after their order date (table "
                f"order_reconciliation/{d})",
                lines_judged=judged,
            )
        ],
    )


def _warn(name: str, lines: pd.DataFrame, what: str, **meta) -> dg.AssetCheckResult:
    """A non-blocking check result: fails with WARN severity when `lines` is not empty, with the
    count and a markdown table of the first PREVIEW_LINES lines."""
    return dg.AssetCheckResult(
        check_name=name,
        passed=lines.empty,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "count": len(lines),
            **meta,
            "lines": dg.MetadataValue.md(disagreement_markdown(lines, PREVIEW_LINES)),
        },
        description=None if lines.empty else what,
    )


reconcile_assets = [price_reconciliation, order_reconciliation]
