"""Where runs go: the tracking store and the experiment, whatever launched the entry point.

With MLFLOW_TRACKING_URI unset, runs go to the embedded default: a SQLite store `mlflow.db` and an
artifact folder `mlartifacts/` in the project directory, no server needed. Set MLFLOW_TRACKING_URI to
an `mlflow server` address and nothing else changes. Under `mlflow run`, the launcher has already
chosen the store, experiment and run (MLFLOW_RUN_ID); the first run opened in that process continues it.

`python -m pipeline.tracking.store` creates the store and the project's experiment (artifacts beside the store)
and prints the command that opens it in the MLflow UI: `make setup` runs it, so that `mlflow run
--experiment-name icl-task-diversity` finds the experiment instead of creating one with ./mlruns.
"""

import contextlib
import dataclasses
import fcntl
import os
from pathlib import Path

import click
import mlflow
import tenacity
from mlflow.tracking import MlflowClient

from pipeline import shutdown

PROJECT_DIR = Path(__file__).resolve().parents[2]  # pipeline/tracking/store.py -> the project root
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
    """An MlflowClient whose calls are retried, with exponential backoff (tenacity), when the store reports a
    transient failure: a server briefly unavailable or rate-limiting (MLflow's error codes), or a SQLite file
    locked by another process's write (which MLflow reports only in the text of its error)."""

    WAIT = tenacity.wait_exponential(multiplier=0.2, max=4)  # 0.2, 0.4, 0.8, ... s, at most 4 s
    ATTEMPTS = 6

    def __init__(self, client):
        self.client = client

    def __getattr__(self, name):
        method = getattr(self.client, name)
        if not callable(method):
            return method
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(transient),
            wait=self.WAIT,
            stop=tenacity.stop_after_attempt(self.ATTEMPTS),
            reraise=True,
        )

        def call(*args, **kwargs):
            with shutdown.atomic():  # a signal waits for the call: an interrupted SQLite write locks the store
                return retrying(method, *args, **kwargs)

        return call


def transient(error):
    """Whether a store's `error` may pass if the call is made again."""
    code = getattr(error, "error_code", None)
    return code in ("TEMPORARILY_UNAVAILABLE", "RESOURCE_EXHAUSTED") or "database is locked" in str(error)


def setup_tracking():
    """The configured store and experiment: the launcher's (MLFLOW_EXPERIMENT_ID), MLFLOW_EXPERIMENT_NAME,
    or the project's default experiment, created with its artifacts beside a local SQLite store."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    # MLflow draws a progress bar for every small download (pools, eval sets): noise between our lines.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
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
    # The kind tag says "model training" to MLflow versions that read it (3.17 decides by the URL, ui_url).
    return client.create_experiment(
        name, artifact_location=location, tags={"mlflow.experimentKind": "custom_model_development"}
    )


def ui_port():
    """The port `make ui` serves the embedded store on: UI_PORT from the environment (the Makefile's), or 5000."""
    return int(os.environ.get("UI_PORT") or 5000)


def ui_url(tracking, port=None):
    """The page of the experiment's runs in the MLflow UI served on `port` (default: ui_port) or, for a
    tracking server, by that server."""
    local = f"http://127.0.0.1:{port or ui_port()}"
    base = local if tracking.uri.startswith("sqlite:///") else tracking.uri.rstrip("/")
    # The query parameter opens the UI in its model-training workflow (Runs, Models in the sidebar); without
    # it MLflow 3.17 opens the GenAI one, whatever the experiment's kind tag says (mlflow issue #24498).
    return f"{base}/#/experiments/{tracking.experiment_id}/runs?workflowType=machine_learning"


def ui_command(tracking):
    """How to see `tracking`'s runs in the MLflow UI: serve a local store (one worker: 2-core machines)."""
    if tracking.uri.startswith("sqlite:///"):
        port = ui_port()
        server = f"mlflow server --backend-store-uri {tracking.uri} --workers 1 --port {port}"
        make = "make ui" + (f" UI_PORT={port}" if port != 5000 else "")
        return f"MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false {server} (or {make}), then open {ui_url(tracking)}"
    return f"open {ui_url(tracking)}"


@click.command(help="Create the tracking store and the project's experiment; print how to open them in the UI.")
def main():
    tracking = setup_tracking()
    click.echo(f"store {tracking.uri}, experiment {tracking.experiment_id}")
    click.echo(f"open the MLflow UI on it: {ui_command(tracking)}")


if __name__ == "__main__":
    main()
