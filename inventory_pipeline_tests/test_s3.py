"""s3:// goes through the same code path: landing files and the outbox against moto's S3 server
on 127.0.0.1 (a real HTTP S3 endpoint), through dagster-aws' S3Resource."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from inventory_pipeline.contracts.landing import LANDING_FILES
from inventory_pipeline.core.decisions import DECISION_COLUMNS
from inventory_pipeline.core.ingestion import LocalStore, ingest
from inventory_pipeline.core.outbox import render_outbox, write_s3
from inventory_pipeline.simulation import generate_landing_zone


@pytest.fixture(scope="module")
def s3_endpoint():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = Path(sys.executable).parent / "moto_server"
    proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        for _ in range(100):  # bounded wait for the server to listen
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        for k, v in old.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


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
    refs = {("locations", "location_id"): {"S001", "S002", "DC01"},
            ("products", "sku_id"): set(pd.read_csv(local / "master/products.csv")["sku_id"])}
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
