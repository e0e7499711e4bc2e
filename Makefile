# One command each: `make test` (set up + ruff + pytest), `make demo` (set up + the demo sweep), `make figures`
# (set up + the paper's figures at CPU scale),
# `make ui` (the MLflow UI on this folder's store), `make bench` (benchmarks, not in CI). Each creates .venv
# in the project root when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup test test-cpus test-slow demo figures ui bench lint mlproject clean

# The store and the project's experiment too, with artifacts beside the store: `mlflow run
# --experiment-name icl-task-diversity` then finds it rather than creating one that writes to ./mlruns.
setup: $(STAMP)
	$(BIN)/python -m pipeline.store

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

test: lint
	$(BIN)/pytest -q

# The suite under each of torch's CPU kernel sets (docs/reliability.md, "Reproducibility"): a test may not depend on one
# CPU's round-off. avx512 selects the AVX-512 kernels only on a CPU that has them.
test-cpus: lint
	$(BIN)/pytest -q
	for cap in default avx2 avx512; do echo "ATEN_CPU_CAPABILITY=$$cap"; ATEN_CPU_CAPABILITY=$$cap $(BIN)/pytest -q || exit 1; done

test-slow: $(STAMP)
	$(BIN)/pytest -q -m slow

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

# The MLflow UI on the embedded store (one worker: 2-core machines); it prints the experiment's address.
ui: setup
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(BIN)/mlflow server --backend-store-uri sqlite:///$(CURDIR)/mlflow.db \
		--workers 1 --host 127.0.0.1 --port 5000

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
