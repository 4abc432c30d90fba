"""The planner console: a Streamlit app over the warehouse for planners (review queue, answers,
decision detail) and everyone who watches the pipeline (dashboards), behind a login.

Plain Python modules (no Streamlit import) hold what the app does, so it is tested without a
browser: `users` (who may log in and what they may do), `answers` (a planner's answers, checked and
merged into the planner file of landing contract v1.1), `queries` (what the pages show, from the
warehouse). `app.py` is the Streamlit shell.
"""
