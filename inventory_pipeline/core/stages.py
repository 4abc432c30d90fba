"""The decision stages as one API, run by the Dagster assets and by the digital twin alike.

A decision stage is three steps over typed values:

    inputs  = stage.read(source, plan_date, policy)  # what it needs, from a `core.sources.Source`
    outputs = stage.run(inputs, plan_date, policy)   # the decision maths (core modules)
    broken  = stage.check(inputs, outputs, policy)   # its rules re-derived from the output

`policy` is the validated policy file (`core.policy.Policy`): each stage hands the core its own
section (`policy.pricing`, `policy.replenishment`, `policy.rebalancing`) and the shared
`policy.costs`; there is no second copy of a setting. The forecast stage
reads and runs the same way and adds `serve`, the promotion gate between the policy's
configuration and the registry's champion; its output laws are the pandera contract's. The
asset of a stage (`defs/<stage>.py`) reads through `WarehouseSource`, runs, writes
`stage.tables(outputs)` and turns `check` into its blocking asset check. The twin
(`simulation/pipeline_policy.py`) reads through its own source over what it observed and calls
`plan_decisions`, which runs the same stage objects in the asset graph's order, handing each
stage's outputs to the next through the source (`Chained`), as the assets hand them over
through the warehouse.

    demand_forecast        FORECAST       core.forecasting.run_forecast, then the promotion gate
    price_recommendations  PRICING        core.pricing.recommend_prices
    replenishment_orders   REPLENISHMENT  core.replenishment.plan_replenishment
    rebalancing_transfers  REBALANCING    core.rebalancing.plan_transfers
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from .forecasting import CvState, ForecastResult, ForecastSettings, reusable_cv, reusable_selection, run_forecast
from .policy import Policy
from .pricing import PRICING_HISTORY_DAYS, guardrail_violations, recommend_prices, with_lifecycle
from .rebalancing import TransferPlan, plan_transfers, transfer_violations
from .replenishment import ReplenishmentPlan, delivery_schedule, order_violations, plan_replenishment
from .sources import BOOK_COLUMNS, FORECAST_HISTORY_COLUMNS, PriceBook, Source


def gate_decision(candidate_wape: float, champion_wape: float | None, tolerance: float = 0.0) -> tuple[bool, str]:
    """The promotion gate: a candidate becomes champion only when its CV WAPE on the same window
    is not worse than the champion's (within `tolerance`, absolute)."""
    if champion_wape is None:
        return True, "no champion yet: the candidate becomes champion"
    if not (candidate_wape == candidate_wape):
        return False, "candidate CV WAPE is undefined"
    if not (champion_wape == champion_wape):
        return True, "champion CV WAPE is undefined on this window"
    if candidate_wape <= champion_wape + tolerance:
        return True, f"candidate CV WAPE {candidate_wape:.4f} <= champion {champion_wape:.4f}: promoted"
    return False, f"candidate CV WAPE {candidate_wape:.4f} > champion {champion_wape:.4f}: champion kept"


# ---- forecast -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ForecastInputs:
    history: pd.DataFrame  # fct_daily_demand, the last `history_days_read` days
    categories: pd.Series  # sku_id -> category (pooled profiles, the global model's chunks)
    calendar: pd.DataFrame  # stg_calendar: date, event, region
    promotions: pd.DataFrame | None  # the promotion plan known on the plan date (landing v1.1)


@dataclass(frozen=True)
class ServedForecast:
    """The forecast that serves the plan and why: the candidate (the policy's configuration) or the
    registry's champion, as the promotion gate decided."""

    serving: ForecastResult
    candidate: ForecastResult
    promoted: bool
    reason: str
    champion_cv_wape: float | None = None
    champion_version: str | None = None  # the registry's version of the champion, where there is one


class ForecastStage:
    name = "demand_forecast"

    def config(self, policy: Policy, **where) -> ForecastSettings:
        """The policy's forecast section, run where `where` says (the engine settings)."""
        return ForecastSettings.of(policy.forecast, **where)

    def read(self, source: Source, plan_date: str, cfg: ForecastSettings) -> ForecastInputs:
        return ForecastInputs(
            history=source.history(plan_date, cfg.history_days_read, FORECAST_HISTORY_COLUMNS, keys_as_categories=True),
            categories=source.products().set_index("sku_id")["category"],
            calendar=source.calendar(),
            promotions=source.planned_promotions(plan_date, cfg.horizon_days),
        )

    def model_choice(self, last_run: dict | None, plan_date: str, cfg: ForecastSettings) -> tuple[dict | None, str]:
        """The earlier plan's model choice this plan reuses, and its day; (None, plan_date) to
        choose afresh (`reusable_selection`: the policy's reselect_every_days)."""
        return reusable_selection(last_run, plan_date, cfg)

    def cv_reuse(self, last_run: dict | None, plan_date: str, cfg: ForecastSettings, choice_reused: bool):
        """The day of the earlier cross-validation this plan reuses, or None (`reusable_cv`)."""
        return reusable_cv(last_run, plan_date, cfg, choice_reused)

    def carried_fits(self, last_run: dict | None, fits: pd.DataFrame | None, cfg: ForecastSettings):
        """The fits an earlier plan kept, when it ran this configuration (else None: estimate);
        which of them are young enough is `run_forecast`'s rule (policy refit_every_days)."""
        same = last_run is not None and last_run.get("config_fingerprint") == cfg.fingerprint()
        return fits if same and fits is not None and len(fits) else None

    def run(
        self,
        inputs: ForecastInputs,
        plan_date: str,
        cfg: ForecastSettings,
        selection: dict | None = None,
        progress=None,
        fits: pd.DataFrame | None = None,
        cv_state: CvState | None = None,
        global_fits: pd.DataFrame | None = None,
    ) -> ForecastResult:
        """`selection` fixes the model per class (a champion's, or the twin's between reselections);
        `fits` are the parameters an earlier plan kept (`carried_fits`), `global_fits` its global
        models (the same rule), `cv_state` its cross-validation (`cv_reuse`)."""
        return run_forecast(
            inputs.history,
            plan_date,
            cfg,
            inputs.categories,
            inputs.calendar,
            selection=selection,
            progress=progress,
            promotions=inputs.promotions,
            fits=fits,
            cv_state=cv_state,
            global_fits=global_fits,
        )

    def serve(
        self, candidate: ForecastResult, champion: ForecastResult | None, tolerance: float = 0.0
    ) -> ServedForecast:
        """The promotion gate (`gate_decision`): the candidate serves when there is no
        other champion, or when its CV WAPE on the same window is not worse than the champion's."""
        wape = candidate.metrics.get("cv_wape", float("nan"))
        if champion is None:
            promoted, reason = gate_decision(wape, None)
            return ServedForecast(candidate, candidate, promoted, reason)
        champ_wape = champion.metrics.get("cv_wape")
        promoted, reason = gate_decision(wape, champ_wape, tolerance)
        return ServedForecast(candidate if promoted else champion, candidate, promoted, reason, champ_wape)


# ---- pricing ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PricingInputs:
    forecast: pd.DataFrame  # demand_forecast of the plan date (or rolled forward to it)
    history: pd.DataFrame  # fct_daily_demand, the last PRICING_HISTORY_DAYS
    products: pd.DataFrame  # dim_products with the landing file's lifecycle dates
    positions: pd.DataFrame  # fct_inventory_positions of the plan date
    locations: pd.DataFrame  # dim_locations
    book: PriceBook  # the prices this pipeline exported, reconciled with the shelf
    forecast_date: str | None = None  # the day the forecast was made, when earlier
    kept: pd.DataFrame | None = None  # the last plan's recommendations: elasticities to reuse (reestimate_every_days)


def _reuses_elasticities(policy: Policy) -> bool:
    return policy.pricing.enabled and policy.pricing.reestimate_every_days > 1


class PricingStage:
    name = "price_recommendations"

    def read(self, source: Source, plan_date: str, policy: Policy) -> PricingInputs:
        history = source.history(plan_date, PRICING_HISTORY_DAYS, keys_as_categories=True)
        return PricingInputs(
            forecast=source.table("demand_forecast", plan_date),
            history=history,
            products=with_lifecycle(source.products(), source.product_lifecycle()),
            positions=source.positions(plan_date),
            locations=source.locations(),
            book=source.price_book(plan_date, history),
            forecast_date=source.forecast_date(plan_date),
            kept=source.kept_elasticities(plan_date) if _reuses_elasticities(policy) else None,
        )

    def run(self, inputs: PricingInputs, plan_date: str, policy: Policy) -> pd.DataFrame:
        return recommend_prices(
            inputs.forecast,
            inputs.history,
            inputs.products,
            plan_date,
            policy.pricing,
            positions=inputs.positions,
            locations=inputs.locations,
            book=inputs.book.book[BOOK_COLUMNS],
            forecast_date=inputs.forecast_date,
            costs=policy.costs,
            kept_elasticities=inputs.kept,
        )

    def tables(self, recommendations: pd.DataFrame) -> dict[str, pd.DataFrame]:
        return {"price_recommendations": recommendations}

    def check(self, inputs: PricingInputs, recommendations: pd.DataFrame, policy: Policy) -> pd.DataFrame:
        """Every recommendation outside a guardrail (one row per violation)."""
        return guardrail_violations(recommendations, policy.pricing)


# ---- replenishment ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplenishmentInputs:
    forecast: pd.DataFrame
    prices: pd.DataFrame  # price_recommendations (the demand multiplier of the recommended price)
    positions: pd.DataFrame
    products: pd.DataFrame  # dim_products with the landing file's lifecycle dates
    locations: pd.DataFrame  # dim_locations with each store's delivery weekdays (`delivery_schedule`)
    lead_times: pd.DataFrame  # fct_order_lead_times received up to the plan date
    history: pd.DataFrame  # fct_daily_demand: the measured protection-period error
    promotions_planned: bool  # the forecast took a promotion plan (landing v1.1)


class ReplenishmentStage:
    name = "replenishment_orders"

    def read(self, source: Source, plan_date: str, policy: Policy) -> ReplenishmentInputs:
        return ReplenishmentInputs(
            forecast=source.table("demand_forecast", plan_date),
            prices=source.table("price_recommendations", plan_date),
            positions=source.positions(plan_date),
            products=with_lifecycle(source.products(), source.product_lifecycle()),  # discontinued: no PO
            # a store its DC delivers to on one weekday (lanes.csv's delivery_weekday) reviews weekly
            locations=delivery_schedule(source.locations(), source.delivery_lanes()),
            # only the receipts the lead-time estimate weighs: a fifth of an M5 history's 1.4 M lines
            lead_times=source.lead_times(plan_date, policy.replenishment.lead_time_window_days),
            history=source.history(plan_date, PRICING_HISTORY_DAYS, keys_as_categories=True),
            promotions_planned=source.promotions_planned(plan_date),
        )

    def run(self, inputs: ReplenishmentInputs, plan_date: str, policy: Policy) -> ReplenishmentPlan:
        return plan_replenishment(
            inputs.forecast,
            inputs.prices,
            inputs.positions,
            inputs.products,
            inputs.locations,
            plan_date,
            policy.replenishment,
            lead_time_observations=inputs.lead_times,
            history=inputs.history,
            costs=policy.costs,
            # announced promotions are planned by the forecast, not surprises the protection covers
            promotions_planned=inputs.promotions_planned,
        )

    def tables(self, plan: ReplenishmentPlan) -> dict[str, pd.DataFrame]:
        return {
            "replenishment_orders": plan.orders,
            "replenishment_targets": plan.targets,  # what rebalancing plans against
            "replenishment_unmet": plan.unmet,  # what a limit kept from being ordered, and why
        }

    def check(self, inputs: ReplenishmentInputs, plan: ReplenishmentPlan, policy: Policy) -> pd.DataFrame:
        """Every order line breaking an order rule (packs, MOQ, DC stock, capacity, budget, minimum)."""
        return order_violations(
            plan.orders, inputs.products, inputs.locations, inputs.positions, policy.replenishment, plan.arrival_sales
        )


# ---- rebalancing --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RebalancingInputs:
    targets: pd.DataFrame  # replenishment_targets of the plan date
    orders: pd.DataFrame  # replenishment_orders of the plan date
    lanes: pd.DataFrame  # stg_lanes
    locations: pd.DataFrame  # dim_locations


class RebalancingStage:
    name = "rebalancing_transfers"

    def read(self, source: Source, plan_date: str, policy: Policy) -> RebalancingInputs:
        return RebalancingInputs(
            targets=source.table("replenishment_targets", plan_date),
            orders=source.table("replenishment_orders", plan_date),
            lanes=source.lanes(),
            locations=source.locations(),
        )

    def run(self, inputs: RebalancingInputs, plan_date: str, policy: Policy) -> TransferPlan:
        return plan_transfers(
            inputs.targets, inputs.lanes, inputs.locations, plan_date, policy.rebalancing, orders=inputs.orders
        )

    def tables(self, plan: TransferPlan) -> dict[str, pd.DataFrame]:
        return {"rebalancing_transfers": plan.transfers}

    def check(self, inputs: RebalancingInputs, plan: TransferPlan, policy: Policy) -> pd.DataFrame:
        """Every transfer breaking a transfer rule (lanes, minimum units, donor need, both ways)."""
        return transfer_violations(
            plan.transfers, inputs.targets, inputs.lanes, policy.rebalancing, orders=inputs.orders
        )


FORECAST = ForecastStage()
PRICING, REPLENISHMENT, REBALANCING = PricingStage(), ReplenishmentStage(), RebalancingStage()
DECISION_STAGES = (PRICING, REPLENISHMENT, REBALANCING)  # the asset graph's order
# the daily plan's assets in graph order: the stages, the decision log, the ERP outbox
PLAN_ASSETS = (FORECAST.name, *(s.name for s in DECISION_STAGES), "decision_log", "erp_outbox")


# ---- the day's plan: every decision stage in order ----------------------------------------------


class Chained:
    """A source whose stage tables come first from the outputs of this plan's earlier stages (the
    warehouse partition the assets would have written), then from the underlying source."""

    def __init__(self, source: Source, outputs: dict[str, pd.DataFrame]) -> None:
        self._source, self.outputs = source, outputs

    def table(self, name: str, plan_date: str) -> pd.DataFrame:
        return self.outputs[name] if name in self.outputs else self._source.table(name, plan_date)

    def __getattr__(self, name):
        return getattr(self._source, name)


@dataclass
class DecisionPlan:
    """A plan date's decisions: each stage's inputs, outputs and rule violations, and the tables
    the assets write (`tables`)."""

    inputs: dict
    outputs: dict
    violations: dict[str, pd.DataFrame]
    tables: dict[str, pd.DataFrame]


def plan_decisions(source: Source, plan_date: str, policy: Policy) -> DecisionPlan:
    """Prices, orders and transfers for `plan_date`: the decision stages in the asset graph's
    order, each reading through `source` and the earlier stages' outputs. The twin's variants
    (pricing off, a fixed service level) are policies changed by `Policy.with_changes`."""
    chained = Chained(source, {})
    plan = DecisionPlan({}, {}, {}, {})
    for stage in DECISION_STAGES:
        inputs = stage.read(chained, plan_date, policy)
        outputs = stage.run(inputs, plan_date, policy)
        tables = stage.tables(outputs)
        chained.outputs.update(tables)
        plan.inputs[stage.name], plan.outputs[stage.name] = inputs, outputs
        plan.violations[stage.name] = stage.check(inputs, outputs, policy)
        plan.tables.update(tables)
    return plan
