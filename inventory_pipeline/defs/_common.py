"""Small shell helpers shared by the stage modules (no maths)."""

import dagster as dg
import pandas as pd
import pandera.pandas as pa
from dagster_dbt import get_asset_key_for_model

from .dbt import warehouse_models


def model_key(name: str) -> dg.AssetKey:
    return get_asset_key_for_model([warehouse_models], name)


def contract_check(name: str, model: type[pa.DataFrameModel], df: pd.DataFrame) -> dg.AssetCheckResult:
    """Validate a stage output against its pandera contract, as an asset check result."""
    try:
        model.validate(df, lazy=True)
        return dg.AssetCheckResult(check_name=name, passed=True, metadata={"rows": len(df)})
    except pa.errors.SchemaErrors as e:
        fc = e.failure_cases
        return dg.AssetCheckResult(
            check_name=name, passed=False, metadata={"failures": len(fc), "examples": dg.MetadataValue.md(fc.head(10).to_markdown())},
            description=f"{len(fc)} contract failure(s) in {model.__name__}",
        )


def preview(df: pd.DataFrame, n: int = 10) -> dg.MetadataValue:
    return dg.MetadataValue.md(df.head(n).to_markdown(index=False))


def contract_spec(asset: str, model: type[pa.DataFrameModel]) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec("output_contract", asset=asset, blocking=True,
                             description=f"output satisfies the pandera contract {model.__name__}")


def violations_check(name: str, violations: pd.DataFrame, by: str, what: str, policy: str) -> dg.AssetCheckResult:
    """A blocking rule check's result from a core checker's table (one row per violation, with a
    `by` column naming the rule): passes when the table is empty."""
    return dg.AssetCheckResult(
        check_name=name, passed=violations.empty,
        metadata={"violations": len(violations), "policy": policy, f"by_{by}": violations[by].value_counts().to_dict(),
                  "examples": dg.MetadataValue.md(violations.head(10).to_markdown(index=False))},
        description=None if violations.empty else f"{len(violations)} {what}")
