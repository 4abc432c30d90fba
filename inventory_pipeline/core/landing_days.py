"""Landing-day completeness, for the landing sensor and the daily schedule (plain Python).

A daily/YYYY-MM-DD/ folder is *complete* when every required daily file of contract v1 is there
(CSV or Parquet) and none was modified in the last `settle_seconds` (a local writer still
appending). Its *signature* hashes the name, size and version (mtime on disk, ETag on S3) of every
daily file in the folder, so a late optional file or a corrected file changes the signature and
the day is picked up again.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass

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
    other new or changed complete day is re-ingested only here; the plans that read it are then
    planned again, in date order, by the `stale_plans` sensor (core.replan), which compares what
    each plan read with the warehouse once the ingest has run.
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
