"""The planner console in a real browser (Debian's Chromium through Playwright, nothing
downloaded): a planner logs in, filters the queue, approves, overrides and rejects; the planner
file holds exactly those answers under their login, and the event log applies them; a viewer
finds no way to answer; a wrong password and a bad override are refused with a clear message and
nothing written. Screenshots of each page go to test-artifacts/ for a person to look at."""

from __future__ import annotations

import os
import time

import pandas as pd
import pytest

from inventory_pipeline.config import DEFAULT_POLICY_PATH
from inventory_pipeline.console.users import set_user, users_path
from inventory_pipeline.core.decisions import merge_events, planner_events, proposal_events, propose, replay, route
from inventory_pipeline.core.policy import load_policy
from inventory_pipeline.core.rebalancing import TRANSFER_COLUMNS
from inventory_pipeline.core.warehouse import Warehouse
from inventory_pipeline_tests.helpers import answer_in_console as _answer
from inventory_pipeline_tests.helpers import chromium_page, streamlit_app
from inventory_pipeline_tests.test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, ROOT, _free_port, pytestmark

pytestmark = [*pytestmark, pytest.mark.slow]
PLAN = "2025-04-30"
PASSWORDS = {"ana": "planner password 1", "vic": "viewer password 1", "dan": "planner password 2"}
APP = ROOT / "inventory_pipeline" / "console" / "app.py"
VIEW_HEIGHT = 2400  # the queue's grid shows up to 50 rows: all of it in view, so rows are clicked where they are


def _orders(n: int) -> pd.DataFrame:
    """n purchase orders worth 6,000 each: past the default approval limit, so all wait."""
    return pd.DataFrame(
        {
            "decision_type": "purchase_order",
            "sku_id": [f"SKU{i:03d}" for i in range(n)],
            "source_id": ["SUP1" if i % 2 else "SUP2" for i in range(n)],
            "location_id": ["DC1" if i % 3 else "DC2" for i in range(n)],
            "units": 600,
            "order_date": pd.Timestamp("2025-05-01"),
            "expected_date": pd.Timestamp("2025-05-06"),
            "order_value": 6000.0 + pd.Series(range(n), dtype=float),
            "service_level": 0.95,
            "expected_service": 0.97,
            "expected_cost": 3.0,
            "mean_demand_protection": 500.0,
            "sigma_demand_protection": 50.0,
            "inventory_position": 100.0,
            "target_units": 700.0,
            "reorder_point": 550.0,
            "binding_constraint": "case_pack",
            "rationale": "order up to the target",
        }
    )


@pytest.fixture(scope="module")
def console(tmp_path_factory):
    """A home whose latest plan has 60 pending purchase orders, two users, and the console on a
    free port (streamlit run, as `make console`)."""
    home = tmp_path_factory.mktemp("console_home")
    wh = Warehouse(home / "data" / "warehouse")
    pol = load_policy(DEFAULT_POLICY_PATH)
    orders = _orders(60)
    proposals = propose(orders, pd.DataFrame(columns=TRANSFER_COLUMNS), pd.DataFrame(), PLAN, "m/1", pol.tag, "fp")
    wh.write("decision_events", proposal_events(route(proposals, pol), "2025-04-30T22:00:00", "run1"), PLAN)
    wh.write("replenishment_orders", orders, PLAN)
    set_user(users_path(home / "console"), "ana", PASSWORDS["ana"], "planner")
    set_user(users_path(home / "console"), "vic", PASSWORDS["vic"], "viewer")
    set_user(users_path(home / "console"), "dan", PASSWORDS["dan"], "planner")
    set_user(users_path(home / "console"), "pat@example.com", None, "planner", external=True)
    with streamlit_app(APP, _free_port(), _console_env(home)) as url:
        yield {"url": url, "home": home, "wh": wh}


def _console_env(home, **settings) -> dict:
    env = {**os.environ, "INVENTORY_PIPELINE_HOME": str(home), "INVENTORY_PIPELINE_CONSOLE_DIR": str(home / "console")}
    for var in ("INVENTORY_PIPELINE_LANDING_URI", "INVENTORY_PIPELINE_WAREHOUSE_DIR"):
        env.pop(var, None)
    return env | {f"INVENTORY_PIPELINE_{k.upper()}": str(v) for k, v in settings.items()}


@pytest.fixture()
def page():
    with chromium_page(CHROMIUM, CHROMIUM_ARGS, 1500, 30_000, VIEW_HEIGHT) as pg:
        yield pg


def _login(page, url: str, name: str, password: str) -> None:
    page.goto(url, wait_until="networkidle")
    page.get_by_role("textbox", name="User").fill(name)
    page.get_by_role("textbox", name="Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def _click_rows(page, rows: list[int], selected: int | None = None) -> None:
    """Tick or untick the rows' checkboxes in the queue's grid (a canvas: by position, 35 px a
    row, all of it in view), then wait until the page counts `selected` rows. The grid is located
    again for each click: an answer or a selection re-renders the page around it."""
    for i in rows:
        grid = page.locator('[data-testid="stDataFrame"]').first
        grid.wait_for(state="visible")
        page.wait_for_timeout(500)
        box = grid.bounding_box()
        page.mouse.click(box["x"] + 16, box["y"] + 35 + 35 * i + 17)
        page.wait_for_timeout(700)
    if selected is not None:
        page.get_by_text(f"{selected} decision(s) selected").wait_for()


def _planner_rows(home) -> pd.DataFrame:
    files = sorted((home / "data" / "landing" / "planner").glob("*/decisions.csv"))
    return pd.concat([pd.read_csv(f, dtype=str, keep_default_na=False) for f in files]) if files else pd.DataFrame()


def test_wrong_password_is_refused(console, page):
    _login(page, console["url"], "ana", "not her password")
    page.get_by_text("wrong user name or password").wait_for()
    page.screenshot(path=str(ARTIFACTS / "console_login_refused.png"))


def test_a_planner_approves_overrides_and_rejects_and_the_event_log_records_her(console, page):
    ARTIFACTS.mkdir(exist_ok=True)
    _login(page, console["url"], "ana", PASSWORDS["ana"])
    page.get_by_text("60 of 60 pending decisions").wait_for()
    page.screenshot(path=str(ARTIFACTS / "console_queue.png"))
    page.get_by_role("textbox", name="Reason contains").fill("order value")
    page.keyboard.press("Enter")
    page.get_by_text("60 of 60 pending decisions").wait_for()  # every one waits for its value
    _click_rows(page, [0], selected=1)
    _answer(page, "approve")
    page.get_by_text("1 answer(s) written").wait_for()
    _click_rows(page, [1], selected=1)  # an answer clears the selection: tick the second row
    _answer(page, "override", value="-3", reason="too many")
    page.get_by_text("Nothing was written").wait_for()
    page.get_by_text("non-negative number").wait_for()
    page.screenshot(path=str(ARTIFACTS / "console_override_refused.png"))
    _click_rows(page, [1], selected=1)  # the page re-read the queue: select again, on the numbers as they are
    _answer(page, "override", value="420", reason="promotion ends early")
    page.get_by_text("1 answer(s) written").wait_for()
    _click_rows(page, [2], selected=1)
    _answer(page, "reject", reason="the DC is full until Friday")
    page.get_by_text("1 answer(s) written").wait_for()
    page.get_by_text("57 of 60 pending decisions").wait_for()  # answered ones leave the working list ...
    page.get_by_text("Hide decisions already answered").click()
    # ... and, shown again, carry what was sent until the pipeline applies it (a canvas grid: hidden DOM cells)
    page.get_by_text("reject by ana on").first.wait_for(state="attached")
    page.screenshot(path=str(ARTIFACTS / "console_answered.png"), full_page=True)
    rows = _planner_rows(console["home"])
    assert rows["planner"].unique().tolist() == ["ana"]
    assert rows["action"].tolist() == ["approve", "override", "reject"] and rows["decision_id"].is_unique
    assert rows.loc[rows["action"] == "override", "override_units_or_price"].tolist() == ["420.0"]
    # the pipeline's event log applies the file as written: the planner is the logged-in user
    wh = console["wh"]
    events = merge_events(wh.read("decision_events", PLAN), planner_events(rows, "2026-12-06", "2026-12-06T12:00"))
    state = replay(events)[0].set_index("decision_id")
    answered = state.loc[rows["decision_id"]]
    assert set(answered["planner"]) == {"ana"}
    assert answered["status"].tolist() == ["approved", "overridden", "rejected"]
    assert answered.loc[rows["decision_id"].iloc[1], "units"] == 420


def test_a_viewer_finds_no_way_to_answer(console, page):
    _login(page, console["url"], "vic", PASSWORDS["vic"])
    page.get_by_text("pending decisions").first.wait_for()
    _click_rows(page, [0])
    page.get_by_text("vic is a viewer: answers are for planners.").wait_for()
    assert page.get_by_role("button", name="Send answer").count() == 0
    page.screenshot(path=str(ARTIFACTS / "console_viewer.png"))
    page.get_by_role("link", name="Dashboards").click()  # dashboards are for viewers too
    page.get_by_text("Run failures").wait_for()  # the last section: the page has run through
    page.wait_for_timeout(1500)  # the charts draw after the script ends
    page.screenshot(path=str(ARTIFACTS / "console_dashboards.png"))


def test_an_idle_session_expires_and_nothing_is_written(console, page):
    home = console["home"]
    with streamlit_app(APP, _free_port(), _console_env(home, console_session_minutes=0.1)) as url:  # 6 s idle
        _login(page, url, "dan", PASSWORDS["dan"])
        page.get_by_text("pending decisions").first.wait_for()
        _click_rows(page, [0], selected=1)
        before = len(_planner_rows(home))
        time.sleep(7)
        _answer(page, "approve")
        page.get_by_text("session of dan expired: log in again").wait_for()
        page.get_by_role("button", name="Log in").wait_for()
        page.screenshot(path=str(ARTIFACTS / "console_expired.png"))
    assert len(_planner_rows(home)) == before


def test_a_forged_request_for_another_role_is_refused(console, page):
    from inventory_pipeline.console.users import set_user

    home, url = console["home"], console["url"]
    # a planner asks for the admins' page by its address: it is not there for her
    page.goto(url + "/users", wait_until="networkidle")
    page.get_by_text("Page not found").wait_for()
    page.screenshot(path=str(ARTIFACTS / "console_forged_page.png"))
    page.keyboard.press("Escape")
    page.get_by_role("textbox", name="User").fill("dan")
    page.get_by_role("textbox", name="Password").fill(PASSWORDS["dan"])
    page.get_by_role("button", name="Log in").click()
    page.get_by_text("pending decisions").first.wait_for()
    assert page.get_by_role("link", name="Users").count() == 0 and page.get_by_text("vic").count() == 0
    # demoted while her answer form is open: the role is re-read on the click, and nothing is written
    _click_rows(page, [0], selected=1)
    before = len(_planner_rows(home))
    set_user(users_path(home / "console"), "dan", PASSWORDS["dan"], "viewer")
    try:
        _answer(page, "approve")
        page.get_by_text("dan is a viewer: answers are for planners.").wait_for()
        assert page.get_by_role("button", name="Send answer").count() == 0
        page.screenshot(path=str(ARTIFACTS / "console_demoted.png"))
    finally:
        set_user(users_path(home / "console"), "dan", PASSWORDS["dan"], "planner")
    assert len(_planner_rows(home)) == before


def test_behind_an_auth_proxy_its_header_is_the_identity(console):
    env = _console_env(console["home"], console_auth="proxy")
    with streamlit_app(APP, _free_port(), env) as url:
        with chromium_page(
            CHROMIUM, CHROMIUM_ARGS, 1500, 30_000, headers={"X-Forwarded-Email": "pat@example.com"}
        ) as pg:
            pg.goto(url, wait_until="networkidle")
            pg.get_by_text("pending decisions").first.wait_for()
            pg.get_by_text("pat@example.com").first.wait_for()  # the sidebar: who, and as what
            assert pg.get_by_text("(planner)").count() == 1 and pg.get_by_role("button", name="Log out").count() == 0
            pg.screenshot(path=str(ARTIFACTS / "console_proxy.png"))
        with chromium_page(
            CHROMIUM, CHROMIUM_ARGS, 1500, 30_000, headers={"X-Forwarded-Email": "eve@example.com"}
        ) as pg:
            pg.goto(url, wait_until="networkidle")
            pg.get_by_text("eve@example.com is not a console user").wait_for()
        with chromium_page(CHROMIUM, CHROMIUM_ARGS, 1500, 30_000, VIEW_HEIGHT) as pg:  # around the proxy: no identity
            pg.goto(url, wait_until="networkidle")
            pg.get_by_text("No identity from the authenticating proxy").wait_for()
            assert pg.get_by_role("textbox", name="Password").count() == 0


def test_oidc_login_through_the_identity_provider(console, tmp_path):
    """st.login against a real OIDC provider on localhost (oidc-provider-mock): the ID token's
    e-mail claim is the user; the users file says what they may do."""
    import secrets

    from oidc_provider_mock import User, run_server_in_thread

    port = _free_port()
    with run_server_in_thread(user_claims=[User(sub="pat", claims={"email": "pat@example.com"})]) as idp:
        (tmp_path / ".streamlit").mkdir()
        (tmp_path / ".streamlit" / "secrets.toml").write_text(
            "[auth]\n"
            f'redirect_uri = "http://127.0.0.1:{port}/oauth2callback"\n'
            f'cookie_secret = "{secrets.token_hex(32)}"\n'
            'client_id = "planner-console"\n'
            'client_secret = "not-a-secret-in-a-test"\n'
            f'server_metadata_url = "http://localhost:{idp.server_port}/.well-known/openid-configuration"\n'
        )
        env = _console_env(console["home"], console_auth="oidc")
        with (
            streamlit_app(APP, port, env, cwd=tmp_path) as url,
            chromium_page(CHROMIUM, CHROMIUM_ARGS, 1500, 30_000, VIEW_HEIGHT) as pg,
        ):
            pg.goto(url, wait_until="networkidle")
            assert pg.get_by_role("textbox", name="Password").count() == 0  # no local passwords in this mode
            pg.get_by_role("button", name="Log in with the company account").click()
            pg.get_by_role("button", name="pat").click()  # the provider's page: authenticate pat
            pg.get_by_text("pending decisions").first.wait_for()
            pg.get_by_text("pat@example.com").first.wait_for()
            pg.locator('[data-testid="stDataFrame"]').first.wait_for(state="visible")
            pg.wait_for_timeout(1000)  # the grid draws after the script ends
            pg.screenshot(path=str(ARTIFACTS / "console_oidc.png"))
