"""Plans a late or corrected landing file made stale, and the order to plan them again (plain Python).

Every plan records the partitions it read with their content hashes (`decision_inputs`, the
inputs fingerprint's parts). A daily landing file that arrives late, or is corrected, for a day a
plan already read changes that day's raw partition and so its hash: that plan, and every plan
after it, computed numbers from data the warehouse no longer holds. Every later plan is stale too,
even one whose own reads are current, because each plan starts from the state the plan before it
left (the forecast's carried fits, the decision log).

`stale_from` finds the earliest such plan; a *wave* re-plans it and every planned date after it,
one at a time in date order (`next_step`), which the `stale_plans` sensor drives. Master files
are left out: they are not dated, so a corrected products file would make every plan ever made
stale; it takes effect from the next plan on (and a deliberate `run --plan-from` re-plans a range).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace

import pandas as pd

# the dated landing tables a plan reads; a new hash for one of their partitions makes a plan stale
DATED_INPUTS = ("raw_pos_sales", "raw_inventory", "raw_receipts", "raw_open_orders", "raw_promotions")


@dataclass(frozen=True)
class Stale:
    """The earliest plan that read a partition whose content changed since, and why."""

    plan_date: str
    changed: tuple[str, ...]  # "raw_pos_sales/2026-03-04" of that plan's reads that changed
    now: tuple[str, ...] = ()  # their content hashes now

    @property
    def changes(self) -> tuple[str, ...]:
        """Each changed partition with its hash now: "raw_pos_sales/2026-03-04:<sha256>"."""
        return tuple(f"{c}:{h}" for c, h in zip(self.changed, self.now))

    @property
    def wave(self) -> str:
        """An id for the re-planning this change starts (16 hex): the changed partitions as they
        are now, so the same change seen by the next plan is the same wave, and another
        correction of the same file is another."""
        return hashlib.sha256("|".join(f"{c}:{h}" for c, h in zip(self.changed, self.now)).encode()).hexdigest()[:16]

    def reason(self, limit: int = 3) -> str:
        more = len(self.changed) - limit
        return (
            f"{', '.join(self.changed[:limit])}{f' and {more} more' if more > 0 else ''} changed since the plan of "
            f"{self.plan_date} read {'them' if len(self.changed) > 1 else 'it'}"
        )


def stale_from(recorded: pd.DataFrame, current_sha256: Callable[[str, str], str]) -> Stale | None:
    """The earliest plan date whose recorded read of a dated landing partition (`recorded`:
    plan_date, table, partition, sha256, as decision_inputs holds them) no longer matches the
    partition's content hash now (`current_sha256(table, partition)`; "" when it is gone).
    None when every plan read what the warehouse holds."""
    dated = recorded[recorded["table"].isin(DATED_INPUTS)]
    if not len(dated):
        return None
    parts = dated[["table", "partition"]].drop_duplicates()
    now = pd.Series(
        [current_sha256(t, p) for t, p in parts.itertuples(index=False)],
        index=pd.MultiIndex.from_frame(parts),
    )
    key = pd.MultiIndex.from_frame(dated[["table", "partition"]])
    current = now.reindex(key).to_numpy()
    differs = current != dated["sha256"].to_numpy()
    changed = dated[differs].assign(now=current[differs])
    if not len(changed):
        return None
    first = changed["plan_date"].min()
    mine = changed[changed["plan_date"] == first].sort_values(["partition", "table"])
    return Stale(first, tuple(f"{t}/{p}" for t, p in zip(mine["table"], mine["partition"])), tuple(mine["now"]))


@dataclass(frozen=True)
class Wave:
    """A re-planning in progress: plans from `next_date` on are still to be made again."""

    wave: str
    next_date: str
    reason: str
    since: float  # epoch seconds: a plan run of next_date created since then is its re-plan (the
    # wave's start, then the end of the re-plan before it: a plan made before that read stale state)
    covers: tuple[str, ...] = ()  # the changes (Stale.changes) its re-plans were launched for

    def to_cursor(self) -> dict:
        return {
            "wave": self.wave,
            "next": self.next_date,
            "reason": self.reason,
            "since": self.since,
            "covers": list(self.covers),
        }

    @staticmethod
    def from_cursor(cursor: dict | None) -> Wave | None:
        if not cursor:
            return None
        c = cursor
        return Wave(c["wave"], c["next"], c["reason"], c["since"], tuple(c.get("covers", ())))


@dataclass(frozen=True)
class Step:
    """What to do now: plan `plan_date` again (in wave `wave`), or nothing (`plan_date` None),
    with the state to keep and a line saying why."""

    plan_date: str | None
    wave: Wave | None
    message: str


def next_step(
    wave: Wave | None,
    stale: Stale | None,
    planned: list[str],
    last_run: Callable[[str, float], tuple[str, float | None] | None],
    now: float,
) -> Step:
    """The next re-plan of a wave, one date at a time in date order.

    `wave`: the one in progress (None: none); `stale`: what `stale_from` finds now; `planned`: the
    plan dates that exist; `last_run(date, since)`: (status, end epoch seconds) of the newest whole
    plan run of that date created after `since`, whoever launched it ("SUCCESS", "FAILURE",
    "CANCELED", "STARTED", ...), or None when there is none; `now`: epoch seconds, a new wave's start.

    A change earlier than the wave's position starts a new wave there, and so does a change at its
    position that none of its re-plans was launched for (a second correction of a file whose first
    one failed to plan). A date whose run succeeded
    moves the wave on to the next planned date; one whose run failed or was cancelled stops it
    (every later plan would read what that one left), and the message says so. A date without a
    run is launched."""
    if stale is not None and (
        wave is None
        or stale.plan_date < wave.next_date
        or (stale.plan_date == wave.next_date and not set(stale.changes) <= set(wave.covers))
    ):
        wave = Wave(stale.wave, stale.plan_date, stale.reason(), now, stale.changes)
    while wave is not None:
        todo = [d for d in sorted(planned) if d >= wave.next_date]
        if not todo:
            return Step(None, None, f"re-planned every plan from the change ({wave.reason})")
        d, run = todo[0], last_run(todo[0], wave.since)
        status, ended = run if run is not None else (None, None)
        if status is None:
            if stale is not None and stale.plan_date == d:  # what this re-plan is launched for
                wave = replace(wave, covers=tuple(sorted({*wave.covers, *stale.changes})))
            return Step(d, wave, f"re-plan {d}: {wave.reason}")
        if status == "SUCCESS":
            later = [x for x in todo if x > d]
            if not later:
                return Step(None, None, f"re-planned every plan through {d} ({wave.reason})")
            # a run without an end time (the storage did not record one) counts from now
            wave = replace(wave, next_date=later[0], since=ended or now)
            continue
        if status in ("FAILURE", "CANCELED"):
            return Step(
                None,
                wave,
                f"the re-plan of {d} ended {status}; later plans wait for it (fix the cause, then plan it again: "
                f"`inventory-pipeline run --plan-from {d}`, or from the UI)",
            )
        return Step(None, wave, f"waiting for the re-plan of {d} ({status})")
    return Step(None, None, "every plan read what the warehouse holds")


def recorded_inputs(wh) -> pd.DataFrame:
    """Every plan's recorded reads of dated landing partitions (plan_date, table, partition,
    sha256), from decision_inputs/<plan date>/ in one scan."""
    if not wh.partitions("decision_inputs"):
        return pd.DataFrame(columns=["plan_date", "table", "partition", "sha256"])
    tables = ", ".join(f"'{t}'" for t in DATED_INPUTS)
    return wh.query(
        "select regexp_extract(filename, 'decision_inputs/([0-9]{4}-[0-9]{2}-[0-9]{2})/', 1) as plan_date, "
        f'"table", "partition", sha256 from read_parquet(\'{wh.glob("decision_inputs")}\', filename=true) '
        f'where "table" in ({tables})'
    )
