"""The UI path a person takes, in a real browser: dagster-webserver on 127.0.0.1 with this code
location, Debian's Chromium driven headless by Playwright (the system browser; nothing is
downloaded). The test checks that the asset graph shows the decision stages and that an asset
shows its checks, then launches a partition materialisation from the asset page's dialog and
waits for the run to succeed. Screenshots go to $INVENTORY_PIPELINE_TEST_ARTIFACTS (default
test-artifacts/ in the project).

Skipped, with the reason, only where Chromium or Playwright is absent; `make test` installs
Chromium with apt where apt is available.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from inventory_pipeline.core.stages import PLAN_ASSETS
from inventory_pipeline_tests.helpers import chromium_page

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(os.environ.get("INVENTORY_PIPELINE_TEST_ARTIFACTS", ROOT / "test-artifacts"))
# flags for a closed network, as root, in a fresh profile (no first-run, sync or update traffic)
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PARTITION = "2025-01-05"

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - the dev extra installs it
    sync_playwright = None

pytestmark = [
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="Chromium is not installed (apt-get install chromium; `make test` does this where apt is available)",
    ),
    pytest.mark.skipif(
        sync_playwright is None, reason="playwright is not installed (pip install 'inventory_pipeline[browser]')"
    ),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def webserver(tmp_path_factory):
    home = tmp_path_factory.mktemp("ui_home")
    dagster_home = home / "dagster_home"
    dagster_home.mkdir()
    # runs launched from the UI start at once (no daemon in the test to dequeue them)
    (dagster_home / "dagster.yaml").write_text(
        "telemetry:\n  enabled: false\nrun_coordinator:\n  module: dagster._core.run_coordinator\n"
        "  class: DefaultRunCoordinator\n"
    )
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("INVENTORY_PIPELINE_") and k != "MLFLOW_TRACKING_URI"
    }
    env.update(
        INVENTORY_PIPELINE_HOME=str(home),
        DAGSTER_HOME=str(dagster_home),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
    )
    bin_ = Path(sys.executable).parent
    # the network and its master files (what ingest_master does on day one, so a daily partition
    # can validate its keys), in this process and into the webserver's instance
    import dagster as dg

    from inventory_pipeline.definitions import build_definitions
    from inventory_pipeline.defs.resources import LandingZoneResource, WarehouseResource
    from inventory_pipeline.simulation import NetworkConfig, generate_landing_zone

    generate_landing_zone(
        NetworkConfig(regions=1, dcs=1, stores=2, skus=6, suppliers=2, days=30), home / "data" / "landing"
    )
    defs = build_definitions(
        resources={
            "landing": LandingZoneResource(uri=str(home / "data" / "landing")),
            "warehouse": WarehouseResource(root=str(home / "data" / "warehouse")),
        }
    )
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        assert defs.resolve_job_def("ingest_master").execute_in_process(instance=instance).success
    port = _free_port()
    log = open(home / "webserver.log", "w")
    proc = subprocess.Popen(
        [str(bin_ / "dagster-webserver"), "-w", str(ROOT / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 180
        while time.time() < deadline:
            try:
                urllib.request.urlopen(url + "/server_info", timeout=2).close()
                break
            except OSError as down:
                if proc.poll() is not None:
                    log = (home / "webserver.log").read_text()[-2000:]
                    raise RuntimeError(f"dagster-webserver exited: {log}") from down
                time.sleep(0.5)
        else:
            raise RuntimeError("dagster-webserver did not answer in 180 s")
        yield {"url": url, "home": home, "dagster_home": dagster_home}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


@pytest.fixture(scope="module")
def page(webserver):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with chromium_page(CHROMIUM, CHROMIUM_ARGS, 1600, 60_000) as pg:
        yield pg


def _skip_community_modal(page):
    skip = page.get_by_role("button", name="Skip")
    if skip.count():
        skip.first.click()


def test_asset_graph_shows_the_stages_and_their_checks(webserver, page):
    page.goto(webserver["url"] + "/asset-groups~group%3A%22decisions%22", wait_until="networkidle")
    for stage in PLAN_ASSETS:
        page.get_by_text(stage, exact=True).first.wait_for()
    _skip_community_modal(page)
    page.screenshot(path=str(ARTIFACTS / "ui_asset_graph_decisions.png"))
    page.goto(webserver["url"] + "/assets/demand_forecast?view=checks", wait_until="networkidle")
    for check in ("output_contract", "promotion_gate", "forecast_drift", "freshness_check"):
        page.get_by_text(check, exact=True).first.wait_for()
    _skip_community_modal(page)
    page.screenshot(path=str(ARTIFACTS / "ui_demand_forecast_checks.png"))


def test_launch_a_partition_from_the_ui_and_it_succeeds(webserver, page):
    import dagster as dg

    page.goto(webserver["url"] + "/assets/raw_pos_sales", wait_until="networkidle")
    _skip_community_modal(page)
    page.get_by_text("Materialize…", exact=True).first.click()
    dialog = page.locator("[role=dialog]").filter(has_text="Launch runs to materialize raw_pos_sales")
    dialog.get_by_text("Show all partitions").click()
    dialog.get_by_text("Custom", exact=True).click()
    box = dialog.locator("input").first
    box.fill(PARTITION)
    box.press("Enter")
    launch = dialog.get_by_role("button", name=re.compile(r"^Launch 1 run$"))
    launch.wait_for()
    page.screenshot(path=str(ARTIFACTS / "ui_launch_dialog.png"))
    launch.click()
    # the run, from the instance the webserver writes (its DAGSTER_HOME)
    instance = dg.DagsterInstance.from_config(str(webserver["dagster_home"]))
    deadline, run = time.time() + 240, None
    while time.time() < deadline:
        runs = instance.get_runs(dg.RunsFilter(tags={"dagster/partition": PARTITION}))
        run = runs[0] if runs else None
        if run and run.is_finished:
            break
        time.sleep(1)
    assert run is not None, "no run was launched from the dialog"
    assert run.status == dg.DagsterRunStatus.SUCCESS, f"run {run.run_id} ended {run.status}"
    page.goto(f"{webserver['url']}/runs/{run.run_id}", wait_until="networkidle")
    page.get_by_text("Success", exact=True).first.wait_for()
    page.screenshot(path=str(ARTIFACTS / "ui_run_success.png"))
    mat = instance.fetch_materializations(dg.AssetKey("raw_pos_sales"), limit=1).records[0]
    assert mat.partition_key == PARTITION and mat.asset_materialization.metadata["dagster/row_count"].value > 0
    assert (webserver["home"] / "data" / "warehouse" / "raw_pos_sales" / PARTITION / "data.parquet").is_file()
