"""A planner's answers: checked, then merged into the landing zone's planner file.

The console never writes the decision log. It writes `planner/<day>/decisions.csv` (landing
contract v1.1: decision_id, action, override_units_or_price, reason, planner, revision), so the
path into the outbox stays the one every planner file takes: the `planner_files` sensor, the
file's validation and quarantine, the event log, `publish_decisions`.

- `check_answers` refuses a whole submission, with every reason, before anything is written: a
  user who may not answer, an unknown or exported decision, a forecast (the promotion gate governs
  it), an override without a non-negative number (a price must be positive), a rejection or
  override without a reason, and an answer given on numbers that have changed since (the row names
  the revision the planner saw; the page then shows the new numbers).
- The planner is the logged-in user, never a typed name.
- `PlannerFiles.merge` adds the rows to the day's file without losing anyone's (a decision
  another planner answered that day is refused, naming them; one's own earlier answer is
  replaced): on a local landing zone under a file lock (filelock) with an atomic rename; on S3 by
  a conditional write (If-Match on the ETag read, If-None-Match for a new file), reading and
  merging again when another planner wrote first. The decision log applies answers in order.
"""

from __future__ import annotations

import datetime as dt
import io
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from filelock import FileLock

from .users import User

ACTIONS = ("approve", "reject", "override")
FILE_COLUMNS = ["decision_id", "action", "override_units_or_price", "reason", "planner", "revision"]
MERGE_ATTEMPTS = 20  # S3: conditional writes lost to another planner before giving up


class AnswerRefused(ValueError):
    """Nothing was written: every problem of the submission, one line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Answer:
    decision_id: str
    action: str  # approve | reject | override
    revision: str  # the revision of the numbers the planner saw
    value: object = None  # override: units (orders, transfers) or the price (price changes), as typed
    reason: str = ""


def _number(value) -> float | None:
    try:
        x = float(str(value).strip().replace(",", "")) if value is not None and str(value).strip() else None
    except ValueError:
        return None
    return x if x is not None and math.isfinite(x) else None


def _problem(a: Answer, d: pd.Series | None) -> str | None:
    """Why one answer cannot be written (None: it can)."""
    if a.action not in ACTIONS:
        return f"{a.decision_id}: action {a.action!r} is not one of {', '.join(ACTIONS)}"
    if d is None:
        return f"{a.decision_id}: no such decision in the plans shown"
    if d["state"] == "exported":
        return f"{a.decision_id}: already exported (the ERP has this decision); it can no longer be answered"
    if d["decision_type"] == "forecast":
        return f"{a.decision_id}: a forecast version is governed by the promotion gate, not by planner answers"
    if str(a.revision) != str(d["revision"]):
        return (
            f"{a.decision_id}: its numbers changed since you looked (revision {a.revision} -> {d['revision']}); "
            "look at the new numbers and answer again"
        )
    if a.action == "override":
        x = _number(a.value)
        if x is None or x < 0:
            return f"{a.decision_id}: an override needs a non-negative number, got {a.value!r}"
        if d["decision_type"] == "price_change" and x <= 0:
            return f"{a.decision_id}: an overridden price must be positive, got {a.value!r}"
    if a.action in ("reject", "override") and not str(a.reason or "").strip():
        return f"{a.decision_id}: a {a.action} needs a reason"
    return None


def check_answers(answers: list[Answer], decisions: pd.DataFrame, user: User) -> pd.DataFrame:
    """The planner-file rows of `answers` by `user` (FILE_COLUMNS); `decisions` are the decision
    log rows the page showed (decision_id, decision_type, state, revision). Raises AnswerRefused
    with every problem when any answer cannot be written."""
    if not user.may_answer:
        raise AnswerRefused([f"{user.name} is a {user.role}: only a planner or an admin may answer decisions"])
    if not answers:
        raise AnswerRefused(["no decision selected"])
    state = decisions.drop_duplicates("decision_id", keep="last").set_index("decision_id")
    problems = [
        p for a in answers if (p := _problem(a, state.loc[a.decision_id] if a.decision_id in state.index else None))
    ]
    if problems:
        raise AnswerRefused(problems)
    return pd.DataFrame(
        [
            {
                "decision_id": a.decision_id,
                "action": a.action,
                "override_units_or_price": _number(a.value) if a.action == "override" else None,
                "reason": str(a.reason or "").strip(),
                "planner": user.name,
                "revision": str(a.revision),
            }
            for a in answers
        ],
        columns=FILE_COLUMNS,
    )


@dataclass(frozen=True)
class Merged:
    uri: str
    rows_before: int
    rows_added: int


def planner_file(day: str) -> str:
    return f"planner/{day}/decisions.csv"


def _merge(old: bytes | None, rows: pd.DataFrame) -> tuple[bytes, int]:
    """The file with `rows` added; every other row and column kept (a hand-written file too).

    The contract keys a planner file on decision_id (a second row for a decision is quarantined),
    so a planner's new answer to a decision they answered earlier that day replaces their row,
    and an answer to a decision another planner answered that day is refused: they see who did."""
    empty = pd.DataFrame(columns=FILE_COLUMNS)
    before = pd.read_csv(io.BytesIO(old), dtype=str, keep_default_na=False) if old else empty
    who = dict(zip(before["decision_id"], before["planner"]))
    taken = [
        f"{d}: already answered today by {who[d]}; refresh to see their answer"
        for d, p in zip(rows["decision_id"], rows["planner"])
        if d in who and who[d] != p
    ]
    if taken:
        raise AnswerRefused(taken)
    kept = before[~before["decision_id"].isin(rows["decision_id"])]
    merged = pd.concat([kept, rows.astype(object)], ignore_index=True)
    cols = [*FILE_COLUMNS, *[c for c in before.columns if c not in FILE_COLUMNS]]
    return merged.reindex(columns=cols).to_csv(index=False).encode(), len(before)


@dataclass
class LocalPlannerFiles:
    """Planner files in a local landing zone; `lock_dir` holds the locks (outside the landing zone,
    so no reader of it ever sees one)."""

    root: Path
    lock_dir: Path
    lock_timeout_seconds: float = 30.0

    def merge(self, day: str, rows: pd.DataFrame) -> Merged:
        path = Path(self.root) / planner_file(day)
        Path(self.lock_dir).mkdir(parents=True, exist_ok=True)
        with FileLock(str(Path(self.lock_dir) / f"planner-{day}.lock"), timeout=self.lock_timeout_seconds):
            body, before = _merge(path.read_bytes() if path.is_file() else None, rows)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".decisions-", suffix=".tmp")
            with os.fdopen(fd, "wb") as f:
                f.write(body)
            os.replace(tmp, path)  # readers see the old file or the new one, never half of one
        return Merged(str(path), before, len(rows))


@dataclass
class S3PlannerFiles:
    """Planner files in an S3 landing zone, merged by conditional writes."""

    client: object  # a boto3 S3 client
    bucket: str
    prefix: str = ""

    def merge(self, day: str, rows: pd.DataFrame) -> Merged:
        key = f"{self.prefix.strip('/')}/{planner_file(day)}".lstrip("/")
        for _ in range(MERGE_ATTEMPTS):
            try:
                obj = self.client.get_object(Bucket=self.bucket, Key=key)
                old, cond = obj["Body"].read(), {"IfMatch": obj["ETag"]}
            except self.client.exceptions.NoSuchKey:
                old, cond = None, {"IfNoneMatch": "*"}
            body, before = _merge(old, rows)
            try:
                self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="text/csv", **cond)
            except self.client.exceptions.ClientError as e:
                if e.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict"):
                    continue  # another planner wrote first: read their answers and merge again
                raise
            return Merged(f"s3://{self.bucket}/{key}", before, len(rows))
        raise RuntimeError(f"s3://{self.bucket}/{key}: {MERGE_ATTEMPTS} conditional writes lost to other writers")


def planner_file_date(today: dt.date, end_date: str | None = None) -> str:
    """The planner folder an answer given `today` is filed under: the newest daily partition.
    Dagster's daily partitions end at the last complete day (and before `end_date` when the
    deployment sets one), and the planner_files sensor reads only files whose date is a partition:
    a file dated today would wait until tomorrow. Filed under yesterday it is read within a minute,
    and it still applies to every plan it names up to yesterday's (a plan reads the planner files
    dated on or after it)."""
    last = today - dt.timedelta(days=1)
    if end_date:
        last = min(last, dt.date.fromisoformat(end_date) - dt.timedelta(days=1))
    return last.isoformat()


def open_planner_files(landing_uri: str, lock_dir: Path, s3_client: object | None = None):
    """The planner files of the landing zone at `landing_uri` (a folder or s3://bucket/prefix)."""
    if landing_uri.startswith("s3://"):
        bucket, _, prefix = landing_uri[len("s3://") :].partition("/")
        return S3PlannerFiles(s3_client, bucket, prefix)
    return LocalPlannerFiles(Path(landing_uri), Path(lock_dir))
