"""The run handle every entry point writes through, and the life of a run (its status; its heartbeats are
pipeline/tracking/heartbeats.py).

Runs are written through `Run`, a handle bound to one run id (MlflowClient, not the fluent API's one
active run per process), so any number of runs can be open in a process and nothing rides on globals.
Where runs go (the store and experiment) is pipeline/tracking/store.py.
"""

import contextlib
import io
import shutil
import tempfile
import time
import urllib.parse
from pathlib import Path

import click
import mlflow
import PIL.Image
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunStatus
from mlflow.tracking.context.registry import resolve_tags

from models import TrainingInterrupted
from pipeline import shutdown
from pipeline.tracking.heartbeats import heartbeat, heartbeats
from pipeline.types import InputError, as_text

REASON_TAG = "end_reason"  # why a run ended FAILED or KILLED, in one line (the UI's run page shows tags)


class Run:
    """One run being written, by id."""

    def __init__(self, tracking, run_id):
        self.tracking, self.id, self.client = tracking, run_id, tracking.client()
        self.completed = False  # its result is in place (a registered model): an interrupt now cannot undo it

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

    def set_description(self, markdown):
        """The run's description: the UI renders it as markdown on the run's Overview page."""
        self.client.set_tag(self.id, "mlflow.note.content", markdown)

    def image(self, path, caption):
        """Markdown that shows this run's artifact `path` (a PNG) full size in a description (Overview page)."""
        return f"![{caption}](get-artifact?path={urllib.parse.quote(path, safe='')}&run_uuid={self.id})"

    def link(self, uri):
        """Markdown for `uri` in a description: a `runs:/<id>/...` URI links to that run's page in the UI."""
        if not uri.startswith("runs:/"):
            return f"`{uri}`"
        target = self.client.get_run(uri.removeprefix("runs:/").split("/")[0]).info
        return f"[{target.run_name}](#/experiments/{target.experiment_id}/runs/{target.run_id}) (`{uri}`)"

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

    def log_chart(self, figure, key, steps=(0,)):
        """`figure` (matplotlib, drawn once) as image `key` at each of `steps`: a Model metrics chart (slider)."""
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=80)
        for step in steps:
            self.client.log_image(self.id, PIL.Image.open(io.BytesIO(buffer.getvalue())), key=key, step=step)

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
    `reopen` (an MLflow Run) continues that earlier run (a resumed training) instead. Tagged `stage` so sweeps can find
    it again, and with MLflow's context tags (user, source, git commit) as the fluent API would. It ends
    FINISHED; FAILED on an error (re-raised); KILLED when interrupted (a signal, Ctrl-C)."""
    client = tracking.client()
    if reopen:
        run_id = reopen.info.run_id
        client.update_run(run_id, status=RunStatus.to_string(RunStatus.RUNNING))
        if parent:  # resumed by a later sweep: it stays under its own, and says that this one used it too
            record_use(client, reopen, parent)
    elif parent is None and tracking.launched_run:
        run_id = tracking.launched_run
        client.update_run(run_id, name=run_name)
    else:
        # Created with its stage and a heartbeat at once: an interrupt right after leaves a run that the
        # next entry point finds dead, never one that looks alive for ever.
        tags = resolve_tags({"mlflow.parentRunId": parent} if parent else {}) | {"stage": stage}
        tags["heartbeat"] = heartbeat()
        if parent:  # which sweep (or run) it belongs to, in its name: train-m16 [1f0c2a]
            run_name = f"{run_name} [{short_id(parent)}]"
        run_id = client.create_run(tracking.experiment_id, run_name=run_name, tags=tags).info.run_id
    run = Run(tracking, run_id)
    if reopen or parent is None and tracking.launched_run:
        run.set_tag("stage", stage)
    try:
        with heartbeats(run):
            yield run
            run.completed = True
    except BaseException as error:
        if run.completed:  # interrupted (or failing) after its work was done: a registered model, the block
            _ended(client, run_id, RunStatus.FINISHED)
        elif isinstance(error, KeyboardInterrupt | TrainingInterrupted):
            _ended(client, run_id, RunStatus.KILLED, str(error) or "interrupted")
        else:
            _ended(client, run_id, RunStatus.FAILED, reason(error))
        raise
    _ended(client, run_id, RunStatus.FINISHED, raising=True)


def _ended(client, run_id, status, why=None, *, raising=False):
    """Mark the run `status` (with the tag REASON_TAG = `why`, if given), uninterrupted by a signal. An
    error of the store is raised only when `raising`: on the way out of an error, the error being raised
    matters more (a run left RUNNING is found dead later)."""
    with shutdown.masked():
        if why is not None:
            with contextlib.suppress(Exception):
                client.set_tag(run_id, REASON_TAG, why[:5000])
        try:
            client.set_terminated(run_id, RunStatus.to_string(status))
        except Exception:
            if raising:
                raise


def reason(error):
    """Why `error` ended a run, in one line: a user's bad value as its message, anything else with its type."""
    if isinstance(error, click.ClickException):
        return first_line(error.format_message())
    return f"{type(error).__name__}: {first_line(error)}"


def record_use(client, run, sweep):
    """Record that the sweep run `sweep` uses `run` (an MLflow Run, as searched: its tags are read from it),
    reused or resumed: its tag `sweeps` lists every sweep that used it, oldest first. The run stays nested
    under the sweep that made it, which keeps all its children; the new sweep links it in its description.
    (Two sweeps recording one run at the same moment may each miss the other in `sweeps`; the last wins.)"""
    tags = run.data.tags
    earlier = (tags.get("sweeps") or tags.get("mlflow.parentRunId") or "").split(",")
    client.set_tag(run.info.run_id, "sweeps", ",".join(dict.fromkeys(s for s in [*earlier, sweep] if s)))


def short_id(run_id):
    return run_id[:6]  # how names and descriptions say which sweep a run belongs to


@contextlib.contextmanager
def local_copy(uri, *, name, given=None):
    """A local path for the value of parameter `name`: a plain path as is, or a `runs:/`, `models:/`,
    ... URI downloaded to a temporary folder that is removed afterwards. Errors name `given` (the value
    the user gave, when `uri` was made from it) or `uri`."""
    if "://" not in uri and not uri.startswith(("runs:/", "models:/")):
        path = Path(uri).expanduser()
        if not path.exists():
            raise InputError(f"{name}={uri!r} does not exist")
        yield path
        return
    folder = tempfile.mkdtemp(prefix="icl-download-")
    try:
        try:
            with shutdown.atomic():  # it reads the store: a signal waits for the download
                path = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=folder)
        except Exception as error:  # MLflow raises several types for a missing run or artifact
            raise InputError(f"{name}={given or uri!r} cannot be downloaded: {first_line(error)}") from None
        yield Path(path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def first_line(error):
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
