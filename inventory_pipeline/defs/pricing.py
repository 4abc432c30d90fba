"""price_recommendations asset: the pricing stage (core.stages.PRICING over the warehouse) with
the policy file's guardrails; the
price-adjusted demand multiplier it writes is what replenishment plans against. The blocking
`guardrails` check re-verifies every recommendation against the policy, independently of the
optimiser: a failure stops the downstream stages of the partition."""

import dagster as dg

from ..contracts.outputs import PriceRecommendations
from ..core.pricing import PRICING_HISTORY_DAYS, price_changed
from ..core.sources import WarehouseSource
from ..core.stages import PRICING
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
from .resources import PolicyResource, WarehouseResource


@dg.asset(
    partitions_def=daily_partitions,
    group_name="decisions",
    deps=[
        "demand_forecast",
        model_key("fct_daily_demand"),
        model_key("fct_inventory_positions"),
        model_key("dim_products"),
        model_key("dim_locations"),
    ],
    check_specs=[
        contract_spec("price_recommendations", PriceRecommendations),
        blocking_check(
            "guardrails",
            "price_recommendations",
            "no recommended price breaks a guardrail of the policy file's pricing section",
        ),
    ],
    kinds={"cvxpy"},
    description="Recommended price per store x SKU: elasticity-aware margin optimum inside the policy's guardrails, "
    "with expected units and margin at both prices and a rationale.",
)
@operational
def price_recommendations(context: dg.AssetExecutionContext, warehouse: WarehouseResource, policy: PolicyResource):
    d = context.partition_key
    pol = policy.load()
    # the prices this pipeline already sent to the ERP (earlier partitions of the decision log;
    # all of them: a slow mover's last price may be older than the history window), reconciled
    # with the regular prices observed on the shelf: where the ERP did not apply an exported change
    # the book follows the shelf, so a new change's old_price is the shelf's (core/sources.py)
    inputs = PRICING.read(WarehouseSource(warehouse.get(), pol.reconciliation), d, pol)
    book = inputs.book
    context.log.info(
        f"pricing {d}: {len(inputs.history):,} history rows of {PRICING_HISTORY_DAYS} days, {len(book.book):,} prices "
        f"in the book ({len(book.disagreements)} corrected to the shelf), guardrails {pol.tag}"
    )
    recs = PRICING.run(inputs, d, pol)
    write_tables(warehouse.get(), PRICING.tables(recs), d)
    fc = inputs.forecast
    unpriced = len(fc[["location_id", "sku_id"]].drop_duplicates()) - len(recs)
    if unpriced:
        context.log.warning(
            f"{unpriced} store x SKU(s) in the forecast have no price (no sale, no base price): not priced"
        )
    changed = price_changed(recs["recommended_price"], recs["current_price"])
    violations = PRICING.check(inputs, recs, pol)
    margin_now, margin_new = (
        float(recs["expected_margin_current"].sum()),
        float(recs["expected_margin_recommended"].sum()),
    )
    guard = violations_check("guardrails", violations, "guardrail", "recommendation(s) outside a guardrail", pol.tag)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(recs),
            "price_changes": int(changed.sum()),
            "price_increases": int((changed & (recs["recommended_price"] > recs["current_price"])).sum()),
            "markdowns": int((recs["binding_guardrail"] == "markdown").sum()),
            "expected_margin_current": round(margin_now, 2),
            "expected_margin_recommended": round(margin_new, 2),
            "expected_margin_change_pct": round(100 * (margin_new / margin_now - 1), 2) if margin_now else 0.0,
            "binding_guardrails": recs["binding_guardrail"].value_counts().to_dict(),
            "elasticity_sources": recs.drop_duplicates("sku_id")["elasticity_source"]
            .str.split(":")
            .str[0]
            .value_counts()
            .to_dict(),
            "elasticities_estimated_on": _estimated_on(recs, d),
            "policy_version": pol.tag,
            "price_book_entries": len(book.book),
            "unpriced_items": unpriced,
            "price_book_disagreements": len(book.disagreements),
            "preview": preview(recs[changed] if changed.any() else recs),
        },
        check_results=[contract_check("output_contract", PriceRecommendations, recs), guard],
    )


def _estimated_on(recs, d: str) -> str:
    """Whether this plan estimated its elasticities or reused an earlier plan's (reestimate_every_days)."""
    on = {str(x)[:10] for x in recs["elasticity_estimated_on"].dropna().unique()}
    if not on:
        return "none (pricing disabled)"
    return "this plan" if on == {d} else f"reused from the plan of {', '.join(sorted(on))}"
