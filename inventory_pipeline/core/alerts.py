"""Operational alerts: what to tell the team, and when (plain Python). The shell's sensors decide
that something happened; the shell's alerts resource posts the message through dagster-msteams
and/or dagster-slack. Three kinds:

- a run failed (its failed steps, and the governance gates that stopped it, if any);
- a run finished but an ERROR-severity check failed (a gate that did not stop it);
- a plan's review queue is past the threshold planners can clear.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd


@dataclass(frozen=True)
class Alert:
    kind: str  # run_failed | check_failed | review_queue
    title: str
    lines: tuple[str, ...] = ()
    link: str | None = None
    details: dict = field(default_factory=dict)

    @property
    def text(self) -> str:
        """The message as one plain-text block (Slack's text, a log line)."""
        return "\n".join([self.title, *self.lines, *([self.link] if self.link else [])])


def failed_checks(evaluations: list[dict]) -> pd.DataFrame:
    """The checks that failed with ERROR severity, one row each (asset, check, blocking,
    description), from a run's check evaluations (dicts with those keys plus passed, severity)."""
    cols = ["asset", "check", "blocking", "description"]
    ev = pd.DataFrame(evaluations, columns=[*cols, "passed", "severity"])
    bad = ev[(~ev["passed"].astype(bool)) & (ev["severity"] == "ERROR")]
    return bad[cols].drop_duplicates(["asset", "check"]).reset_index(drop=True)


def _check_lines(checks: pd.DataFrame) -> list[str]:
    return [
        f"{'gate' if c.blocking else 'check'} {c.asset}:{c.check} failed"
        + (f": {c.description}" if c.description else "")
        for c in checks.itertuples()
    ]


def run_failed(failures: pd.DataFrame, checks: pd.DataFrame) -> Alert:
    """A failed run from its run_failures rows (core.run_records.failure_record) and its failed checks."""
    r = failures.iloc[0]
    steps = [f"step {f.step or '(run)'}: {f.error}" for f in failures.itertuples()]
    stopped_by = " (stopped by a governance gate)" if len(checks) and checks["blocking"].any() else ""
    return Alert(
        "run_failed",
        f"inventory_pipeline: {r.job} {r.partition or ''} failed{stopped_by}".replace("  ", " "),
        tuple(_check_lines(checks) + steps),
        r.dagster_url,
        {"run_id": r.run_id, "job": r.job, "partition": r.partition, "failed_steps": len(failures)},
    )


def check_failed(run_id: str, job: str, partition: str, checks: pd.DataFrame, link: str) -> Alert:
    """A run that finished while ERROR-severity checks failed."""
    return Alert(
        "check_failed",
        f"inventory_pipeline: {len(checks)} check(s) failed in {job} {partition}".rstrip(),
        tuple(_check_lines(checks)),
        link,
        {"run_id": run_id, "job": job, "partition": partition, "checks": len(checks)},
    )


def review_queue_alert(
    plan_date: str, pending: int, threshold: int, by_type: dict, value: float, link: str
) -> Alert | None:
    """The review queue after a plan: an alert when more decisions wait than `threshold`, else None."""
    if pending <= threshold:
        return None
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(by_type.items(), key=lambda kv: -kv[1]))
    return Alert(
        "review_queue",
        f"inventory_pipeline: {pending} decisions wait for a planner "
        f"after the {plan_date} plan (threshold {threshold})",
        (f"by type: {kinds}" if kinds else "", f"value waiting: {value:,.0f}"),
        link,
        {"plan_date": plan_date, "pending": pending, "threshold": threshold},
    )
