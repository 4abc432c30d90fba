"""One asset per landing file: validated rows to the warehouse, rejected rows to quarantine.

Master files are unpartitioned; daily files use the daily partitions and a single-run backfill
policy, so a backfill of a year is one run that validates every day in one vectorised pass.
Each asset carries a check that fails when its quarantine share exceeds the policy threshold.
"""

import dagster as dg

from ..contracts.landing import LANDING_FILES, LandingFile
from ..core.ingestion import ingest
from ._common import operational
from .partitions import daily_partitions
from .resources import LandingZoneResource, PolicyResource, WarehouseResource

QUARANTINE_CHECK = "quarantine_within_threshold"
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
        "rows_quarantined": len(q),
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
        meta["quarantine_preview"] = dg.MetadataValue.md(
            q.head(10).drop(columns=["record"]).to_markdown(index=False)
        )
    return meta


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
        description=f"Landing file `{f.name}` validated against contract v1 ({f.model.__name__}); "
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
        refs = {}
        for col, (table, ref_col) in f.references.items():
            refs[(table, ref_col)] = set(wh.read(f"raw_{table}")[ref_col].astype(str))
        context.log.info(
            f"reading {f.name} from {landing.uri} for {len(dates) if dates else 1} partition(s)"
        )
        result = ingest(landing.store(), f, dates, refs)
        if f.daily:
            by_day = (
                dict(tuple(result.valid.groupby("landing_date", sort=True)))
                if len(result.valid)
                else {}
            )
            q_by_day = (
                dict(tuple(result.quarantine.groupby("partition_date")))
                if len(result.quarantine)
                else {}
            )
            empty = result.valid.iloc[0:0]
            for d in dates:
                wh.write(key, by_day.get(d, empty), d)
                wh.write(
                    f"quarantine_{f.name}",
                    q_by_day.get(d, result.quarantine.iloc[0:0]),
                    d,
                )
        else:
            wh.write(key, result.valid)
            wh.write(f"quarantine_{f.name}", result.quarantine)
        threshold = policy.load().ingestion.max_quarantine_share
        meta = _metadata(result, len(result.files_read))
        passed = result.quarantine_share <= threshold
        if len(result.quarantine):
            context.log.warning(
                f"{f.name}: {len(result.quarantine)} row(s) quarantined ({result.quarantine_share:.2%})"
            )
        return dg.MaterializeResult(
            metadata=meta,
            check_results=[
                dg.AssetCheckResult(
                    check_name=QUARANTINE_CHECK,
                    passed=passed,
                    metadata={
                        "quarantine_share": round(result.quarantine_share, 6),
                        "threshold": threshold,
                        "rows_quarantined": len(result.quarantine),
                    },
                    description=None
                    if passed
                    else f"{result.quarantine_share:.2%} of rows quarantined > {threshold:.2%}",
                )
            ],
        )

    return _asset


landing_assets = [build_landing_asset(f) for f in LANDING_FILES.values()]
