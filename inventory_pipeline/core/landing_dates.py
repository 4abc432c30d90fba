"""Which folders under the landing zone's daily/ are landing days (plain Python, no Dagster).

A landing day is a folder named by a real calendar date written `YYYY-MM-DD`. Anything else —
`2025-04-31` (no such day), `zzz`, `notes`, `2025-4-30`, `20250430` — is not a day: `run`, the
landing sensor and the daily schedule all skip it with one warning naming the folder, so a stray
folder that sorts after the dates can never become the plan date, and no caller has to parse a
folder name itself. The one rule lives here; `is_landing_date`, `landing_dates` and
`landing_date_files` are its three shapes (a name, a folder listing, a recursive file listing).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from datetime import date

_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_log = logging.getLogger(__name__)

Warn = Callable[[str], None]


def why_not_a_date(name: str) -> str | None:
    """None when `name` is a real calendar date written YYYY-MM-DD, else why it is not."""
    if not _ISO_DAY.fullmatch(name):
        return "not a date written YYYY-MM-DD"
    try:
        date.fromisoformat(name)
    except ValueError as e:  # 2025-04-31, 2025-13-01, 2025-02-29
        return f"not a calendar date ({e})"
    return None


def is_landing_date(name: str) -> bool:
    return why_not_a_date(name) is None


def _warn_ignored(bad: dict[str, str], folder: str, warn: Warn | None) -> None:
    say = warn or _log.warning
    for name, why in sorted(bad.items()):
        say(f"ignoring folder {folder}/{name}/: {why}; only YYYY-MM-DD folders are landing days (move or rename it)")


def landing_dates(names: Iterable[str], warn: Warn | None = None, folder: str = "daily") -> list[str]:
    """The folder names that are landing days, sorted (oldest first). Every other name is
    reported once through `warn` (default: this module's logger) and left out."""
    names = list(names)
    bad = {n: why for n in names if (why := why_not_a_date(n)) is not None}
    _warn_ignored(bad, folder, warn)
    return sorted(n for n in names if n not in bad)


def landing_date_files(entries: dict[str, tuple], warn: Warn | None = None, folder: str = "daily") -> dict[str, tuple]:
    """A recursive listing of daily/ (relative path -> metadata, as LandingStore.list_files
    returns it) without the entries of folders that are not landing days; each such folder is
    reported once through `warn`. Files directly under daily/ (no folder) are left out silently:
    they belong to no day."""
    bad: dict[str, str] = {}
    out = {}
    for rel, meta in entries.items():
        head, sep, _ = rel.partition("/")
        if not sep:
            continue
        why = why_not_a_date(head)
        if why is None:
            out[rel] = meta
        else:
            bad[head] = why
    _warn_ignored(bad, folder, warn)
    return out
