"""Small shell helpers shared by the stage modules (no maths)."""

import functools
import time

import dagster as dg
import pandas as pd
import pandera.pandas as pa
from dagster_dbt import get_asset_key_for_model

from ..config import settings
from ..core.retries import backoff_seconds, is_transient
from .dbt import warehouse_models


def write_tables(wh, tables: dict[str, pd.DataFrame], d: str) -> None:
    """Write a stage's output tables (`stage.tables(outputs)`) to the plan date's partitions."""
    for name, df in tables.items():
        wh.write(name, df, d)


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
            check_name=name,
            passed=False,
            metadata={"failures": len(fc), "examples": dg.MetadataValue.md(fc.head(10).to_markdown())},
            description=f"{len(fc)} contract failure(s) in {model.__name__}",
        )


def preview(df: pd.DataFrame, n: int = 10) -> dg.MetadataValue:
    return dg.MetadataValue.md(df.head(n).to_markdown(index=False))


def decision_table(name: str, deps, description: str, **kw) -> dg.AssetSpec:
    """A table of the daily plan (asset group `decisions`), one of the outputs of a stage's asset."""
    return dg.AssetSpec(name, group_name="decisions", deps=deps, description=description, **kw)


def blocking_check(name: str, asset: str, description: str) -> dg.AssetCheckSpec:
    """A governance gate: while it fails, nothing downstream of `asset` runs."""
    return dg.AssetCheckSpec(name, asset=asset, blocking=True, description=description)


def contract_spec(asset: str, model: type[pa.DataFrameModel]) -> dg.AssetCheckSpec:
    return blocking_check("output_contract", asset, f"output satisfies the pandera contract {model.__name__}")


def violations_check(name: str, violations: pd.DataFrame, by: str, what: str, policy: str) -> dg.AssetCheckResult:
    """A blocking rule check's result from a core checker's table (one row per violation, with a
    `by` column naming the rule): passes when the table is empty."""
    return dg.AssetCheckResult(
        check_name=name,
        passed=violations.empty,
        metadata={
            "violations": len(violations),
            "policy": policy,
            f"by_{by}": violations[by].value_counts().to_dict(),
            "examples": dg.MetadataValue.md(violations.head(10).to_markdown(index=False)),
        },
        description=None if violations.empty else f"{len(violations)} {what}",
    )


def max_retries() -> int:
    """Retries of a step after a transient failure (INVENTORY_PIPELINE_MAX_RETRIES, default 3)."""
    return settings().max_retries


def operational(fn):
    """Wrap an asset's body: a transient failure (core.retries.is_transient: network, S3
    throttling, a DuckDB lock) becomes a Dagster retry with exponential backoff and jitter (the
    step re-runs in the same run, and the UI shows each attempt); any other error fails at once.
    The step's wall time is added to the materialisation's metadata as `elapsed_s`."""

    @functools.wraps(fn)
    def wrapper(context, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            out = fn(context, *args, **kwargs)
        except Exception as e:
            if not is_transient(e):
                raise
            wait = backoff_seconds(context.retry_number, base=settings().retry_base_seconds)
            context.log.warning(
                f"transient failure ({type(e).__name__}: {e}); retry {context.retry_number + 1} of "
                f"{max_retries()} in {wait:.1f} s"
            )
            raise dg.RetryRequested(max_retries=max_retries(), seconds_to_wait=wait) from e
        elapsed = round(time.perf_counter() - t0, 3)
        # a multi-asset returns one result per asset; the selected ones are yielded (a subset run
        # selects fewer; a MaterializeResult is itself a tuple, so it is told apart first)
        if isinstance(out, (list, tuple)) and not isinstance(out, dg.MaterializeResult):
            selected = context.selected_asset_keys
            return (_timed(r, elapsed) for r in out if dg.AssetKey.from_coercible(r.asset_key) in selected)
        return _timed(out, elapsed)

    return wrapper


def _timed(out, elapsed: float):
    """`out` with the step's wall time in its metadata (`elapsed_s`), when it is a MaterializeResult."""
    if isinstance(out, dg.MaterializeResult):
        out = dg.MaterializeResult(
            asset_key=out.asset_key,
            metadata={**(out.metadata or {}), "elapsed_s": elapsed},
            check_results=out.check_results,
            data_version=out.data_version,
            tags=out.tags,
        )
    return out
