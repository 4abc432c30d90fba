"""One asset per landing file: validated rows to the warehouse, rejected rows to quarantine.

Master files are unpartitioned; daily files use the daily partitions and a single-run backfill
policy, so a backfill of a year is one run that validates every day in one vectorised pass.
Each asset carries a check that fails when the quarantine share of one of its files — per file and
day, rejected rows over the file's rows — exceeds the policy threshold (`ingestion.max_quarantine_share`,
with at least `ingestion.min_quarantined_rows` rejected); the check lists those files. A master
row held by a hold rule is kept (its SKU stays known) and is not counted as rejected. A daily row
naming a key whose master row was rejected is quarantined with
a reason naming that master row (file, row, reason), not as an unknown key.
"""

import json

import dagster as dg
import pandas as pd

from ..contracts.landing import LANDING_FILES, LandingFile
from ..core.ingestion import ingest, short_path
from ._common import operational
from .partitions import daily_partitions
from .resources import LandingZoneResource, PolicyResource, WarehouseResource

QUARANTINE_CHECK = "quarantine_within_threshold"
# optional daily files whose absence means "keep the previous one" (contract v1.1's promotion plan):
# beside raw_<name>, raw_<name>_files lists per day the file read (file_date, file_path, rows_read;
# no row when the day had none), so a file with no kept row (an empty plan) is told from no file
PLAN_FILES = ("promotions",)
# master tables a file's references point at, as asset dependencies
_REF_ASSETS = {
    "locations": "raw_locations",
    "products": "raw_products",
    "suppliers": "raw_suppliers",
}


def _metadata(result, files: int) -> dict:
    q = result.quarantine
    meta = {
        "dagster/row_count": len(result.valid),
        "rows_quarantined": len(result.rejected),
        "rows_held": len(q) - len(result.rejected),
        "quarantine_share": round(result.quarantine_share, 6),
        "files_read": files,
        "files_missing": len(result.files_missing),
        "preview": dg.MetadataValue.md(result.valid.head(10).to_markdown(index=False)),
    }
    if len(q):
        meta["quarantine_reasons"] = dg.MetadataValue.md(
            q["reason"]
            .str.split(";")
            .str[0]
            .str.replace(r"value .*", "value ...", regex=True)
            .value_counts()
            .head(10)
            .to_frame("rows")
            .to_markdown()
        )
        meta["quarantine_preview"] = dg.MetadataValue.md(q.head(10).drop(columns=["record"]).to_markdown(index=False))
    return meta


def known_keys(wh, table: str, col: str) -> tuple[set[str], dict[str, str]]:
    """The keys of a master table a daily row may name (its kept rows: a row held by a hold rule is
    kept), and for each key whose master row was rejected, where: "master/products.csv, row 5
    (<reason>)". A daily row naming such a key is quarantined with that note, not as unknown."""
    keys = set(wh.read(f"raw_{table}")[col].astype(str))
    notes: dict[str, str] = {}
    qt = f"quarantine_{table}"
    if wh.exists(qt):
        for r in wh.read(qt).itertuples():
            rec = json.loads(r.record) if isinstance(r.record, str) and r.record else {}
            k = str(rec.get(col) or "") if isinstance(rec, dict) else ""
            if k and k not in keys and k not in notes:
                notes[k] = f"{short_path(r.file)}, row {r.row} ({str(r.reason).split('; ')[0]})"
    return keys, notes


def over_threshold_text(over, threshold: float) -> str:
    """One line per file over the threshold: which file, how many rows of how many."""
    return "; ".join(
        f"{r.file}: {r.rejected} of {r.rows} rows quarantined ({r.share:.2%} > {threshold:.2%})"
        for r in over.itertuples()
    )


def _write_partitions(wh, f: LandingFile, key: str, result, dates) -> None:
    """The valid rows and the quarantine, one warehouse partition per landing day (a day without
    rows gets an empty one, so a re-run replaces what an earlier run wrote); for the files a plan
    reads, which file was read for each day."""
    if f.daily:
        by_day = dict(tuple(result.valid.groupby("landing_date", sort=True))) if len(result.valid) else {}
        q_by_day = dict(tuple(result.quarantine.groupby("partition_date"))) if len(result.quarantine) else {}
        empty = result.valid.iloc[0:0]
        read = {day: path for path, day in result.dates_by_file.items()}
        for d in dates:
            wh.write(key, by_day.get(d, empty), d)
            if f.name in PLAN_FILES:
                wh.write(
                    f"{key}_files",
                    pd.DataFrame(
                        {
                            "file_date": [d] if d in read else [],
                            "file_path": [read[d]] if d in read else [],
                            "rows_read": [result.rows_by_file.get(read[d], 0)] if d in read else [],
                        },
                        columns=["file_date", "file_path", "rows_read"],
                    ).astype({"file_date": str, "file_path": str, "rows_read": "int64"}),
                    d,
                )
            wh.write(
                f"quarantine_{f.name}",
                q_by_day.get(d, result.quarantine.iloc[0:0]),
                d,
            )
    else:
        wh.write(key, result.valid)
        wh.write(f"quarantine_{f.name}", result.quarantine)


def _quarantine_check(result, shares: pd.DataFrame, over: pd.DataFrame, threshold: float) -> dg.AssetCheckResult:
    """Passes when no file's quarantined share is past the policy's threshold."""
    passed = over.empty
    return dg.AssetCheckResult(
        check_name=QUARANTINE_CHECK,
        passed=passed,
        metadata={
            "quarantine_share": round(result.quarantine_share, 6),
            "threshold": threshold,
            "rows_quarantined": len(result.rejected),
            "max_file_share": round(float(shares["share"].max()), 6) if len(shares) else 0.0,
            "files_over_threshold": dg.MetadataValue.md(over.to_markdown(index=False) if len(over) else "none"),
        },
        description=None if passed else over_threshold_text(over, threshold),
    )


def build_landing_asset(f: LandingFile) -> dg.AssetsDefinition:
    key = f"raw_{f.name}"
    ref_tables = sorted({t for t, _ in f.references.values()})

    @dg.asset(
        name=key,
        group_name="landing",
        partitions_def=daily_partitions if f.daily else None,
        backfill_policy=dg.BackfillPolicy.single_run() if f.daily else None,
        deps=[_REF_ASSETS[t] for t in ref_tables],
        check_specs=[
            dg.AssetCheckSpec(
                QUARANTINE_CHECK,
                asset=key,
                description="share of rows quarantined <= policy threshold",
            )
        ],
        kinds={"pandera", "parquet"},
        description=f"Landing file `{f.name}` validated against contract v1.1 ({f.model.__name__}); "
        f"{'required' if f.required else 'optional'}; rejected rows go to `quarantine_{f.name}`.",
    )
    @operational
    def _asset(
        context: dg.AssetExecutionContext,
        landing: LandingZoneResource,
        warehouse: WarehouseResource,
        policy: PolicyResource,
    ):
        wh = warehouse.get()
        dates = context.partition_keys if f.daily else None
        refs, notes = {}, {}
        for table, ref_col in f.references.values():
            refs[(table, ref_col)], notes[(table, ref_col)] = known_keys(wh, table, ref_col)
        pol = policy.load()
        context.log.info(f"reading {f.name} from {landing.uri} for {len(dates) if dates else 1} partition(s)")
        result = ingest(landing.store(), f, dates, refs, pol.ingestion.max_expected_days, notes)
        _write_partitions(wh, f, key, result, dates)
        threshold = pol.ingestion.max_quarantine_share
        meta = _metadata(result, len(result.files_read))
        shares = result.file_shares()
        over = result.files_over(threshold, pol.ingestion.min_quarantined_rows)
        if len(result.quarantine):
            worst = shares.sort_values("share", ascending=False).iloc[0] if len(shares) else None
            context.log.warning(
                f"{f.name}: {len(result.rejected)} row(s) quarantined, "
                f"{len(result.quarantine) - len(result.rejected)} held"
                + (f"; worst file {worst['file']}: {worst['share']:.2%}" if worst is not None else "")
            )
        return dg.MaterializeResult(metadata=meta, check_results=[_quarantine_check(result, shares, over, threshold)])

    return _asset


landing_assets = [build_landing_asset(f) for f in LANDING_FILES.values()]
