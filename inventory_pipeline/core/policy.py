"""The versioned decision policy: one YAML file, validated on load, hashed for the audit trail."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IngestionPolicy(_Strict):
    # per file and day: rejected rows / the file's rows; past it (with at least min_quarantined_rows
    # rejected) the file is unusable and the day's plan stops
    max_quarantine_share: float = Field(0.25, ge=0, le=1)
    min_quarantined_rows: int = Field(3, ge=1)
    # an open order expected more than this many days after its snapshot's date is quarantined
    max_expected_days: int = Field(365, ge=1)


class ReconciliationPolicy(_Strict):
    """What was exported against what the landing zone shows happened (core/reconcile.py)."""

    # a regular-price observation this many days after a change's effective date judges it
    price_grace_days: int = Field(1, ge=0)
    # judged changes of one plan, all still at their old price, that call the batch not applied
    batch_min_evidence: int = Field(2, ge=1)
    # days an exported order line may take to show in the ERP's open orders or receipts
    order_grace_days: int = Field(2, ge=0)
    # exported order lines older than this are no longer judged
    order_lookback_days: int = Field(28, ge=1)

    @model_validator(mode="after")
    def _lookback_past_grace(self):
        if self.order_lookback_days <= self.order_grace_days:
            raise ValueError(
                f"order_lookback_days ({self.order_lookback_days}) must exceed order_grace_days "
                f"({self.order_grace_days}): no exported line could ever be judged"
            )
        return self


class ForecastPolicy(_Strict):
    horizon_days: int = Field(30, ge=14, le=366)
    reported_horizons: list[int] = [14, 30]
    history_days: int = Field(364, ge=28)
    season_length: int = Field(7, ge=1)
    intermittent_adi: float = Field(1.32, gt=1)
    erratic_cv2: float = Field(0.49, gt=0)
    cv_windows: int = Field(3, ge=2, le=12)
    cv_horizon: int = Field(14, ge=1, le=60)
    cv_sample_series: int = Field(300, ge=0)
    censoring: bool = True
    uplift: bool = True
    time_budget_seconds: float = Field(120.0, gt=0)  # per class, for the final fit with intervals
    # the uplift and event multipliers are shrunk toward 1 with this many units of prior weight
    uplift_prior_units: float = Field(50.0, gt=0)
    seed: int = Field(0, ge=0)  # the CV's sample of series and the global model's random state
    family: str = Field(
        "statsforecast", pattern="^(statsforecast|mlforecast|combined)$"
    )  # model family (a challenger may switch it)
    # the CV score each class's model minimises: wape (median-optimal) or rmsse (mean-optimal)
    selection_metric: str = Field("wape", pattern="^(wape|rmsse)$")
    # non-seasonal models (WindowAverage, SES, Croston, TSB, IMAPA, ADIDA) forecast on the category's
    # day-of-week profile instead of one flat level
    flat_weekly_profile: bool = False
    # last year's category ramp where it stands out from a month's drift (needs a year of history)
    yearly_profile: bool = True
    candidates: dict[str, list[str]] | None = None  # class -> statsforecast models (None: the defaults)
    promotion_tolerance: float = Field(0.0, ge=0, le=0.2)  # CV WAPE a challenger may lose and still win
    # model choice (the CV over every candidate) runs on a plan at most this many days after the
    # last one; the plans between reuse its choice per class and fit only those models (1 = every plan)
    reselect_every_days: int = Field(7, ge=1, le=91)
    # the chosen models' parameters are estimated (the global model trained) at most this many days
    # apart; the plans between run the kept parameters forward over their own day's series and
    # predict with the kept global model (core.forecast_fits, core.forecast_global_fits; 1 = every plan)
    refit_every_days: int = Field(7, ge=1, le=91)
    drift_window_days: int = Field(14, ge=7, le=60)
    drift_warn_bias: float = Field(0.15, gt=0)  # |bias| of a class past which the drift check warns
    drift_fail_bias: float = Field(0.30, gt=0)  # ... and fails
    drift_tracking_signal: float = Field(4.0, gt=0)  # per-series |TS| counted as drifting
    levels: list[int] | None = None  # accepted for old policy files; output quantiles are fixed now

    @field_validator("candidates")
    @classmethod
    def _known_models(cls, v):
        from .forecasting import KNOWN_MODELS, STAT_CLASSES

        for k, names in (v or {}).items():
            if k not in STAT_CLASSES:
                raise ValueError(f"unknown demand class {k!r} (classes: {', '.join(STAT_CLASSES)})")
            bad = [n for n in names if n not in KNOWN_MODELS]
            if bad or not names:
                raise ValueError(
                    f"class {k!r}: unknown model(s) {bad or '(none given)'} (known: {', '.join(KNOWN_MODELS)})"
                )
        return v


class PricingPolicy(_Strict):
    """Guardrails of the pricing stage (core/pricing.py); every one is checked by the blocking
    `guardrails` asset check."""

    enabled: bool = True
    horizon_days: int = Field(14, ge=1, le=90)  # margin is maximised over this many days
    min_margin: float = Field(0.05, ge=0, le=5)  # price >= cost x (1 + min_margin)
    max_change_pct: float = Field(10.0, gt=0, le=50)  # per step, relative to the current price
    max_markdown_pct: float = Field(20.0, gt=0, le=70)  # per step, markdowns of overstocked items (clearance)
    min_days_between_changes: int = Field(14, ge=0, le=365)
    min_days_between_markdowns: int = Field(7, ge=0, le=365)  # cadence of markdowns of overstocked items
    category_avg_change_cap_pct: float = Field(3.0, gt=0, le=50)  # |mean change| of a category per step
    price_endings: list[float] = [
        0.09,
        0.19,
        0.29,
        0.39,
        0.49,
        0.59,
        0.69,
        0.79,
        0.89,
        0.99,
    ]  # allowed cents; [] = any cent
    overstock_weeks: float = Field(
        8.0, gt=0
    )  # weeks of supply above which an item whose stock is at risk may be marked down (carried_excess)
    markdown_pct: float = Field(8.0, ge=0, le=50)  # minimum markdown of an overstocked item
    elasticity_min: float = Field(-5.0, lt=0)
    elasticity_max: float = Field(-0.3, lt=0)
    min_price_variation: float = Field(0.02, ge=0)  # smallest regular-price step (log) used as evidence
    elasticity_between_sku_sd: float = Field(0.4, gt=0)  # prior spread of SKUs around their category
    default_elasticity: float = Field(
        -1.5, lt=0
    )  # when nothing in the chain ever changed price; and the controls' netting elasticity
    net_control_repricing: bool = False  # controls net of their own repricing (docs/pricing.md)
    # elasticities estimated at most this many days apart; plans between reuse the last estimate
    # (1 = estimate every plan)
    reestimate_every_days: int = Field(1, ge=1, le=91)
    min_gain_pct: float = Field(1.0, ge=0, le=50)  # a change must raise the item's expected margin this much
    solver_seconds: float = Field(30.0, gt=0)  # HiGHS time limit for the price-ladder MILP
    # robustness: a change must gain across this central interval of the elasticity's posterior
    elasticity_interval: float = Field(0.6, ge=0, lt=1)
    # markdowns: stock that will not sell at the regular price within this horizon is excess ...
    sell_through_weeks: float = Field(26.0, gt=0)
    # ... worth this share of its unit cost at clearance (jobber, outlet) when it never sells
    salvage_value_share: float = Field(0.3, ge=0, le=1)
    # a carried (not discontinued, not seasonal) item's excess: sells_later keeps selling at whatever price
    # holds, so the item is priced for its margin like any other and only end-of-life or season-end stock
    # is marked down; salvage clears what does not sell within sell_through_weeks at salvage_value_share
    carried_excess: Literal["sells_later", "salvage"] = "sells_later"
    # a discontinued item leaves the shelf (cleared at salvage) this many weeks after its discontinue date
    end_of_life_weeks: float = Field(8.0, gt=0)

    # the stage works in fractions; the file states percentages (what a pricing manager writes)
    @property
    def max_change(self) -> float:
        return self.max_change_pct / 100

    @property
    def max_markdown(self) -> float:
        return self.max_markdown_pct / 100

    @property
    def min_markdown(self) -> float:
        return self.markdown_pct / 100

    @property
    def category_avg_change_cap(self) -> float:
        return self.category_avg_change_cap_pct / 100

    @property
    def min_gain(self) -> float:
        return self.min_gain_pct / 100

    @property
    def elasticity_bounds(self) -> tuple[float, float]:
        return self.elasticity_min, self.elasticity_max

    @field_validator("price_endings")
    @classmethod
    def _cents(cls, v):
        bad = [x for x in v if not 0 <= x < 1]
        if bad:
            raise ValueError(f"price endings are cents in [0, 1), got {bad}")
        return sorted(set(round(x, 2) for x in v))

    @model_validator(mode="after")
    def _ranges(self):
        if self.elasticity_min >= self.elasticity_max:
            raise ValueError(
                f"elasticity_min ({self.elasticity_min}) must be below elasticity_max ({self.elasticity_max})"
            )
        if self.max_markdown_pct < self.max_change_pct:
            raise ValueError(
                f"max_markdown_pct ({self.max_markdown_pct}) is the clearance step of overstocked items: it "
                f"cannot be below max_change_pct ({self.max_change_pct})"
            )
        if self.min_days_between_markdowns > self.min_days_between_changes:
            raise ValueError(
                f"min_days_between_markdowns ({self.min_days_between_markdowns}) is the faster cadence of "
                f"overstocked items: it cannot exceed min_days_between_changes ({self.min_days_between_changes})"
            )
        if not self.elasticity_min <= self.default_elasticity <= self.elasticity_max:
            raise ValueError(
                f"default_elasticity {self.default_elasticity} is outside [elasticity_min, elasticity_max]"
            )
        return self


class CostPolicy(_Strict):
    annual_holding_rate: float = Field(0.25, gt=0, le=2)


class ReplenishmentPolicy(_Strict):
    """Targets and order sizing of the replenishment stage (core/replenishment.py)."""

    service_mode: str = Field("cost_optimal", pattern="^(class|cost_optimal|fixed)$")
    service_level: float = Field(0.95, gt=0.5, lt=1)  # fixed mode, and items of no class
    class_service_levels: dict[str, float] = {
        "AX": 0.99,
        "AY": 0.985,
        "AZ": 0.98,
        "BX": 0.98,
        "BY": 0.975,
        "BZ": 0.97,
        "CX": 0.97,
        "CY": 0.96,
        "CZ": 0.95,
    }
    abc_cuts: list[float] = [
        0.80,
        0.95,
    ]  # cumulative forecast-value shares closing classes A and B
    xyz_cuts: list[float] = [
        0.5,
        1.0,
    ]  # coefficient of variation of daily demand closing X and Y
    goodwill_share: float = Field(0.0, ge=0, le=5)  # cost_optimal: shortage cost = margin + share x price
    review_period_days: int = Field(1, ge=1)
    store_order_cost: float = Field(0.25, ge=0)  # per DC->store line: sets the (s, S) band by EOQ
    po_order_cost: float = Field(5.0, ge=0)  # per purchase-order line
    max_cycle_days: float = Field(14.0, ge=0)  # the band is at most this many days of demand
    daily_budget: float | None = Field(None, gt=0)  # purchase-order value per day (null: no cap)
    supplier_min_order_value: float = Field(0.0, ge=0)  # per supplier x DC purchase order
    supplier_min_order_values: dict[str, float] = {}  # supplier_id -> its own minimum
    lead_time_window_days: int = Field(180, ge=7)  # receipts that estimate supplier lead times
    lead_time_prior_orders: float = Field(5.0, ge=0)  # weight of the supplier master, in orders
    error_window_days: int = Field(56, ge=7)  # measured protection-period errors: window starts over these days
    error_reference_days: int = Field(28, ge=7)  # ... each against the trailing mean of these days
    solver_seconds: float = Field(30.0, gt=0)

    @field_validator("class_service_levels")
    @classmethod
    def _classes(cls, v):
        classes = [a + x for a in "ABC" for x in "XYZ"]
        unknown = sorted(set(v) - set(classes))
        missing = sorted(set(classes) - set(v))
        bad = {k: x for k, x in v.items() if not 0.5 < x < 1}
        if unknown or missing or bad:
            raise ValueError(
                f"class service levels need exactly the classes {', '.join(classes)} with levels in (0.5, 1)"
                + (f"; unknown {unknown}" if unknown else "")
                + (f"; missing {missing}" if missing else "")
                + (f"; out of range {bad}" if bad else "")
            )
        return v

    @field_validator("abc_cuts", "xyz_cuts")
    @classmethod
    def _cuts(cls, v):
        if len(v) != 2 or not 0 < v[0] < v[1]:
            raise ValueError(f"two increasing positive cut-offs expected, got {v}")
        return v


class ApprovalPolicy(_Strict):
    """Impact thresholds: a decision past one waits for a planner (core/decisions.route)."""

    max_order_value: float = Field(5000.0, ge=0)  # purchase order, replenishment or transfer line, at unit cost
    max_price_change_pct: float = Field(10.0, ge=0)
    max_transfer_units: float = Field(200, ge=0)
    min_confidence: float = Field(0.0, ge=0, le=1)  # below this confidence ...
    min_confidence_value: float = Field(0.0, ge=0)  # ... a decision worth at least this much waits


class GuardsPolicy(_Strict):
    """Runtime guards: rate limits and anomaly limits on what may be auto-approved, each re-checked
    by a blocking asset check, and the inventory-ledger tolerance."""

    max_daily_order_value: float | None = Field(None, gt=0)  # auto-approved purchase-order value per plan
    max_daily_order_value_multiple: float | None = Field(3.0, gt=0)  # ... or this x the median daily PO value
    max_daily_price_changes: int | None = Field(None, ge=0)  # auto-approved price changes per plan
    max_daily_price_change_share: float | None = Field(0.25, gt=0, le=1)  # ... or this share of priced items
    anomaly_multiple: float = Field(5.0, gt=1)  # an order line this many times its item's typical size waits
    anomaly_min_orders: int = Field(3, ge=1)  # typical = median of at least this many past orders
    history_days: int = Field(90, ge=7)  # past orders that set the typical sizes and daily value
    ledger_abs_tolerance_units: float = Field(0.0, ge=0)  # |on hand - ledger| allowed per location x SKU ...
    ledger_rel_tolerance: float = Field(0.02, ge=0, le=1)  # ... plus this share of the ledger's stock
    ledger_max_discrepancy_share: float = Field(0.01, ge=0, le=1)  # the check fails past this share of lines


class ExplanationPolicy(_Strict):
    """Planner-facing text. The template is built from each decision's numbers; a language model
    (Amazon Bedrock Converse) may only rephrase it, and only when enabled here and configured by
    INVENTORY_PIPELINE_BEDROCK_MODEL_ID (off by default)."""

    llm_rephrase: bool = False
    max_decisions: int = Field(50, ge=0)  # rephrased per plan (pending_review first)
    timeout_seconds: float = Field(10.0, gt=0, le=120)
    budget_seconds: float = Field(60.0, gt=0)  # all calls of one plan; past it, templates


class RebalancingPolicy(_Strict):
    """Store <-> store transfers: the rebalancing stage's configuration itself (core/rebalancing.py
    reads these fields; there is no second copy). The blocking `transfer_rules` asset check
    re-verifies every line against these rules."""

    enabled: bool = True  # false: no transfer is proposed (the stage still writes its empty table)
    min_transfer_units: int = Field(2, ge=1, le=10_000)  # a transfer line moves at least this many units, or none
    max_units_per_line: int = Field(0, ge=0)  # cap per transfer line; 0 = no cap
    pwl_breakpoints: int = Field(6, ge=1, le=50)  # segments of the piecewise-linear shortage curves
    solver_seconds: float = Field(20.0, gt=0, le=600)  # HiGHS time limit (the best solution found is used)
    milp_max_variables: int = Field(10_000, ge=0)  # above this many binaries: LP relaxation, rounded down
    mip_rel_gap: float = Field(1e-4, ge=0, lt=1)  # HiGHS' relative MIP gap at which a solution is accepted

    @model_validator(mode="after")
    def _line_cap(self):
        if 0 < self.max_units_per_line < self.min_transfer_units:
            raise ValueError(
                f"max_units_per_line ({self.max_units_per_line}) is below min_transfer_units "
                f"({self.min_transfer_units}): no transfer line could be sent (0 = no cap)"
            )
        return self


class Policy(_Strict):
    version: str
    ingestion: IngestionPolicy = IngestionPolicy()
    forecast: ForecastPolicy = ForecastPolicy()
    costs: CostPolicy = CostPolicy()
    pricing: PricingPolicy = PricingPolicy()
    replenishment: ReplenishmentPolicy = ReplenishmentPolicy()
    approval: ApprovalPolicy = ApprovalPolicy()
    guards: GuardsPolicy = GuardsPolicy()
    explanations: ExplanationPolicy = ExplanationPolicy()
    rebalancing: RebalancingPolicy = RebalancingPolicy()
    reconciliation: ReconciliationPolicy = ReconciliationPolicy()
    sha256: str = ""

    @property
    def tag(self) -> str:
        """`version+hash8`: what every decision records."""
        return f"{self.version}+{self.sha256[:8]}"

    def with_changes(self, section: str, **changes) -> Policy:
        """This policy with fields of one section changed and the same tag: what the twin runs for
        its static-price baseline (`pricing`, enabled=False) and its service-level frontier
        (`replenishment`, service_mode="fixed"). Not a policy file of its own, so not re-validated."""
        return self.model_copy(update={section: getattr(self, section).model_copy(update=changes)})


class PolicyError(ValueError):
    pass


def load_policy(path: str | Path) -> Policy:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise PolicyError(f"policy file {path}: cannot be read ({e})") from e
    try:
        data = yaml.safe_load(raw) or {}
    except yaml.YAMLError as e:
        raise PolicyError(f"policy file {path}: not valid YAML ({e})") from e
    if not isinstance(data, dict):
        raise PolicyError(f"policy file {path}: expected a mapping at the top level")
    try:
        return Policy(**data, sha256=hashlib.sha256(raw).hexdigest())
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
        raise PolicyError(f"policy file {path}: {problems}") from e
