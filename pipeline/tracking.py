"""Where runs go, and the run helpers every entry point shares.

With MLFLOW_TRACKING_URI unset, runs go to the embedded default: a SQLite store `mlflow.db` and an
artifact folder `mlartifacts/` in the project directory, no server needed. Set MLFLOW_TRACKING_URI to
an `mlflow server` address and nothing else changes. Under `mlflow run`, the launcher has already
chosen the store, experiment and run (MLFLOW_RUN_ID); the entry point then just continues that run.
"""

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

PROJECT_DIR = Path(__file__).resolve().parents[1]
DEFAULT_EXPERIMENT = "icl-task-diversity"


def setup_tracking():
    """Point MLflow at the configured store and experiment (MLFLOW_EXPERIMENT_NAME, or the default)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{PROJECT_DIR / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    if os.environ.get("MLFLOW_RUN_ID") or os.environ.get("MLFLOW_EXPERIMENT_ID") or mlflow.active_run():
        return  # `mlflow run` or a parent run chose the experiment
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT
    experiment = MlflowClient().get_experiment_by_name(name)
    if experiment is None:
        # A local SQLite store gets its artifact folder beside it (not ./mlruns of whatever the cwd
        # is); a server keeps its own artifact root.
        local = uri.startswith("sqlite:///")
        store_dir = Path(uri.removeprefix("sqlite:///")).resolve().parent
        location = (store_dir / "mlartifacts" / name).as_uri() if local else None
        experiment_id = MlflowClient().create_experiment(name, artifact_location=location)
    else:
        experiment_id = experiment.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)


_parent_run_id = None  # set in sweep worker processes, which have no active parent run of their own


def nest_under(run_id):
    """Make runs started in this process children of `run_id` (for sweep workers)."""
    global _parent_run_id
    _parent_run_id = run_id


@contextlib.contextmanager
def tracked_run(run_name, stage):
    """A run for one entry point: continues the `mlflow run` launcher's run, or nests under an active one
    (or under the run given to `nest_under`). Tagged `stage` so sweeps can find it again.

    An exception inside marks the run FAILED and is re-raised.
    """
    nested = mlflow.active_run() is not None or _parent_run_id is not None
    parent = None if mlflow.active_run() else _parent_run_id
    with mlflow.start_run(run_name=run_name, nested=nested, parent_run_id=parent) as run:
        mlflow.set_tag("stage", stage)
        yield run


def log_params_once(params):
    """Log params not already on the active run: `mlflow run` pre-logs the declared ones as typed."""
    run = mlflow.active_run()
    existing = MlflowClient().get_run(run.info.run_id).data.params
    fresh = {key: as_text(value) for key, value in params.items() if key not in existing}
    if fresh:
        mlflow.log_params(fresh)


def as_text(value):
    """A setting as MLflow stores it (params, tags): inf as "inf", None as ""."""
    if value is None:
        return ""
    return "inf" if value == float("inf") else str(value)


@contextlib.contextmanager
def local_copy(uri, *, name):
    """A local path for the value of parameter `name`: a plain path as is, or a `runs:/`, `models:/`,
    ... URI downloaded to a temporary folder that is removed afterwards."""
    if "://" not in uri and not uri.startswith(("runs:/", "models:/")):
        path = Path(uri).expanduser()
        if not path.exists():
            raise ValueError(f"{name}={uri!r} does not exist")
        yield path
        return
    folder = tempfile.mkdtemp(prefix="icl-download-")
    try:
        try:
            path = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=folder)
        except Exception as error:  # MLflow raises several types for a missing run or artifact
            raise ValueError(f"{name}={uri!r} cannot be downloaded: {_first_line(error)}") from None
        yield Path(path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _first_line(error):
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
