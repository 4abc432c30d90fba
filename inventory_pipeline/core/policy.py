"""The versioned decision policy: one YAML file, validated on load, hashed for the audit trail."""

from __future__ import annotations

import hashlib
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IngestionPolicy(_Strict):
    max_quarantine_share: float = Field(0.01, ge=0, le=1)


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
    time_budget_seconds: float = Field(120.0, gt=0)
    family: str = Field("statsforecast", pattern="^(statsforecast|mlforecast)$")  # model family (a challenger may switch it)
    candidates: dict[str, list[str]] | None = None  # class -> statsforecast models (None: the defaults)
    promotion_tolerance: float = Field(0.0, ge=0, le=0.2)  # CV WAPE a challenger may lose and still win
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
                raise ValueError(f"class {k!r}: unknown model(s) {bad or '(none given)'} (known: {', '.join(KNOWN_MODELS)})")
        return v


class CostPolicy(_Strict):
    annual_holding_rate: float = Field(0.25, gt=0, le=2)


class ReplenishmentPolicy(_Strict):
    service_level: float = Field(0.95, gt=0.5, lt=1)
    review_period_days: int = Field(1, ge=1)


class ApprovalPolicy(_Strict):
    max_order_value: float = Field(5000.0, ge=0)
    max_price_change_pct: float = Field(10.0, ge=0)
    max_transfer_units: float = Field(200, ge=0)


class Policy(_Strict):
    version: str
    ingestion: IngestionPolicy = IngestionPolicy()
    forecast: ForecastPolicy = ForecastPolicy()
    costs: CostPolicy = CostPolicy()
    replenishment: ReplenishmentPolicy = ReplenishmentPolicy()
    approval: ApprovalPolicy = ApprovalPolicy()
    sha256: str = ""

    @property
    def tag(self) -> str:
        """`version+hash8`: what every decision records."""
        return f"{self.version}+{self.sha256[:8]}"


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
