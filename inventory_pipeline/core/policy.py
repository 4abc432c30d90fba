"""The versioned decision policy: one YAML file, validated on load, hashed for the audit trail."""

from __future__ import annotations

import hashlib
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IngestionPolicy(_Strict):
    max_quarantine_share: float = Field(0.01, ge=0, le=1)


class ForecastPolicy(_Strict):
    horizon_days: int = Field(30, ge=1, le=366)
    reported_horizons: list[int] = [14, 30]
    history_days: int = Field(364, ge=28)
    season_length: int = Field(7, ge=1)
    intermittent_adi: float = Field(1.32, gt=1)
    levels: list[int] = [80, 90, 98]


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
