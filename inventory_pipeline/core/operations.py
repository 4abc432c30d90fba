"""Operations logic the Dagster shell's schedules, sensors and retries call (plain Python).

- Landing-day completeness: a daily/YYYY-MM-DD/ folder is *complete* when every required daily
  file of contract v1 is there (CSV or Parquet) and none was modified in the last
  `settle_seconds` (a local writer still appending). Its *signature* hashes the name, size and
  version (mtime on disk, ETag on S3) of every daily file in the folder, so a late optional file
  or a corrected file changes the signature and the day is picked up again.
- Transient failures: which exceptions are worth retrying (network, throttling, a DuckDB file
  lock held by another run) and the exponential backoff with jitter between attempts.
- Progress of a long step: units done / total, rate and ETA, reported through a callback (the
  shell passes Dagster's `context.log.info`; the core never imports Dagster).
- Run records: the per-run summary table (one row per step) and the failure record that the
  run-failure sensor stores where an operator looks.
"""

from __future__ import annotations

import errno
import hashlib
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..contracts.landing import DAILY_FILES, file_stem

# daily files of contract v1 that live under daily/ (planner answers have their own folder)
_DAILY = [f for f in DAILY_FILES if f.folder == "daily"]
REQUIRED_DAILY = tuple(file_stem(f) for f in _DAILY if f.required)
OPTIONAL_DAILY = tuple(file_stem(f) for f in _DAILY if not f.required)


@dataclass(frozen=True)
class LandingDay:
    date: str
    complete: bool
    signature: str  # sha256 (16 hex) of the folder's daily files (name, size, version)
    missing: tuple[str, ...]  # required files not there yet
    settling: tuple[str, ...]  # files modified less than settle_seconds ago


def landing_days(
    entries: dict[str, tuple[int, str, float]], now: float | None = None, settle_seconds: float = 0.0
) -> dict[str, LandingDay]:
    """Group a recursive listing of daily/ into days.

    `entries` maps a path relative to daily/ (`YYYY-MM-DD/pos_sales.csv`) to (size, version,
    modified epoch seconds), as LandingStore.list_files returns it."""
    now = time.time() if now is None else now
    by_day: dict[str, dict[str, tuple[int, str, float]]] = {}
    for rel, meta in entries.items():
        parts = rel.split("/")
        if len(parts) != 2:
            continue
        day, name = parts
        stem, _, ext = name.rpartition(".")
        if ext in ("csv", "parquet") and stem in REQUIRED_DAILY + OPTIONAL_DAILY:
            by_day.setdefault(day, {})[name] = meta
    out = {}
    for day, files in sorted(by_day.items()):
        stems = {n.rpartition(".")[0] for n in files}
        missing = tuple(s for s in REQUIRED_DAILY if s not in stems)
        settling = tuple(sorted(n for n, (_, _, m) in files.items() if now - m < settle_seconds))
        sig = hashlib.sha256(json.dumps(sorted((n, s, v) for n, (s, v, _) in files.items())).encode()).hexdigest()[:16]
        out[day] = LandingDay(day, not missing and not settling, sig, missing, settling)
    return out


@dataclass(frozen=True)
class LandingRequests:
    plan: list[str]  # days to ingest and plan (the newest complete day, when it is new)
    ingest_only: list[str]  # late or corrected days older than the newest planned day: re-ingest only
    cursor: dict[str, str]  # date -> signature launched
    waiting: dict[str, str]  # incomplete days and why


def landing_requests(days: dict[str, LandingDay], seen: dict[str, str], partitions: set[str]) -> LandingRequests:
    """Which days to launch, given the signatures already launched (`seen`, the sensor cursor).

    The newest complete day that is new or changed is planned (ingest + plan in one run); every
    other new or changed complete day is re-ingested only: a plan for a past day has already
    taken effect, and replanning it is a deliberate backfill, not something a late file triggers.
    Days outside the partition set (before the start date, or in the future) are ignored."""
    ready = {d: x for d, x in days.items() if x.complete and d in partitions}
    changed = sorted(d for d, x in ready.items() if seen.get(d) != x.signature)
    newest_seen = max(seen) if seen else ""
    plan = [d for d in changed[-1:] if d >= newest_seen]
    ingest_only = [d for d in changed if d not in plan]
    waiting = {
        d: ("missing " + ", ".join(x.missing) if x.missing else "settling: " + ", ".join(x.settling))
        for d, x in days.items()
        if not x.complete and d in partitions
    }
    return LandingRequests(plan, ingest_only, {**seen, **{d: ready[d].signature for d in changed}}, waiting)


# ---------------------------------------------------------------------------------------------
# transient failures

_TRANSIENT_S3_CODES = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "InternalError",
    "ServiceUnavailable",
    "503",
    "500",
    "RequestLimitExceeded",
}
_TRANSIENT_ERRNO = {
    errno.EAGAIN,
    errno.EBUSY,
    errno.ETIMEDOUT,
    errno.ECONNRESET,
    errno.ECONNREFUSED,
    errno.ECONNABORTED,
    errno.EPIPE,
    errno.EHOSTUNREACH,
    errno.ENETUNREACH,
    errno.EIO,
}


def is_transient(exc: BaseException) -> bool:
    """True for failures that a later attempt can clear: connection and timeout errors, S3
    throttling and 5xx answers, a DuckDB file lock held by another process. Contract violations,
    missing files and bugs are not transient (retrying them only delays the error)."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:  # the cause chain (a wrapped botocore error)
        seen.add(id(e))
        name = type(e).__name__
        if isinstance(e, (ConnectionError, TimeoutError)):
            return True
        if name in (
            "EndpointConnectionError",
            "ConnectTimeoutError",
            "ReadTimeoutError",
            "ConnectionClosedError",
            "ProxyConnectionError",
            "IncompleteReadError",
            "ResponseStreamingError",
        ):
            return True
        if name == "ClientError":
            code = str(getattr(e, "response", {}).get("Error", {}).get("Code", ""))
            if code in _TRANSIENT_S3_CODES:
                return True
        if isinstance(e, OSError) and e.errno in _TRANSIENT_ERRNO:
            return True
        if "Could not set lock on file" in str(e) or "Conflicting lock is held" in str(e):
            return True
        e = e.__cause__ or e.__context__
    return False


def backoff_seconds(
    attempt: int, base: float = 2.0, cap: float = 120.0, jitter: float = 0.25, rng: random.Random | None = None
) -> float:
    """Exponential backoff before retry `attempt` (0 = the first retry): base x 2^attempt,
    capped, times a uniform factor in [1 - jitter, 1 + jitter] so parallel runs spread out."""
    delay = min(cap, base * 2.0 ** max(attempt, 0))
    r = (rng or random).uniform(1 - jitter, 1 + jitter) if jitter else 1.0
    return round(min(cap, delay * r), 3)


# ---------------------------------------------------------------------------------------------
# run records

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


@dataclass
class Progress:
    """Done / total of a long step with its rate and ETA. `advance(n)` adds n finished units and,
    if a `report` callback is set, sends it one line such as
    ``fit: 1,200/4,000 series (30%) · 410 series/s · ETA 7 s``. `clock` is injectable for tests."""

    total: int
    unit: str = "series"
    label: str = ""
    report: Callable[[str], None] | None = None
    clock: Callable[[], float] = time.perf_counter
    done: int = 0
    started: float = field(default=0.0)

    def __post_init__(self) -> None:
        if self.total < 0:
            raise ValueError(f"progress total must be >= 0, got {self.total}")
        self.started = self.clock()

    @property
    def elapsed(self) -> float:
        return max(self.clock() - self.started, 0.0)

    @property
    def rate(self) -> float:
        """Units per second so far (0 before any unit is done)."""
        e = self.elapsed
        return self.done / e if e > 0 and self.done else 0.0

    @property
    def eta_seconds(self) -> float | None:
        """Seconds left at the rate so far; None while the rate is unknown."""
        r = self.rate
        return max(self.total - self.done, 0) / r if r > 0 else None

    def line(self, note: str = "") -> str:
        pct = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        eta = self.eta_seconds
        parts = [
            f"{self.label + ': ' if self.label else ''}{self.done:,}/{self.total:,} {self.unit}{pct}",
            f"{self.rate:,.0f} {self.unit}/s" if self.rate else "rate n/a",
            f"ETA {eta:,.0f} s" if eta is not None else "ETA n/a",
        ]
        return " · ".join(parts) + (f" · {note}" if note else "")

    def advance(self, n: int = 1, note: str = "") -> str:
        if n < 0:
            raise ValueError("progress only moves forward")
        self.done = min(self.done + n, self.total)
        msg = self.line(note)
        if self.report is not None:
            self.report(msg)
        return msg
