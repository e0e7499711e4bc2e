# One command each: `make test` (set up + ruff + the fast tier of pytest), `make test-all` (and the end-to-end
# tier: what CI runs), `make demo` (set up + the demo sweep), `make figures`
# (set up + the paper's figures at CPU scale),
# `make ui` (the MLflow UI on this folder's store), `make bench` (benchmarks, not in CI). Each creates .venv
# in the project root when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup test test-all test-cpus test-slow ui-shots demo figures ui serve bench lint mlproject clean cluster-demo

# The store and the project's experiment too, with artifacts beside the store: `mlflow run
# --experiment-name icl-task-diversity` then finds it rather than creating one that writes to ./mlruns.
setup: $(STAMP)
	$(BIN)/python -m pipeline.tracking.store

# torch is pinned to the CPU wheel first: an unpinned torch would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Two tiers (tests/conftest.py): `make test` is every module's logic, a few minutes; `make test-all` adds the
# end-to-end tests (trainings through the entry points, mlflow run, servers, Ray, torchrun) and is what CI runs.
test: lint
	$(BIN)/pytest -q -m 'not slow and not e2e'

test-all: lint
	$(BIN)/pytest -q

# The suite under each of torch's CPU kernel sets (docs/reliability.md, "Reproducibility"): a test may not depend on one
# CPU's round-off. avx512 selects the AVX-512 kernels only on a CPU that has them.
test-cpus: lint
	for cap in default avx2 avx512; do echo "ATEN_CPU_CAPABILITY=$$cap"; ATEN_CPU_CAPABILITY=$$cap $(BIN)/pytest -q || exit 1; done

test-slow: $(STAMP)
	$(BIN)/pytest -q -m slow

# The MLflow UI in headless Chromium (tests/test_ui_browser.py), its screenshots written to docs/ too.
ui-shots: $(STAMP)
	ICL_UI_SHOTS=$(CURDIR)/docs $(BIN)/pytest -q tests/test_ui_browser.py

# The demo sweep (pipeline/presets.py "demo") into the embedded store: mlflow.db + mlartifacts/ here.
demo: $(STAMP)
	$(BIN)/python -m pipeline.main --preset demo

# The paper's figures at CPU scale (pipeline/gallery.py): the CPU presets' sweeps (reusing finished runs)
# and their analyses, into the embedded store; the PNGs and findings.md land in docs/figures/ (with
# SEED_OFFSET=k, every seed shifted by k, in docs/figures/seed_offset_k/; REPLICATES=n trains every point
# n times, which the claims' verdicts need).
SEED_OFFSET ?= 0
REPLICATES ?=
figures: $(STAMP)
	$(BIN)/python -m pipeline.gallery --seed_offset $(SEED_OFFSET) $(if $(REPLICATES),--replicates $(REPLICATES))

# The MLflow UI on the embedded store (one worker: 2-core machines) on port UI_PORT, which the entry points'
# "open the MLflow UI" lines name too (pipeline/tracking/store.py reads it from the environment).
UI_PORT ?= 5000
export UI_PORT
ui: setup
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(BIN)/mlflow server --backend-store-uri sqlite:///$(CURDIR)/mlflow.db \
		--workers 1 --host 127.0.0.1 --port $(UI_PORT)

# Serve a registered model over HTTP (make serve MODEL=models:/icl-demo@m64 [SERVE_PORT=5001]): the scoring
# server runs uvicorn from the venv, so the venv's bin goes on PATH (no activation needed).
SERVE_PORT ?= 5001
serve: setup
	@test -n "$(MODEL)" || { echo "make serve needs MODEL=models:/<name>@<alias> (e.g. models:/icl-demo@m64)"; exit 2; }
	MLFLOW_TRACKING_URI=$${MLFLOW_TRACKING_URI:-sqlite:///$(CURDIR)/mlflow.db} PATH=$(CURDIR)/$(BIN):$$PATH \
		$(BIN)/mlflow models serve -m "$(MODEL)" --env-manager local --host 127.0.0.1 --port $(SERVE_PORT)

# A two-node Ray cluster and an MLflow server on this machine, the smoke sweep through `auto` and `ray://`, where
# each training ran, then everything stopped (pipeline/cluster_demo.py; docs/cluster.md): a cluster set-up checked.
cluster-demo: $(STAMP)
	$(BIN)/python -m pipeline.cluster_demo

# MLproject is generated from the click options (pipeline/settings.py); tests check it is current.
mlproject: $(STAMP)
	$(BIN)/python -m pipeline.mlproject

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run
	$(BIN)/python -m benchmarks.estimators
	$(BIN)/python -m benchmarks.evaluation
	$(BIN)/python -m benchmarks.ensemble
	$(BIN)/python -m benchmarks.compiled
	$(BIN)/python -m benchmarks.data_parallel

clean:
	rm -rf $(VENV) mlflow.db mlflow.db.lock mlruns mlartifacts .pytest_cache .ruff_cache
