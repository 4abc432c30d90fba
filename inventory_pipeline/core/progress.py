"""Progress of a long step: units done / total, rate and ETA, reported through a callback (the
shell passes Dagster's `context.log.info`; the core never imports Dagster)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


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
