# Set-up and everyday commands. Needs only Python 3.11 and make.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export INVENTORY_PIPELINE_HOME ?= $(CURDIR)

.PHONY: install manifest demo test dev bench mlflow-ui clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check uv==0.13.8
	$(BIN)/uv pip install --quiet --python $(BIN)/python -c constraints.txt -e '.[dev]'
	touch $@

install: $(VENV)/.installed manifest

# dagster-dbt loads dbt_project/target/manifest.json: build it from the current models (the code
# location also re-parses at load time when a model is newer than the manifest)
manifest: $(VENV)/.installed
	cd dbt_project && PATH=$(CURDIR)/$(BIN):$$PATH ../$(BIN)/dbt parse --quiet

$(DAGSTER_HOME)/dagster.yaml:
	mkdir -p $(DAGSTER_HOME)
	printf 'telemetry:\n  enabled: false\n' > $@

demo: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/inventory-pipeline demo

test: install
	$(BIN)/pytest -n 2 -q

dev: install $(DAGSTER_HOME)/dagster.yaml
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

mlflow-ui: install
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow/mlflow.db -h 127.0.0.1 -p 5000

# Speed, memory and cost of the asset graph on a simulated network (docs/benchmark.md):
# one daily partition and a 90-day backfill; results in bench/results.{json,md}
SCALE ?= m5
bench: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python -m inventory_pipeline.benchmark --scale $(SCALE) --out bench

clean:
	rm -rf data .dagster_home mlflow/mlflow.db mlflow/artifacts dbt_project/target
