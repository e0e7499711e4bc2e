"""Runs that survive: checkpoints uploaded safely, heartbeats, dead runs recognised, trainings resumed.

- A training's checkpoint goes to one of two artifact slots (checkpoints/a/last.pt, checkpoints/b/last.pt),
  alternately; the tag `checkpoint` ("<slot path>@<step>") is set only once an upload is complete, so a
  kill during an upload leaves the tagged checkpoint intact.
- Every run's tag `heartbeat` ({"host", "pid", "time"}, and "task" under executor=ray;
  pipeline/tracking.py) is refreshed while it runs. A RUNNING run whose process is gone (same host, no
  such pid), whose heartbeat is stale (another host) or whose Ray task runs again (its earlier attempt
  died) is dead: the next entry point on the store, or that retry, marks it FAILED with the tag `died`.
- Rerunning a training with the same params continues the newest FAILED or KILLED train run with those
  params that has a checkpoint, in the same run id, unless it failed for a reason a rerun cannot change
  (tag `resumable` = false: divergence, a model no better than predicting 0).
"""

import contextlib
import multiprocessing
import os
import signal
import threading

from mlflow.entities import RunStatus

from models import Hook
from pipeline.settings import same_params
from pipeline.tracking import is_alive

SLOTS = ("checkpoints/a", "checkpoints/b")


def mark_dead_runs(tracking, task=None):
    """Mark FAILED (tag `died`) every RUNNING run of the experiment whose process is gone, or that an
    earlier attempt of executor task `task` left (tracking.is_alive); returns their ids."""
    client = tracking.client()
    running = client.search_runs([tracking.experiment_id], "attributes.status = 'RUNNING'")
    dead = [run for run in running if not is_alive(run, task)]
    for run in dead:
        beat = run.data.tags["heartbeat"]
        client.set_tag(run.info.run_id, "died", f"its process stopped without a word (last heartbeat {beat})")
        client.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.FAILED))
    return [run.info.run_id for run in dead]


def resumable_run(tracking, params, total_steps):
    """The newest FAILED or KILLED train run with `params` and a checkpoint before `total_steps`, or None
    (dead RUNNING runs were marked FAILED when the entry point started: cli.entry_point)."""
    runs = tracking.client().search_runs(
        [tracking.experiment_id],
        "tags.stage = 'train' and attributes.status != 'FINISHED'",
        order_by=["attributes.start_time DESC"],
    )
    for run in runs:
        tags = run.data.tags
        if run.info.status not in ("FAILED", "KILLED") or "checkpoint" not in tags or tags.get("resumable") == "false":
            continue
        if checkpoint_step(tags["checkpoint"]) < total_steps and same_params(run.data.params, params):
            return run
    return None


def last_logged_steps(run):
    """{metric key: the last step logged} on a `Run` being resumed."""
    history = run.client.get_metric_history
    return {key: max(m.step for m in history(run.id, key)) for key in run.client.get_run(run.id).data.metrics}


def checkpoint_step(tag):
    return int(tag.rsplit("@", 1)[1])


class CheckpointUpload(Hook):
    """Each checkpoint uploaded to the slot not holding the last complete one, then tagged `checkpoint`."""

    def __init__(self, run, checkpoint_tag=None):
        self.run, self.tag = run, checkpoint_tag

    def on_checkpoint(self, step, path):
        slot = SLOTS[1] if self.tag and self.tag.startswith(SLOTS[0]) else SLOTS[0]
        self.run.log_artifact(path, slot)
        self.tag = f"{slot}/last.pt@{step}"
        self.run.set_tag("checkpoint", self.tag)


class StopRequest:
    """Set by SIGTERM or SIGINT while installed (`stop_on_signals`): a training loop asks it after every
    step, checkpoints and stops. With `forward` (a sweep's main process), the signal goes on to the
    worker processes, whose trainings stop that way; with no worker running, it interrupts at once
    (KeyboardInterrupt: the run ends KILLED)."""

    def __init__(self, forward):
        self.signal, self.forward = None, forward

    def __call__(self):
        return self.signal is not None

    def handle(self, signum, frame):
        self.signal = signum
        if not self.forward:
            return
        children = multiprocessing.active_children()
        if not children:
            raise KeyboardInterrupt
        for child in children:
            os.kill(child.pid, signum)


@contextlib.contextmanager
def stop_on_signals(forward=False):
    """A StopRequest that SIGTERM and SIGINT set instead of killing the process (only in the main thread,
    where Python delivers signals); the previous handlers come back afterwards."""
    request = StopRequest(forward)
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    previous = {signum: signal.signal(signum, request.handle) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield request
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
