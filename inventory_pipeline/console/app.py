"""The planner console (Streamlit): `make console`, then http://127.0.0.1:8501.

A thin shell over `console.users` (login, roles, sessions), `console.answers` (answers checked and
merged into the planner file) and `console.queries` (what the pages show). It reads the warehouse
and writes nothing but planner files: the sensors, the file's validation and the event log stay
the only path into the outbox.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd
import streamlit as st

from inventory_pipeline.config import settings
from inventory_pipeline.console import dashboards, queries
from inventory_pipeline.console.answers import (
    Answer,
    AnswerRefused,
    check_answers,
    open_planner_files,
    planner_file_date,
)
from inventory_pipeline.console.users import Session, authenticate, list_users, lookup, users_path
from inventory_pipeline.core.decisions import override_rates
from inventory_pipeline.core.ingestion import open_store
from inventory_pipeline.core.warehouse import Warehouse

QUEUE_COLUMNS = [
    "answer_sent", "plan_date", "decision_type", "sku_id", "source_id", "location_id", "units", "old_price",
    "new_price", "value",
    "demand_over_lead_time", "demand_p10", "demand_p90", "inventory_position", "target_units", "expected_cost",
    "expected_service", "confidence", "review_reason", "explanation", "decision_id", "revision",
]  # fmt: skip


GRID_ROWS, GRID_ROW_PX = 50, 35
GRID_MAX = 2_000  # rows the queue's grid lists (largest value first); the CSV has every filtered row


def _warehouse() -> Warehouse:
    return Warehouse(settings().warehouse_dir)


def _external_name(s) -> str | None:
    """Who the identity provider says the user is: OIDC through st.login (the claim
    `console_oidc_claim` of the ID token), or the authenticating proxy's header."""
    if s.console_auth == "oidc":
        return st.user.get(s.console_oidc_claim) if st.user.is_logged_in else None
    if s.console_auth == "proxy":
        return st.context.headers.get(s.console_proxy_header) or None
    return None


def _end(notice_key: str, notice: str, s) -> None:
    st.session_state.pop("session", None)
    st.session_state[notice_key] = notice
    if s.console_auth == "oidc" and st.user.is_logged_in:
        st.logout()  # drops the identity cookie too: the next visit goes through the provider again


def _session() -> Session | None:
    """The logged-in session, or None (not logged in, logged out, idle past the limit, or no longer
    a user). The role is re-read from the users file on every page."""
    s = settings()
    sess: Session | None = st.session_state.get("session")
    if sess is not None and sess.expired() and s.console_auth != "proxy":  # the proxy keeps its own sessions
        _end("expired_notice", f"session of {sess.user.name} expired: log in again", s)
        return None
    name = sess.user.name if sess is not None else _external_name(s)
    user = lookup(users_path(s.console_dir), name) if name else None
    if user is None:
        if name:
            _end("expired_notice", f"{name} is not a console user (any more): an admin adds users", s)
        return None
    if sess is None or s.console_auth == "proxy" and sess.user.name != user.name:
        sess = st.session_state["session"] = Session.start(user, s.console_session_minutes)
    sess.user = user
    sess.touch()
    return sess


def login_page() -> None:
    st.title("Planner console")
    if note := st.session_state.pop("expired_notice", None):
        st.warning(note)
    s = settings()
    if s.console_auth == "oidc":
        if st.button("Log in with the company account", type="primary"):
            st.login(s.console_oidc_provider) if s.console_oidc_provider else st.login()
        return
    if s.console_auth == "proxy":
        st.error(
            f"No identity from the authenticating proxy (header {s.console_proxy_header}): "
            "open the console through the proxy's address."
        )
        return
    path = users_path(s.console_dir)
    if not path.is_file():
        st.info("No users yet. An admin adds the first one: `inventory-pipeline console-user add NAME --role admin`.")
    with st.form("login"):
        name = st.text_input("User", key="login_user")
        password = st.text_input("Password", type="password", key="login_password")
        if st.form_submit_button("Log in"):
            user = authenticate(path, name.strip(), password)
            if user is None:
                st.error("wrong user name or password")
            else:
                st.session_state["session"] = Session.start(user, s.console_session_minutes)
                st.rerun()


def _filters(q: pd.DataFrame) -> pd.DataFrame:
    c1, c2, c3, c4, c5 = st.columns(5)
    kinds = c1.multiselect("Type", sorted(q["decision_type"].unique()), key="f_type")
    stores = c2.multiselect("Location", sorted(q["location_id"].dropna().unique()), key="f_location")
    sources = c3.multiselect("Supplier / source", sorted(q["source_id"].dropna().unique()), key="f_source")
    reason = c4.text_input("Reason contains", key="f_reason")
    min_value = c5.number_input("Value at least", value=0.0, step=100.0, key="f_value")
    keep = q["value"].fillna(0).abs() >= min_value
    if kinds:
        keep &= q["decision_type"].isin(kinds)
    if stores:
        keep &= q["location_id"].isin(stores)
    if sources:
        keep &= q["source_id"].isin(sources)
    if reason:
        keep &= q["review_reason"].str.contains(reason, case=False, regex=False)
    if st.toggle("Hide decisions already answered", value=True, key="f_unanswered") and "answer_sent" in q:
        keep &= q["answer_sent"].isna()  # sent, not yet applied by the pipeline: off the working list
    return q[keep].reset_index(drop=True)


def _answer_form(selected: pd.DataFrame, session: Session) -> None:
    """Approve, reject or override the selected decisions; written to today's planner file."""
    if not session.user.may_answer:
        st.caption(f"{session.user.name} is a {session.user.role}: answers are for planners.")
        return
    with st.form("answer"):
        st.write(f"{len(selected)} decision(s) selected")
        action = st.radio("Answer", ["approve", "reject", "override"], horizontal=True, key="a_action")
        value = st.text_input("Override: units or price (one value for every selected decision)", key="a_value")
        reason = st.text_input("Reason (needed to reject or override)", key="a_reason")
        if not st.form_submit_button("Send answer"):
            return
    answers = [
        Answer(r.decision_id, action, r.revision, value=value if action == "override" else None, reason=reason)
        for r in selected.itertuples()
    ]
    try:
        # checked against the plans as they are now, not as the page read them: a decision exported
        # or re-planned since is refused, and the page then reloads with the new numbers
        current = queries.decision_state(_warehouse(), sorted(selected["plan_date"].unique()), _plan_state)
        rows = check_answers(answers, current, session.user)
        s = settings()
        merged = open_planner_files(s.landing_uri, s.console_dir / "locks", _s3_client()).merge(
            planner_file_date(dt.date.today(), s.end_date), rows
        )
    except AnswerRefused as e:
        st.session_state["refused"] = e.problems
    else:
        st.session_state["last_answer"] = f"{len(rows)} answer(s) written to {merged.uri}"
    _reread_queue()  # either way the page then shows the plans as they are now, nothing selected
    st.rerun()


def _reread_queue() -> None:
    _queue.clear()  # the plans' replays and the marts are cached by file time: fresh already
    st.session_state.pop("queue", None)
    # a new grid: a selection is row positions, which mean other decisions in a re-read queue
    st.session_state["grid_version"] = st.session_state.get("grid_version", 0) + 1


def _queue_snapshot() -> tuple[pd.DataFrame, str]:
    """This planner's copy of the queue and when it was read. It changes only when they ask
    (Reload) or after they answer, never between selecting rows and sending the answer: the rows
    answered are the rows they saw. Answers are checked against the plans as they are at sending."""
    if "queue" not in st.session_state:
        st.session_state["queue"] = (_queue(), dt.datetime.now().strftime("%H:%M:%S"))
    return st.session_state["queue"]


def _s3_client():
    s = settings()
    if not s.landing_uri.startswith("s3://"):
        return None
    import boto3

    return boto3.client("s3", endpoint_url=s.s3_endpoint_url)


@st.cache_data(ttl=30, show_spinner="reading the plans")
def _queue() -> pd.DataFrame:
    """The pending decisions, each marked with the answer a planner already sent (written to the
    planner file, not yet applied by the pipeline)."""
    q = queries.review_queue(_warehouse())
    if not len(q):
        return q
    s = settings()
    store = open_store(s.landing_uri, _s3_client())
    return q.merge(queries.sent_answers(store, q["plan_date"].min()), on="decision_id", how="left")


def queue_page() -> None:
    session = _session()
    st.title("Review queue")
    q, read_at = _queue_snapshot()
    if st.button(f"Reload (read at {read_at})", key="reload_queue"):
        _reread_queue()
        st.rerun()
    if not len(q):
        st.info("Nothing waits for a planner in the latest plans.")
        return
    if problems := st.session_state.pop("refused", None):
        st.error("Nothing was written:\n\n" + "\n".join(f"- {p}" for p in problems))
    if note := st.session_state.pop("last_answer", None):
        st.success(
            f"{note}; the pipeline applies them when its planner_files sensor next runs "
            "(the decision page shows when they reach the outbox)."
        )
    shown = _filters(q)
    listed = f"the first {GRID_MAX:,} (filter to narrow); " if len(shown) > GRID_MAX else ""
    st.caption(f"{len(shown)} of {len(q)} pending decisions, newest plan first; {listed}select rows to answer them.")
    all_shown, shown = shown, shown.head(GRID_MAX)  # a planner works down a list, not through 30,000 rows
    event = st.dataframe(
        shown[[c for c in QUEUE_COLUMNS if c in shown]],
        key=f"queue-{st.session_state.get('grid_version', 0)}",
        on_select="rerun",
        selection_mode="multi-row",
        hide_index=True,
        height=GRID_ROW_PX * (min(len(shown), GRID_ROWS) + 1) + 3,  # up to 50 rows in view: shift-click ranges
    )
    _csv_button(all_shown, "review_queue.csv")
    selected = shown.iloc[event.selection.rows] if event.selection.rows else shown.iloc[0:0]
    if len(selected) == 1:
        st.page_link(detail, label=f"Open {selected['decision_id'].iloc[0]}")
        st.session_state["detail_id"] = selected["decision_id"].iloc[0]
    if len(selected):
        _answer_form(selected, session)


def detail_page() -> None:
    st.title("Decision")
    wh = _warehouse()
    did = st.text_input("Decision id", value=st.session_state.get("detail_id", ""), key="detail_input").strip()
    if not did:
        return
    own = queries.own_events(wh, did)  # read once: the events table, the state and the export all come from it
    events = queries.decision_events(wh, did, own)
    if not len(events):
        st.error(f"{did}: no such decision")
        return
    day = did.split("-")[1]
    plan_date = f"{day[:4]}-{day[4:6]}-{day[6:]}"
    row = queries.one_decision_state(wh, did, own).iloc[0]
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("State", row["state"])
    c2.metric("Units" if row["decision_type"] != "price_change" else "New price",
              row["units"] if row["decision_type"] != "price_change" else row["new_price"])  # fmt: skip
    c3.metric("Value", f"{row['value']:,.2f}")
    c4.metric("Confidence", "-" if pd.isna(row["confidence"]) else f"{row['confidence']:.2f}")
    st.write(row["explanation"])
    st.caption(
        f"model {row['model_version']} · policy {row['policy_version']} · inputs {row['inputs_fingerprint']} · "
        f"revision {row['revision']}"
    )
    if row["location_id"] and row["sku_id"]:
        hist = queries.recent_history(wh, row["location_id"], row["sku_id"], plan_date)
        if len(hist):
            st.subheader("Sales, stock and forecast")
            st.line_chart(hist.set_index("date")[["units_sold", "on_hand", "mean", "p10", "p90"]])
            _csv_button(hist, f"{did}_history.csv")
    st.subheader("Events")
    st.dataframe(events, hide_index=True)
    exported = queries.exported_lines(wh, did, events)
    st.caption("Reached the outbox: " + (str(exported["recorded_at"].iloc[-1]) if len(exported) else "not yet"))


def _file_stamp(table: str, day: str) -> int:
    """A partition's modification time: the cache key that changes exactly when the pipeline rewrites it."""
    path = _warehouse().path(table, day)
    return path.stat().st_mtime_ns if path.is_file() else 0


@st.cache_data(max_entries=128, show_spinner="reading the plans")
def _plan_read(table: str, day: str, stamp: int) -> pd.DataFrame:
    """A plan's decisions, shared by every session until the pipeline rewrites the file: replayed
    from its event log (`decision_events`, for checking answers) or as its `decision_log` holds them."""
    if table == "decision_events":
        return queries.plan_state(_warehouse(), day)
    return queries.logged_state(_warehouse(), day)


def _plan_state(day: str) -> pd.DataFrame:
    return _plan_read("decision_events", day, _file_stamp("decision_events", day))


def _logged(day: str) -> pd.DataFrame:
    return _plan_read("decision_log", day, _file_stamp("decision_log", day))


def _state_over_time(plans: int = 28) -> pd.DataFrame:
    """Decisions by type and status over the last plans: their decision logs, cached by file time."""
    wh = _warehouse()
    return queries.decision_state(wh, queries.plan_dates(wh, plans), _logged)


def _csv_button(frame: pd.DataFrame, file_name: str, key: str | None = None) -> None:
    """The numbers as CSV, written when the button is clicked: the whole M5 queue is 20 MB and
    ~1 s of to_csv, which every page run would otherwise pay."""
    st.download_button("Download CSV", lambda: frame.to_csv(index=False), file_name, "text/csv", key=key)


def _section(title: str, frame: pd.DataFrame, name: str, chart=None) -> None:
    """One dashboard: its chart (or its table), and the numbers as CSV."""
    st.subheader(title)
    if frame is None or not len(frame):
        st.caption("nothing yet")
        return
    if chart is not None:
        chart(frame)
    else:
        st.dataframe(frame, hide_index=True)
    _csv_button(frame, f"{name}.csv", key=f"csv_{name}")


def _summary(table: str) -> pd.DataFrame | None:
    """A dashboard's summary: the newest plan's (the pipeline writes them), else computed from the
    marts. None before the marts' first build, and (with a note) while dbt rebuilds the DuckDB file.
    Shared by every session until the pipeline writes a plan or dbt rewrites the file."""
    wh = _warehouse()
    if not wh.duckdb_path.is_file():
        return None
    plans = wh.partitions("decision_log")
    stamp = (
        plans[-1] if plans else "",
        _file_stamp(table, plans[-1]) if plans else 0,
        wh.duckdb_path.stat().st_mtime_ns,
    )
    try:
        return _summary_read(table, stamp)
    except duckdb.Error as e:
        st.warning(f"the warehouse cannot be read just now ({type(e).__name__}); reload in a moment")
        return None


@st.cache_data(max_entries=32, show_spinner="reading the warehouse")
def _summary_read(table: str, stamp: tuple) -> pd.DataFrame:
    return dashboards.summary(_warehouse(), table)


def _two_lines(f: pd.DataFrame) -> None:
    """Stockout rate and fill rate side by side: each on its own scale."""
    left, right = st.columns(2)
    left.line_chart(f.set_index("date")["stockout_rate"], y_label="stockout rate")
    right.line_chart(f.set_index("date")["fill_rate"], y_label="fill rate")


def dashboards_page() -> None:
    st.title("Dashboards")
    if not _warehouse().duckdb_path.is_file():
        st.info("The dbt marts are not built yet: stock, supplier and accuracy appear after the pipeline's first run.")
    state = _state_over_time()
    posture = _summary("dashboard_stock_posture")
    _section("Stores: stockout rate and fill rate (estimated demand)", posture, "stock_posture", _two_lines)
    inventory = _summary("dashboard_inventory")
    _section("Inventory value and weeks of supply by location and category", inventory, "inventory",
             lambda f: (st.bar_chart(f, x="location_id", y="value", color="category"),
                        st.dataframe(f, hide_index=True)))  # fmt: skip
    otif = _summary("dashboard_supplier_otif")
    shares = ["on_time", "in_full", "otif"]
    _section("Suppliers: on time, in full (purchase orders due)", otif, "supplier_otif",
             lambda f: st.bar_chart(f.set_index("supplier_id")[shares], stack=False))  # fmt: skip
    accuracy = _summary("dashboard_forecast_accuracy")
    _section("Forecast accuracy: past forecasts against what sold (first 14 days)", accuracy, "forecast_accuracy")
    if len(state):
        by = state.assign(plan_date=pd.to_datetime(state["plan_date"]).dt.date).groupby(["plan_date", "decision_type"])
        counts = by.size().unstack(fill_value=0).reset_index()
        _section("Decisions per plan, by type", counts, "decisions_by_type",
                 lambda f: st.bar_chart(f.set_index("plan_date")))  # fmt: skip
        _section("Review load and override rate", override_rates(state), "override_rates")
    _section("Freshness: newest partition of each table", dashboards.freshness(_warehouse()), "freshness")
    _section("Run failures", dashboards.run_failures(_warehouse()), "run_failures")


def users_page() -> None:
    st.title("Users")
    st.dataframe(pd.DataFrame([u.__dict__ for u in list_users(users_path(settings().console_dir))]), hide_index=True)
    st.caption("Add or change users with `inventory-pipeline console-user add NAME --role planner|viewer|admin`.")


queue = st.Page(queue_page, title="Review queue", url_path="queue", default=True)
detail = st.Page(detail_page, title="Decision", url_path="decision")
dashboards_view = st.Page(dashboards_page, title="Dashboards", url_path="dashboards")


def main() -> None:
    st.set_page_config(page_title="inventory_pipeline console", layout="wide")
    session = _session()
    if session is None:
        st.navigation([st.Page(login_page, title="Log in", url_path="login")], position="hidden").run()
        return
    with st.sidebar:
        st.write(f"**{session.user.name}** ({session.user.role})")
        if settings().console_auth != "proxy" and st.button("Log out"):
            del st.session_state["session"]
            st.logout() if settings().console_auth == "oidc" else st.rerun()
    pages = [queue, detail, dashboards_view]
    if session.user.is_admin:
        pages.append(st.Page(users_page, title="Users", url_path="users"))
    st.navigation(pages).run()
    # Idle time runs from when the user could see the page, not from when it began to render: a
    # slow render (a large queue, a busy server) must not use up the session before the first click.
    session.touch()


main()
