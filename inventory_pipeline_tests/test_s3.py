"""s3:// goes through the same code path: landing files and the outbox against moto's S3 server
on 127.0.0.1 (a real HTTP S3 endpoint), through dagster-aws' S3Resource."""

from pathlib import Path

import pandas as pd

from inventory_pipeline.contracts.landing import LANDING_FILES
from inventory_pipeline.core.decisions import DECISION_COLUMNS
from inventory_pipeline.core.ingestion import LocalStore, ingest
from inventory_pipeline.core.outbox import render_outbox, write_s3
from inventory_pipeline.simulation import generate_landing_zone

# s3_endpoint (moto's server on 127.0.0.1): conftest.py


def test_landing_on_s3_reads_like_local(tmp_path, tiny_config, s3_endpoint):
    from inventory_pipeline.defs.resources import LandingZoneResource

    local = tmp_path / "landing"
    generate_landing_zone(tiny_config, local, write_truth=False)
    res = LandingZoneResource(uri="s3://landing-bucket/zone", s3_endpoint_url=s3_endpoint)
    client = res.s3_client()
    client.create_bucket(Bucket="landing-bucket")
    for p in local.rglob("*.csv"):
        client.upload_file(str(p), "landing-bucket", f"zone/{p.relative_to(local).as_posix()}")
    store = res.store()
    days = store.list_dirs("daily")
    assert days == sorted(p.name for p in (local / "daily").iterdir())
    refs = {
        ("locations", "location_id"): {"S001", "S002", "DC01"},
        ("products", "sku_id"): set(pd.read_csv(local / "master/products.csv")["sku_id"]),
    }
    f = LANDING_FILES["pos_sales"]
    on_s3 = ingest(store, f, days[:5], refs)
    on_disk = ingest(LocalStore(local), f, days[:5], refs)
    pd.testing.assert_frame_equal(on_s3.valid, on_disk.valid)
    assert on_s3.files_read[0].startswith("s3://landing-bucket/zone/daily/")


def test_outbox_on_s3_puts_manifest_last_with_same_bytes(s3_endpoint):
    from inventory_pipeline.defs.resources import OutboxResource

    client = OutboxResource(uri="s3://erp/outbox", s3_endpoint_url=s3_endpoint).s3_client()
    client.create_bucket(Bucket="erp")
    files = render_outbox(pd.DataFrame(columns=DECISION_COLUMNS), "2025-04-30", ["m/1"], "p+1")
    where = write_s3(files, client, "erp", "outbox", "2025-04-30")
    assert where == "s3://erp/outbox/2025-04-30"
    for name, data in files.items():
        assert client.get_object(Bucket="erp", Key=f"outbox/2025-04-30/{name}")["Body"].read() == data


def _client(endpoint):
    from inventory_pipeline.defs.resources import LandingZoneResource

    return LandingZoneResource(uri="s3://x", s3_endpoint_url=endpoint).s3_client()


def _upload(client, local: Path, bucket: str, prefix: str) -> None:
    for p in sorted(local.rglob("*.csv")):
        client.upload_file(str(p), bucket, f"{prefix}/{p.relative_to(local).as_posix()}")


def test_landing_sensor_on_s3_sees_complete_days_once_and_a_corrected_object(
    tmp_path, tiny_config, s3_endpoint, monkeypatch
):
    """The landing sensor reads the bucket through the same store API: each complete day once
    (cursor), an overwritten object (new ETag) makes its day run again."""
    import dagster as dg

    from inventory_pipeline.defs.resources import LandingZoneResource
    from inventory_pipeline.defs.sensors import landing_days_complete

    monkeypatch.setenv("INVENTORY_PIPELINE_LANDING_SETTLE_SECONDS", "0")
    local = tmp_path / "landing"
    generate_landing_zone(tiny_config, local, write_truth=False)
    client = _client(s3_endpoint)
    client.create_bucket(Bucket="sensor-bucket")
    _upload(client, local, "sensor-bucket", "zone")
    landing = LandingZoneResource(uri="s3://sensor-bucket/zone", s3_endpoint_url=s3_endpoint)
    days = sorted(p.name for p in (local / "daily").iterdir())
    with dg.instance_for_test() as instance:
        ctx = dg.build_sensor_context(instance=instance, resources={"landing": landing})
        first = list(landing_days_complete(ctx))
        # every day is new: the older ones as one ingest range, the newest as its daily cycle
        assert [r.job_name for r in first] == ["ingest_daily", "daily_cycle"]
        assert first[-1].partition_key == days[-1]
        cursor = ctx.cursor
        ctx = dg.build_sensor_context(instance=instance, resources={"landing": landing}, cursor=cursor)
        assert isinstance(landing_days_complete(ctx), dg.SkipReason)
        client.put_object(
            Bucket="sensor-bucket",
            Key=f"zone/daily/{days[3]}/receipts.csv",
            Body=(local / "daily" / days[3] / "receipts.csv").read_bytes(),
        )  # same bytes: same ETag
        ctx = dg.build_sensor_context(instance=instance, resources={"landing": landing}, cursor=cursor)
        assert isinstance(landing_days_complete(ctx), dg.SkipReason)
        body = (local / "daily" / days[3] / "pos_sales.csv").read_text().rstrip("\n").split("\n")
        client.put_object(
            Bucket="sensor-bucket",
            Key=f"zone/daily/{days[3]}/pos_sales.csv",
            Body=("\n".join(body[:-1]) + "\n").encode(),
        )  # a corrected file: one row fewer
        ctx = dg.build_sensor_context(instance=instance, resources={"landing": landing}, cursor=cursor)
        again = landing_days_complete(ctx)
        assert [(r.job_name, r.partition_key) for r in again] == [("ingest_daily", days[3])]
