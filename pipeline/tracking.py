"""Where runs go, and the run handle every entry point writes through.

With MLFLOW_TRACKING_URI unset, runs go to the embedded default: a SQLite store `mlflow.db` and an
artifact folder `mlartifacts/` in the project directory, no server needed. Set MLFLOW_TRACKING_URI to
an `mlflow server` address and nothing else changes. Under `mlflow run`, the launcher has already
chosen the store, experiment and run (MLFLOW_RUN_ID); the first run opened in that process continues it.

Runs are written through `Run`, a handle bound to one run id (MlflowClient, not the fluent API's one
active run per process), so any number of runs can be open in a process and nothing rides on globals.
"""

import contextlib
import dataclasses
import os
import shutil
import tempfile
import time
from pathlib import Path

import mlflow
from mlflow.entities import Dataset, DatasetInput, InputTag, RunStatus
from mlflow.tracking import MlflowClient

from pipeline.types import InputError

PROJECT_DIR = Path(__file__).resolve().parents[1]
DEFAULT_EXPERIMENT = "icl-task-diversity"


@dataclasses.dataclass(frozen=True)
class Tracking:
    """A tracking store and experiment: picklable, so worker processes write where their parent does."""

    uri: str
    experiment_id: str

    def client(self):
        return MlflowClient(self.uri)

    def activate(self):
        """Make this store the process's default (for registry and artifact downloads by URI)."""
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        mlflow.set_tracking_uri(self.uri)
        return self


def setup_tracking():
    """The configured store and experiment: the launcher's (MLFLOW_EXPERIMENT_ID), MLFLOW_EXPERIMENT_NAME,
    or the project's default experiment, created with its artifacts beside a local SQLite store."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{PROJECT_DIR / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    if os.environ.get("MLFLOW_EXPERIMENT_ID"):
        return Tracking(uri, os.environ["MLFLOW_EXPERIMENT_ID"])
    if os.environ.get("MLFLOW_RUN_ID"):
        return Tracking(uri, client.get_run(os.environ["MLFLOW_RUN_ID"]).info.experiment_id)
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return Tracking(uri, experiment.experiment_id)
    # A local SQLite store gets its artifact folder beside it (not ./mlruns of whatever the cwd is); a
    # server keeps its own artifact root.
    local = uri.startswith("sqlite:///")
    store_dir = Path(uri.removeprefix("sqlite:///")).resolve().parent
    location = (store_dir / "mlartifacts" / name).as_uri() if local else None
    return Tracking(uri, client.create_experiment(name, artifact_location=location))


class Run:
    """One run being written, by id."""

    def __init__(self, tracking, run_id):
        self.tracking, self.id, self.client = tracking, run_id, tracking.client()

    def log_params(self, params):
        """Log params not already on the run (`mlflow run` pre-logs the declared ones as given)."""
        existing = self.client.get_run(self.id).data.params
        fresh = {key: as_text(value) for key, value in params.items() if key not in existing}
        for start in range(0, len(fresh), 100):  # MLflow's batch limit
            batch = dict(list(fresh.items())[start : start + 100])
            self.client.log_batch(self.id, params=[mlflow.entities.Param(k, v) for k, v in batch.items()])

    def log_metrics(self, metrics, step=None):
        self.client.log_batch(
            self.id, metrics=[mlflow.entities.Metric(k, float(v), _now_ms(), step or 0) for k, v in metrics.items()]
        )

    def set_tag(self, key, value):
        self.client.set_tag(self.id, key, as_text(value))

    def log_artifact(self, path, artifact_path=None):
        self.client.log_artifact(self.id, str(path), artifact_path)

    def log_artifacts(self, folder, artifact_path=None):
        self.client.log_artifacts(self.id, str(folder), artifact_path)

    def log_text(self, text, artifact_file):
        self.client.log_text(self.id, text, artifact_file)

    def log_dict(self, data, artifact_file):
        self.client.log_dict(self.id, data, artifact_file)

    def log_table(self, data, artifact_file):
        self.client.log_table(self.id, data, artifact_file)

    def log_figure(self, figure, artifact_file):
        self.client.log_figure(self.id, figure, artifact_file)

    def log_dataset(self, dataset, context):
        """Log an `mlflow.data` dataset as an input of this run."""
        entity = Dataset(**dataset.to_dict())
        self.client.log_inputs(self.id, [DatasetInput(entity, tags=[InputTag("mlflow.data.context", context)])])

    def artifact_uri(self, path):
        return f"{self.client.get_run(self.id).info.artifact_uri}/{path}"


def _now_ms():
    return int(time.time() * 1000)


@contextlib.contextmanager
def tracked_run(tracking, run_name, stage, parent=None):
    """A `Run` for one stage, nested under the run id `parent` when given; with no parent, the run that
    the `mlflow run` launcher opened for this process (MLFLOW_RUN_ID, taken once). Tagged `stage` so
    sweeps can find it again. It ends FINISHED, or FAILED (the exception re-raised)."""
    client = tracking.client()
    launched = None if parent else os.environ.pop("MLFLOW_RUN_ID", None)
    if launched:
        client.update_run(launched, name=run_name)
        run_id = launched
    else:
        tags = {"mlflow.parentRunId": parent} if parent else {}
        run_id = client.create_run(tracking.experiment_id, run_name=run_name, tags=tags).info.run_id
    run = Run(tracking, run_id)
    run.set_tag("stage", stage)
    try:
        yield run
    except BaseException:
        client.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED))
        raise
    client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED))


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
            raise InputError(f"{name}={uri!r} does not exist")
        yield path
        return
    folder = tempfile.mkdtemp(prefix="icl-download-")
    try:
        try:
            path = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=folder)
        except Exception as error:  # MLflow raises several types for a missing run or artifact
            raise InputError(f"{name}={uri!r} cannot be downloaded: {_first_line(error)}") from None
        yield Path(path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _first_line(error):
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
