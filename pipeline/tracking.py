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
import fcntl
import json
import os
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

import mlflow
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunStatus
from mlflow.tracking import MlflowClient
from mlflow.tracking.context.registry import resolve_tags

from models import TrainingInterrupted
from pipeline.types import InputError

PROJECT_DIR = Path(__file__).resolve().parents[1]
HEARTBEAT_S = 30  # seconds between heartbeats of a run in progress
STALE_S = 600  # a heartbeat older than this, from another host, means the run's process is gone
DEFAULT_EXPERIMENT = "icl-task-diversity"


@dataclasses.dataclass(frozen=True)
class Tracking:
    """A tracking store and experiment: picklable, so worker processes write where their parent does.
    `launched_run` is the run the `mlflow run` launcher opened for this process (MLFLOW_RUN_ID), if any:
    the first run opened without a parent continues it."""

    uri: str
    experiment_id: str
    launched_run: str | None = None

    def client(self):
        return Retrying(MlflowClient(self.uri))

    def activate(self):
        """Make this store and experiment the process's defaults: the registry, downloads by URI and
        logged models (MLflow files those under the default experiment) then go where the runs go."""
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        mlflow.set_tracking_uri(self.uri)
        mlflow.set_experiment(experiment_id=self.experiment_id)
        return self


class Retrying:
    """An MlflowClient whose calls are retried, with growing pauses, when the store reports a transient
    failure (a SQLite file locked by another process's write, a server that is briefly unavailable)."""

    TRANSIENT = ("database is locked", "TEMPORARILY_UNAVAILABLE", "RESOURCE_EXHAUSTED")
    PAUSES = (0.2, 0.5, 1.0, 2.0, 4.0)

    def __init__(self, client):
        self.client = client

    def __getattr__(self, name):
        method = getattr(self.client, name)
        if not callable(method):
            return method

        def call(*args, **kwargs):
            for pause in self.PAUSES:
                try:
                    return method(*args, **kwargs)
                except Exception as error:
                    if not any(text in str(error) for text in self.TRANSIENT):
                        raise
                    time.sleep(pause)
            return method(*args, **kwargs)

        return call


def setup_tracking():
    """The configured store and experiment: the launcher's (MLFLOW_EXPERIMENT_ID), MLFLOW_EXPERIMENT_NAME,
    or the project's default experiment, created with its artifacts beside a local SQLite store."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{PROJECT_DIR / 'mlflow.db'}"
    launched = os.environ.get("MLFLOW_RUN_ID") or None
    with _store_lock(uri):
        experiment_id = _experiment_id(Retrying(MlflowClient(uri)), uri, launched)
    return Tracking(uri, experiment_id, launched).activate()


@contextlib.contextmanager
def _store_lock(uri):
    """One process at a time creates a SQLite store's schema and the experiment: MLflow's migrations race
    otherwise ("table ... already exists" when several entry points start at once on a new store)."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    path = Path(uri.removeprefix("sqlite:///")).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _experiment_id(client, uri, launched):
    if os.environ.get("MLFLOW_EXPERIMENT_ID"):
        return os.environ["MLFLOW_EXPERIMENT_ID"]
    if launched:
        return client.get_run(launched).info.experiment_id
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    # A local SQLite store gets its artifact folder beside it (not ./mlruns of whatever the cwd is); a
    # server keeps its own artifact root.
    local = uri.startswith("sqlite:///")
    store_dir = Path(uri.removeprefix("sqlite:///")).resolve().parent
    location = (store_dir / "mlartifacts" / name).as_uri() if local else None
    return client.create_experiment(name, artifact_location=location)


class Run:
    """One run being written, by id."""

    def __init__(self, tracking, run_id):
        self.tracking, self.id, self.client = tracking, run_id, tracking.client()

    def log_params(self, params):
        """Log params not already on the run (`mlflow run` pre-logs the declared ones as given)."""
        existing = self.client.get_run(self.id).data.params
        fresh = [Param(key, as_text(value)) for key, value in params.items() if key not in existing]
        self.client.log_batch(self.id, params=fresh)

    def log_metrics(self, metrics, step=None, logged=None):
        """Log `metrics` at `step`, leaving out those `logged` ({key: last step}, a resumed run's) already
        holds at or after it."""
        logged = logged or {}
        fresh = [
            Metric(k, float(v), _now_ms(), step or 0) for k, v in metrics.items() if (step or 0) > logged.get(k, -1)
        ]
        if fresh:
            self.client.log_batch(self.id, metrics=fresh)

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
def tracked_run(tracking, run_name, stage, parent=None, reopen=None):
    """A `Run` for one stage, nested under the run id `parent` when given; with no parent, the run that
    the `mlflow run` launcher opened for this process, if any (an entry point opens one parentless run);
    `reopen` continues that earlier run (a resumed training) instead. Tagged `stage` so sweeps can find
    it again, and with MLflow's context tags (user, source, git commit) as the fluent API would. It ends
    FINISHED; FAILED on an error (re-raised); KILLED when interrupted (a signal, Ctrl-C)."""
    client = tracking.client()
    if reopen:
        run_id = reopen
        client.update_run(run_id, status=RunStatus.to_string(RunStatus.RUNNING))
    elif parent is None and tracking.launched_run:
        run_id = tracking.launched_run
        client.update_run(run_id, name=run_name)
    else:
        tags = resolve_tags({"mlflow.parentRunId": parent} if parent else {})
        run_id = client.create_run(tracking.experiment_id, run_name=run_name, tags=tags).info.run_id
    run = Run(tracking, run_id)
    run.set_tag("stage", stage)
    try:
        with heartbeats(run):
            yield run
    except (KeyboardInterrupt, TrainingInterrupted):
        client.set_terminated(run_id, RunStatus.to_string(RunStatus.KILLED))
        raise
    except BaseException:
        client.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED))
        raise
    client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED))


def heartbeat():
    return json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "time": time.time()})


def is_alive(run):
    """Whether the process that runs `run` (an MLflow Run) is still there, judged by its heartbeat tag."""
    beat = run.data.tags.get("heartbeat")
    if beat is None:
        return True  # not ours to judge (a run started by other code)
    beat = json.loads(beat)
    if beat["host"] == socket.gethostname():
        try:
            os.kill(beat["pid"], 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return time.time() - beat["time"] < STALE_S


@contextlib.contextmanager
def heartbeats(run):
    """Refresh the tag `heartbeat` of `run` (a tracking.Run) every HEARTBEAT_S seconds while inside."""
    done = threading.Event()

    def beat():
        while True:
            run.set_tag("heartbeat", heartbeat())
            if done.wait(HEARTBEAT_S):
                return

    thread = threading.Thread(target=beat, name=f"heartbeat-{run.id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


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
            raise InputError(f"{name}={uri!r} cannot be downloaded: {first_line(error)}") from None
        yield Path(path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def first_line(error):
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
