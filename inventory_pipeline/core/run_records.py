"""Run records: the per-run summary table (one row per step) and the failure record that the
run-failure sensor stores where an operator looks (plain Python)."""

from __future__ import annotations

import numpy as np
import pandas as pd

SUMMARY_COLUMNS = ["run_id", "job", "partition", "step", "status", "started", "seconds", "assets", "rows"]


def run_summary(run_id: str, job: str, partition: str | None, events: list[dict]) -> pd.DataFrame:
    """One row per step of a run from its event records: status, start, duration, the assets it
    materialised and their row counts. `events` are dicts with keys step, kind (STEP_START,
    STEP_SUCCESS, STEP_FAILURE, ASSET_MATERIALIZATION), timestamp (epoch s), asset and rows
    (materialisations only)."""
    if not events:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    ev = pd.DataFrame(events)
    for c in ("asset", "rows"):
        if c not in ev:
            ev[c] = None
    ev = ev[ev["step"].notna()]
    start = ev[ev["kind"] == "STEP_START"].groupby("step")["timestamp"].min()
    end_ev = ev[ev["kind"].isin(["STEP_SUCCESS", "STEP_FAILURE"])].sort_values("timestamp").groupby("step").last()
    mats = ev[ev["kind"] == "ASSET_MATERIALIZATION"]
    # labels are "key" or "key[partition]": a single-run backfill materialises one event per
    # partition, each carrying the run's row count for the asset, so rows count once per asset key
    # and step (the largest), then add up over the keys; a key with several partitions is listed
    # as key[first..last]
    label = mats["asset"].astype(str)
    key = label.str.replace(r"\[[^\]]*\]$", "", regex=True)
    parts = (
        pd.DataFrame({"step": mats["step"], "key": key, "part": label.str.extract(r"\[([^\]]*)\]$")[0]})
        .groupby(["step", "key"])["part"]
        .agg(["min", "max", "nunique"])
        .reset_index()
    )
    parts["label"] = np.where(
        parts["nunique"] == 0,
        parts["key"],
        np.where(
            parts["nunique"] == 1,
            parts["key"] + "[" + parts["min"].astype(str) + "]",
            parts["key"] + "[" + parts["min"].astype(str) + ".." + parts["max"].astype(str) + "]",
        ),
    )
    assets = parts.groupby("step")["label"].agg(lambda s: ", ".join(sorted(s)))
    per_asset = pd.to_numeric(mats["rows"], errors="coerce").groupby([mats["step"], key]).max()
    rows = per_asset.groupby(level=0).sum(min_count=1)
    steps = sorted(set(start.index) | set(end_ev.index), key=lambda s: start.get(s, float("inf")))
    out = pd.DataFrame({"step": steps})
    out["status"] = [
        ("success" if end_ev.loc[s, "kind"] == "STEP_SUCCESS" else "failure") if s in end_ev.index else "not finished"
        for s in steps
    ]
    st = out["step"].map(start)
    out["started"] = pd.to_datetime(st, unit="s", utc=True)
    out["seconds"] = (out["step"].map(end_ev["timestamp"]) - st).round(2)
    out["assets"] = out["step"].map(assets).fillna("")
    out["rows"] = out["step"].map(rows).astype("Int64")
    out.insert(0, "partition", partition or "")
    out.insert(0, "job", job)
    out.insert(0, "run_id", run_id)
    return out[SUMMARY_COLUMNS]


def format_run_summary(table: pd.DataFrame) -> str:
    """The run summary as a fixed-width table for a terminal: one line per step (status, seconds,
    rows), then the run's total wall time across steps and rows written."""
    if table.empty:
        return "(no steps)"
    t = table[["step", "status", "seconds", "rows"]].copy()
    t["rows"] = t["rows"].map(lambda r: "" if pd.isna(r) else f"{int(r):,}")
    t["seconds"] = t["seconds"].map(lambda v: "" if pd.isna(v) else f"{v:.2f}")
    head = f"{table['job'].iloc[0]}" + (f" [{table['partition'].iloc[0]}]" if table["partition"].iloc[0] else "")
    total = (
        f"{len(t)} steps, {int((table['status'] == 'success').sum())} succeeded, "
        f"{table['seconds'].sum():.1f} s in steps, {int(table['rows'].fillna(0).sum()):,} rows"
    )
    return f"{head}: {total}\n" + t.to_string(index=False)


FAILURE_COLUMNS = ["run_id", "job", "partition", "failed_at", "step", "error", "retry_of", "dagster_url"]


def failure_record(
    run_id: str,
    job: str,
    partition: str | None,
    failed_at: float,
    steps: list[tuple[str, str]],
    run_message: str,
    retry_of: str | None = None,
    base_url: str = "http://127.0.0.1:3000",
) -> pd.DataFrame:
    """Rows for the run_failures table: one per failed step (or one for the run when no step
    failed, e.g. a run that could not start), each with the first line of its error."""
    rows = steps or [("", run_message)]
    return pd.DataFrame(
        [
            {
                "run_id": run_id,
                "job": job,
                "partition": partition or "",
                "failed_at": pd.Timestamp(failed_at, unit="s", tz="UTC"),
                "step": step,
                "error": (msg or "").strip().splitlines()[0][:500] if (msg or "").strip() else "",
                "retry_of": retry_of or "",
                "dagster_url": f"{base_url.rstrip('/')}/runs/{run_id}",
            }
            for step, msg in rows
        ],
        columns=FAILURE_COLUMNS,
    )


def merge_by_run(existing: pd.DataFrame | None, new: pd.DataFrame) -> pd.DataFrame:
    """Warehouse.append merge for the run tables: rows are keyed by (run_id, step) and the first
    recording wins, so a sensor that sees the same run twice writes nothing twice."""
    frames = [f for f in (existing, new) if f is not None and len(f)]
    if not frames:
        return new.iloc[0:0]
    merged = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0].reset_index(drop=True)
    return merged.drop_duplicates(["run_id", "step"], keep="first").reset_index(drop=True)
