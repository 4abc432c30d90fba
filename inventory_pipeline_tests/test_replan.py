"""core.replan: which plans a late or corrected landing file made stale, and the order of their re-plans."""

import pandas as pd

from inventory_pipeline.core.replan import Stale, Wave, next_step, recorded_inputs, stale_from
from inventory_pipeline.core.warehouse import Warehouse

DAYS = ["2026-03-01", "2026-03-02", "2026-03-03"]


def _recorded(hashes: dict) -> pd.DataFrame:
    """Each plan read raw_pos_sales of every day up to its date, and the products master file."""
    rows = [(p, "raw_pos_sales", d, hashes[d]) for p in DAYS for d in DAYS if d <= p]
    rows += [(p, "raw_products", "", "m1") for p in DAYS]
    return pd.DataFrame(rows, columns=["plan_date", "table", "partition", "sha256"])


def test_the_earliest_plan_that_read_a_changed_partition_is_stale():
    recorded = _recorded({d: f"h{i}" for i, d in enumerate(DAYS)})
    now = {("raw_pos_sales", d): f"h{i}" for i, d in enumerate(DAYS)} | {("raw_products", ""): "m1"}
    assert stale_from(recorded, lambda t, p: now[(t, p)]) is None

    now[("raw_pos_sales", DAYS[1])] = "corrected"  # plans of 03-02 and 03-03 read it; 03-01 did not
    stale = stale_from(recorded, lambda t, p: now[(t, p)])
    assert stale == Stale(DAYS[1], (f"raw_pos_sales/{DAYS[1]}",), ("corrected",))
    assert stale.reason() == f"raw_pos_sales/{DAYS[1]} changed since the plan of {DAYS[1]} read it"

    now[("raw_products", "")] = "new master"  # a master file is not dated: it does not make old plans stale
    assert stale_from(recorded, lambda t, p: now[(t, p)]) == stale
    now[("raw_pos_sales", DAYS[0])] = ""  # a partition gone since is a change too
    assert stale_from(recorded, lambda t, p: now[(t, p)]).plan_date == DAYS[0]
    late = _recorded({DAYS[0]: "h0", DAYS[1]: "", DAYS[2]: "h2"})  # plans read 03-02 before its files came
    now = {("raw_pos_sales", d): f"h{i}" for i, d in enumerate(DAYS)} | {("raw_products", ""): "m1"}
    assert stale_from(late, lambda t, p: now[(t, p)]).plan_date == DAYS[1]


def test_the_same_change_is_the_same_wave_and_another_change_another():
    a = Stale(DAYS[1], ("raw_pos_sales/x",), ("h2",))
    assert a.wave == Stale(DAYS[2], ("raw_pos_sales/x",), ("h2",)).wave  # the next plan that read it
    assert a.wave != Stale(DAYS[1], ("raw_pos_sales/x",), ("h3",)).wave  # corrected again
    assert a.wave != Stale(DAYS[1], ("raw_inventory/x",), ("h2",)).wave


def test_a_wave_replans_every_later_date_one_at_a_time_in_date_order():
    stale = Stale(DAYS[0], ("raw_pos_sales/2026-03-01",), ("h9",))
    runs: dict[str, list[tuple[float, str, float]]] = {d: [] for d in DAYS}  # date -> (created, status, ended)

    def last_run(d, since):
        after = [r for r in runs[d] if r[0] > since]
        return (after[-1][1], after[-1][2]) if after else None

    step = next_step(None, stale, DAYS, last_run, now=100.0)
    assert step.plan_date == DAYS[0] and step.wave == Wave(stale.wave, DAYS[0], stale.reason(), 100.0, stale.changes)
    runs[DAYS[0]].append((101.0, "STARTED", 0.0))
    step = next_step(step.wave, stale, DAYS, last_run, now=105.0)
    assert step.plan_date is None and "waiting for the re-plan of 2026-03-01" in step.message
    runs[DAYS[0]][-1] = (101.0, "SUCCESS", 110.0)
    # the landing sensor had planned 03-02 at 105, before 03-01's re-plan ended: that plan read stale state
    runs[DAYS[1]].append((105.0, "SUCCESS", 108.0))
    step = next_step(step.wave, Stale(DAYS[1], stale.changed, stale.now), DAYS, last_run, now=111.0)
    assert step.plan_date == DAYS[1] and step.wave.since == 110.0 and step.wave.wave == stale.wave
    runs[DAYS[1]].append((112.0, "FAILURE", 115.0))
    step = next_step(step.wave, Stale(DAYS[1], stale.changed, stale.now), DAYS, last_run, now=120.0)
    assert step.plan_date is None and step.wave.next_date == DAYS[1]  # stops: 03-03 would read what 03-02 left
    assert "ended FAILURE" in step.message and "--plan-from 2026-03-02" in step.message
    runs[DAYS[1]].append((130.0, "SUCCESS", 140.0))  # a planner re-planned it from the CLI after the fix
    step = next_step(step.wave, Stale(DAYS[2], stale.changed, stale.now), DAYS, last_run, now=141.0)
    assert step.plan_date == DAYS[2] and step.wave.since == 140.0
    runs[DAYS[2]].append((142.0, "SUCCESS", 150.0))
    step = next_step(step.wave, None, DAYS, last_run, now=151.0)
    assert step.plan_date is None and step.wave is None and "re-planned every plan through 2026-03-03" in step.message
    assert next_step(None, None, DAYS, last_run, now=152.0).message == "every plan read what the warehouse holds"


def test_a_change_before_the_waves_position_starts_the_wave_again_there():
    wave = Wave("w1", DAYS[2], "old", 100.0)
    earlier = Stale(DAYS[1], ("raw_inventory/2026-03-02",), ("h1",))
    step = next_step(wave, earlier, DAYS, lambda d, since: None, now=200.0)
    assert step.plan_date == DAYS[1] and step.wave == Wave(
        earlier.wave, DAYS[1], earlier.reason(), 200.0, earlier.changes
    )
    later = Stale(DAYS[2], ("raw_inventory/2026-03-03",), ("h1",))  # after the position: the wave covers it
    assert next_step(Wave("w1", DAYS[1], "old", 100.0), later, DAYS, lambda d, s: None, 200.0).wave.wave == "w1"


def test_a_second_correction_restarts_a_wave_stopped_by_a_failed_replan():
    first = Stale(DAYS[0], ("raw_pos_sales/2026-03-01",), ("bad",))
    failed = Wave(first.wave, DAYS[0], first.reason(), 100.0, first.changes)

    def last_run(d, since):
        return ("FAILURE", 110.0) if since < 110 else None

    assert next_step(failed, first, DAYS, last_run, 120.0).plan_date is None  # the same data: it stays stopped
    fixed = Stale(DAYS[0], first.changed, ("fixed",))
    step = next_step(failed, fixed, DAYS, last_run, 130.0)
    assert step.plan_date == DAYS[0] and step.wave == Wave(fixed.wave, DAYS[0], fixed.reason(), 130.0, fixed.changes)


def test_a_later_date_with_more_changes_fails_once_and_is_not_launched_again():
    # one ingest corrected the files of 03-01 and 03-02: the plan of 03-02 read both
    d1 = Stale(DAYS[0], ("raw_pos_sales/2026-03-01",), ("a",))
    d2 = Stale(DAYS[1], ("raw_pos_sales/2026-03-01", "raw_pos_sales/2026-03-02"), ("a", "b"))
    runs = {DAYS[0]: ("SUCCESS", 110.0)}

    def last_run(d, since):
        return runs.get(d)

    wave = Wave(d1.wave, DAYS[0], d1.reason(), 100.0, d1.changes)
    step = next_step(wave, d2, DAYS, last_run, 111.0)  # 03-01 re-planned: 03-02 is launched
    assert step.plan_date == DAYS[1] and set(d2.changes) <= set(step.wave.covers)
    runs[DAYS[1]] = ("FAILURE", 120.0)
    again = next_step(step.wave, d2, DAYS, last_run, 121.0)
    assert again.plan_date is None and "ended FAILURE" in again.message  # stopped, not launched a second time
    no_end = next_step(  # a run the storage kept no end time for: the next date counts runs from now
        Wave("w", DAYS[1], "r", 100.0, d2.changes),
        None,
        DAYS,
        lambda d, s: ("SUCCESS", None) if d == DAYS[1] else None,
        130.0,
    )
    assert no_end.plan_date == DAYS[2] and no_end.wave.since == 130.0


def test_recorded_inputs_reads_every_plans_dated_reads(tmp_path):
    wh = Warehouse(tmp_path)
    assert recorded_inputs(wh).empty
    rec = _recorded({d: f"h{i}" for i, d in enumerate(DAYS)})
    for p, g in rec.groupby("plan_date"):
        wh.write("decision_inputs", g.drop(columns="plan_date"), p)
    got = recorded_inputs(wh).sort_values(["plan_date", "partition"], ignore_index=True)
    want = rec[rec["table"] == "raw_pos_sales"].sort_values(["plan_date", "partition"], ignore_index=True)
    pd.testing.assert_frame_equal(got, want, check_dtype=False)


def test_a_backfill_replans_from_the_stale_date_even_where_runs_succeeded(tmp_path):
    import dagster as dg
    from dagster._core.storage.dagster_run import DagsterRun

    from inventory_pipeline.runner import _stale_plans, plan_dates_to_run

    with dg.instance_for_test() as instance:
        for d in DAYS:
            instance.add_run(
                DagsterRun(job_name="daily_plan", tags={"dagster/partition": d}, status=dg.DagsterRunStatus.SUCCESS)
            )
        assert plan_dates_to_run(instance, DAYS) == (DAYS, [])  # resumed: nothing left to plan
        assert plan_dates_to_run(instance, DAYS, stale_from=DAYS[1]) == (DAYS[:1], DAYS[1:])

    wh = Warehouse(tmp_path)
    for i, d in enumerate(DAYS):
        wh.write("raw_pos_sales", pd.DataFrame({"units_sold": [i]}), d)
    rec = pd.DataFrame(
        [(p, "raw_pos_sales", d, wh.sha256("raw_pos_sales", d)) for p in DAYS for d in DAYS if d <= p],
        columns=["plan_date", "table", "partition", "sha256"],
    )
    for p, g in rec.groupby("plan_date"):
        wh.write("decision_inputs", g.drop(columns="plan_date"), p)
    warned = []
    assert _stale_plans(wh, None, DAYS[2], warned.append) is None and not warned
    wh.write("raw_pos_sales", pd.DataFrame({"units_sold": [7]}), DAYS[1])  # a corrected file, re-ingested
    assert _stale_plans(wh, DAYS[1], DAYS[2], warned.append) == DAYS[1] and not warned  # the backfill covers it
    assert _stale_plans(wh, None, DAYS[2], warned.append) == DAYS[1]
    assert warned == [
        f"raw_pos_sales/{DAYS[1]} changed since the plan of {DAYS[1]} read it: the plans {DAYS[1]} .. {DAYS[2]} used "
        f"data that has changed since; `inventory-pipeline run --plan-from {DAYS[1]} --date {DAYS[2]}` plans them "
        "again in date order"
    ]
    warned.clear()  # a run of an older date, or a backfill that stops short of the last plan: the command names it
    assert _stale_plans(wh, DAYS[1], DAYS[1], warned.append) == DAYS[1] and f"--date {DAYS[2]}" in warned[0]


def test_a_republish_keeps_the_plans_record_of_what_it_read():
    from inventory_pipeline.defs.decisions import REPUBLISH_JOBS
    from inventory_pipeline.defs.jobs import publish_job

    assert publish_job.name in REPUBLISH_JOBS
