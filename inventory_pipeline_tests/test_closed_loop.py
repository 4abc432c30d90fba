"""The closed loop through the files: the twin writes landing files, the real code
location plans through `run_pipeline`, an approving planner answers the review queue, and the
twin executes exactly the outbox. One loop day on a tiny network in a subprocess (the code
location binds its paths when first imported); the 28-day comparison on the demo network is in
`make bench-loop`."""

import json
import subprocess
import sys

import pandas as pd
import pytest


@pytest.mark.slow
def test_the_file_driven_loop_executes_the_outbox_and_agrees_with_the_in_memory_twin(tmp_path):
    out = tmp_path / "loop"
    cmd = [
        sys.executable,
        "-m",
        "inventory_pipeline.closed_loop",
        "--out",
        str(out),
        "--days",
        "1",
        "--stores",
        "2",
        "--skus",
        "8",
        "--history-days",
        "110",
        "--dcs",
        "1",
        "--regions",
        "1",
        "--seed",
        "7",
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    rep = json.loads((out / "closed_loop.json").read_text())
    # what the twin executed is exactly what the outbox of the plan said, unit for unit
    folders = sorted(p for p in (out / "data" / "outbox").iterdir() if p.is_dir())
    assert [p.name for p in folders] == ["2025-04-19"]  # the eve of the only loop day
    po = pd.read_csv(folders[0] / "purchase_orders.csv")
    tr = pd.read_csv(folders[0] / "transfers.csv")
    assert rep["applied"]["purchase_order_units"] == int(po["units"].sum())
    assert rep["applied"]["store_units"] == int(tr.loc[tr["transfer_type"] == "replenishment", "units"].sum())
    assert json.loads((folders[0] / "manifest.json").read_text())["files"]
    # one day of the same demand at the same prices: the same sales and margin as the in-memory
    # twin (orders placed today land after today in both), the same inventory but for timing
    files, mem = rep["kpis"]["pipeline/files"], rep["kpis"]["pipeline/in_memory"]
    assert files["lost_sales_units"] == mem["lost_sales_units"]
    assert files["gross_margin"] == pytest.approx(mem["gross_margin"], rel=1e-9)
    assert files["avg_inventory_value"] == pytest.approx(mem["avg_inventory_value"], rel=0.05)
