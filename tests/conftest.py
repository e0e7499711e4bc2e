"""Shared fixtures: a temporary SQLite tracking store with one smoke sweep in it, made once per run."""

import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import mlflow
import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

PROJECT = Path(__file__).resolve().parents[1]
MODEL_NAME = "test-model"
# Tests in two tiers: `make test` runs the logic of every module; `make test-all` (CI) adds the end-to-end tier,
# marked e2e: trainings through the entry points, `mlflow run`, servers, torchrun and Ray. A test that reads one
# of these sweeps is end-to-end without saying so; the others are marked by their module or themselves.
SWEEPS = {"sweep", "laplace_sweep", "dims_sweep", "grid_sweep", "analyses"}


@pytest.hookimpl(tryfirst=True)  # before pytest's -m selection reads the marks
def pytest_collection_modifyitems(items):
    for item in items:
        if SWEEPS & set(item.fixturenames):
            item.add_marker(pytest.mark.e2e)


def stage_name(run):
    """A child run's name without the id of the sweep it belongs to: "train-m4 [1f0c2a]" -> "train-m4"."""
    return run.info.run_name.split(" [")[0]


def invoke(command, *args):
    """Run a click entry point in-process, as its console command would (no exception swallowing)."""
    return CliRunner().invoke(command, [str(a) for a in args], catch_exceptions=False, standalone_mode=True)


def run_cli(*args, cwd, env=None):
    """Run a command with the project's Python first on PATH (as `mlflow run` needs)."""
    env = {**os.environ, **(env or {})}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    for key in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID"):
        env.pop(key, None)
    return subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def mlflow_run(entry, *params, cwd):
    """`mlflow run <project> -e entry --env-manager local -P ...`, as a user types it."""
    args = [sys.executable, "-m", "mlflow", "run", PROJECT, "-e", entry, "--env-manager", "local"]
    for param in params:
        args += ["-P", param]
    return run_cli(*args, cwd=cwd)


@pytest.fixture(scope="session")
def store(tmp_path_factory):
    """A fresh SQLite store in a temporary folder, used as the cwd too (nothing lands in the project)."""
    folder = tmp_path_factory.mktemp("store")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{folder}/mlflow.db")
        patch.setenv("MLFLOW_EXPERIMENT_NAME", "tests")
        patch.delenv("MLFLOW_RUN_ID", raising=False)
        patch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
        patch.chdir(folder)
        yield SimpleNamespace(folder=folder, uri=f"sqlite:///{folder}/mlflow.db", client=MlflowClient())
    mlflow.set_tracking_uri(None)


@pytest.fixture(scope="session")
def sweep(store):
    """The smoke preset over M = 4 and inf, run through `main` once; returns its runs by name."""
    from pipeline import main

    result = invoke(main.main, "--preset", "smoke", "--n_tasks", "4,inf", "--model_name", MODEL_NAME)
    assert result.exit_code == 0, result.output
    experiment = store.client.get_experiment_by_name("tests")
    parent = store.client.get_run(re.search(r"sweep run: runs:/(\w+)", result.output).group(1))
    children = store.client.search_runs([experiment.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    return SimpleNamespace(parent=parent, runs={stage_name(r): r for r in children}, output=result.output)


@pytest.fixture(scope="session")
def laplace_sweep(store):
    """The smoke preset on Laplace tasks, M = 4 and inf; returns the sweep run's id."""
    from pipeline import main

    args = ("--preset", "smoke", "--n_tasks", "4,inf", "--task_prior", "laplace", "--model_name", "laplace")
    result = invoke(main.main, *args)
    assert result.exit_code == 0, result.output
    return re.search(r"sweep run: runs:/(\w+)", result.output).group(1)


@pytest.fixture(scope="session")
def dims_sweep(store):
    """The smoke preset over D = 2, 4 with K = 2D (linked axes) and M = 4, inf: 4 trainings."""
    args = ("--n_tasks", "4,inf", "--n_dims", "2,4", "--n_points", "4,8", "--link", "n_dims,n_points")
    from pipeline import main

    result = invoke(main.main, "--preset", "smoke", *args, "--model_name", "dims")
    assert result.exit_code == 0, result.output
    assert "4 trainings over n_tasks, n_dims, n_points" in result.output
    return store.client.get_run(re.search(r"sweep run: runs:/(\w+)", result.output).group(1))
