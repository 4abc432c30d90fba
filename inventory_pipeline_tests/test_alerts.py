"""Operational alerts: run failures naming the gate that stopped them, failed ERROR checks in a
finished run, and a review queue past the threshold, posted through dagster-msteams and
dagster-slack to a local HTTP endpoint standing in for Teams and Slack."""

import http.server
import json
import threading
import urllib.parse

import dagster as dg
import pytest

from inventory_pipeline.core import alerts as messages
from inventory_pipeline.defs.resources import AlertsResource, WarehouseResource
from inventory_pipeline.defs.sensors import record_run_failures, record_run_summaries, review_queue_alert


class _Endpoint(http.server.BaseHTTPRequestHandler):
    """Teams' webhook and Slack's Web API in one: records (path, body) and answers 200 ok."""

    posts: list = []

    def do_POST(self):  # noqa: N802
        raw = self.rfile.read(int(self.headers["Content-Length"])).decode()
        if self.headers.get("Content-Type", "").startswith("application/json"):
            body = json.loads(raw)
        else:
            body = {k: v[0] for k, v in urllib.parse.parse_qs(raw).items()}
        _Endpoint.posts.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"ok": true}')

    def log_message(self, *a):
        pass


@pytest.fixture
def endpoint():
    _Endpoint.posts = []
    server = http.server.HTTPServer(("127.0.0.1", 0), _Endpoint)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def _alerts(url: str, threshold: int = 200) -> AlertsResource:
    return AlertsResource(
        teams_webhook=f"{url}/teams/hook",
        slack_token="xoxb-test",
        slack_channel="#stock",
        slack_api_url=f"{url}/slack/api",
        review_queue_threshold=threshold,
    )


def _teams_text(body: dict) -> str:
    return "\n".join(b["text"] for b in body["attachments"][0]["content"]["body"])


def _by_channel(posts):
    teams = [b for p, b in posts if p.startswith("/teams/")]
    slack = [b for p, b in posts if p == "/slack/api/chat.postMessage"]
    return teams, slack


# ---------------------------------------------------------------------------------------------
# core: the messages


def test_only_failed_error_checks_count_and_each_once():
    keys = ["asset", "check", "blocking", "description", "passed", "severity"]
    ev = [
        dict(zip(keys, row))
        for row in [
            ("orders", "cap", True, "3 above", False, "ERROR"),
            ("orders", "cap", True, "3 above", False, "ERROR"),  # seen twice (a retried step): one row
            ("orders", "drift", False, "", False, "WARN"),
            ("prices", "floor", True, "", True, "ERROR"),
        ]
    ]
    assert messages.failed_checks(ev)[["asset", "check"]].values.tolist() == [["orders", "cap"]]
    assert messages.failed_checks([]).empty


def test_review_queue_alert_only_past_the_threshold():
    assert messages.review_queue_alert("2025-03-01", 200, 200, {}, 0.0, "u") is None
    a = messages.review_queue_alert("2025-03-01", 201, 200, {"order": 150, "transfer": 51}, 12345.6, "u")
    assert a.kind == "review_queue" and "201 decisions wait" in a.title
    assert a.lines == ("by type: 150 order, 51 transfer", "value waiting: 12,346")


# ---------------------------------------------------------------------------------------------
# shell: the sensors post through dagster-msteams and dagster-slack


def _run_context(instance, res, event_type, wh, endpoint):
    """What the daemon hands a run-status sensor for the run `res` ended with `event_type`."""
    event = instance.all_logs(res.run_id, of_type=event_type)[0].dagster_event
    return dg.build_run_status_sensor_context(
        sensor_name="run_status",
        dagster_event=event,
        dagster_instance=instance,
        dagster_run=res.dagster_run,
        resources={"warehouse": wh, "alerts": _alerts(endpoint)},
    )


@dg.asset(check_specs=[dg.AssetCheckSpec("within_caps", asset="orders", blocking=True)])
def orders():
    yield dg.Output(1)
    yield dg.AssetCheckResult(check_name="within_caps", passed=False, description="3 orders above the spend cap")


@dg.asset(deps=[orders])
def outbox():
    return 1


@dg.asset(check_specs=[dg.AssetCheckSpec("fresh_prices", asset="prices")])
def prices():
    yield dg.Output(1)
    yield dg.AssetCheckResult(check_name="fresh_prices", passed=False, description="prices are 3 days old")


def test_a_failed_gate_alerts_teams_and_slack_naming_the_gate(tmp_path, endpoint):
    wh = WarehouseResource(root=str(tmp_path / "wh"))
    with dg.instance_for_test() as instance:
        res = dg.materialize([orders, outbox], instance=instance, raise_on_error=False)
        assert not res.success
        ctx = _run_context(instance, res, dg.DagsterEventType.RUN_FAILURE, wh, endpoint).for_run_failure()
        record_run_failures(ctx)
    teams, slack = _by_channel(_Endpoint.posts)
    assert len(teams) == 1 and len(slack) == 1
    for text in (_teams_text(teams[0]), slack[0]["text"]):
        assert "failed (stopped by a governance gate)" in text
        assert "gate orders:within_caps failed: 3 orders above the spend cap" in text
        assert res.run_id in text  # the link to the run
    assert slack[0]["channel"] == "#stock"


def test_a_failed_error_check_in_a_finished_run_alerts(tmp_path, endpoint):
    wh = WarehouseResource(root=str(tmp_path / "wh"))
    with dg.instance_for_test() as instance:
        res = dg.materialize([prices], instance=instance)
        assert res.success
        record_run_summaries(_run_context(instance, res, dg.DagsterEventType.RUN_SUCCESS, wh, endpoint))
    teams, slack = _by_channel(_Endpoint.posts)
    assert len(teams) == len(slack) == 1
    assert (
        "1 check(s) failed" in slack[0]["text"]
        and "check prices:fresh_prices failed: prices are 3 days old" in (slack[0]["text"])
    )


def _queue_materialised(instance, day: str, pending: int) -> None:
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            "review_queue",
            partition=day,
            metadata={"dagster/row_count": pending, "by_type": {"order": pending}, "value_waiting": 10.0 * pending},
        )
    )


def test_review_queue_past_the_threshold_alerts_once_per_plan(endpoint):
    with dg.instance_for_test() as instance:
        cursor = None
        for day, pending in (("2025-03-01", 250), ("2025-03-02", 120), ("2025-03-03", 301)):
            _queue_materialised(instance, day, pending)
            ctx = dg.build_sensor_context(
                instance=instance, cursor=cursor, resources={"alerts": _alerts(endpoint, threshold=200)}
            )
            # evaluate_tick, as the daemon: it advances the cursor past the materialisation it read
            tick = review_queue_alert.evaluate_tick(ctx)
            cursor = tick.cursor
            assert not tick.run_requests
        again = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"alerts": _alerts(endpoint, 200)})
        assert "No new materialization" in review_queue_alert.evaluate_tick(again).skip_message
    _, slack = _by_channel(_Endpoint.posts)
    assert [s["text"].splitlines()[0] for s in slack] == [
        "inventory_pipeline: 250 decisions wait for a planner after the 2025-03-01 plan (threshold 200)",
        "inventory_pipeline: 301 decisions wait for a planner after the 2025-03-03 plan (threshold 200)",
    ]


def test_alerts_are_off_when_unset_and_a_down_channel_does_not_raise():
    alert = messages.Alert("run_failed", "x failed")
    assert AlertsResource().send(alert) == []

    class Log:
        def __init__(self):
            self.warnings = []

        def warning(self, m):
            self.warnings.append(m)

    log = Log()
    down = AlertsResource(teams_webhook="http://127.0.0.1:9/hook", slack_token="t", slack_api_url="http://127.0.0.1:9/")
    assert down.send(alert, log) == []
    assert [w.split(" ")[2] for w in log.warnings] == ["teams", "slack"]


def test_the_forecast_engine_resource_takes_its_worker_processes_from_the_environment(monkeypatch):
    from inventory_pipeline.defs.resources import default_resources

    assert default_resources()["forecast_engine"].n_jobs == 1
    monkeypatch.setenv("INVENTORY_PIPELINE_FORECAST_JOBS", "2")
    assert default_resources()["forecast_engine"].n_jobs == 2
    monkeypatch.setenv("INVENTORY_PIPELINE_FORECAST_JOBS", "0")
    with pytest.raises(ValueError, match="INVENTORY_PIPELINE_FORECAST_JOBS='0': a whole number of at least 1"):
        default_resources()


def test_every_job_runs_its_steps_in_the_runs_process_unless_told_otherwise(monkeypatch):
    from inventory_pipeline.definitions import build_definitions

    jobs = ("ingest_master", "ingest_daily", "daily_plan", "daily_cycle", "review_planner", "publish_decisions")
    monkeypatch.delenv("INVENTORY_PIPELINE_EXECUTOR", raising=False)
    defs = build_definitions()
    assert {defs.resolve_job_def(j).executor_def.name for j in jobs} == {"in_process"}
    monkeypatch.setenv("INVENTORY_PIPELINE_EXECUTOR", "multiprocess")
    assert build_definitions().resolve_job_def("daily_plan").executor_def.name == "multiprocess"
    monkeypatch.setenv("INVENTORY_PIPELINE_EXECUTOR", "threads")
    with pytest.raises(ValueError, match="INVENTORY_PIPELINE_EXECUTOR='threads': one of in_process, multiprocess"):
        build_definitions()


def test_the_default_resources_read_alert_settings_from_the_environment(monkeypatch):
    from inventory_pipeline.defs.resources import default_resources

    monkeypatch.setenv("INVENTORY_PIPELINE_ALERT_WEBHOOK", "http://127.0.0.1:1/hook")
    monkeypatch.setenv("INVENTORY_PIPELINE_ALERT_REVIEW_QUEUE", "75")
    a = default_resources()["alerts"]
    assert a.review_queue_threshold == 75 and a.slack_token is None
    assert isinstance(a.teams_webhook, dg.EnvVar)  # the UI shows the variable's name, not the secret
