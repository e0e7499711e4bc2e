"""Runs that survive: checkpoints uploaded safely and checked on reading, dead runs recognised, trainings
resumed.

- A training's checkpoint goes to one of two artifact slots (checkpoints/a/last.pt, checkpoints/b/last.pt),
  alternately; the tag `checkpoint` ("<slot path>@<step>") is set only once an upload is complete, so a
  kill during an upload leaves the tagged checkpoint intact. Each carries the digest of its contents
  (models/checkpoint.py); a resume that finds the tagged one damaged says so and takes the other slot's.
- Every run's tag `heartbeat` ({"host", "pid", "time", "limit"}, and "task", "node" under executor=ray;
  pipeline/tracking/runs.py) is refreshed while it runs. A RUNNING run whose heartbeat is older than its limit,
  whose process is gone (same host, no such pid) or whose Ray task runs again (its earlier attempt died)
  is dead: the next entry point on the store, or that retry, marks it FAILED with the tag `died`.
- Rerunning a training with the same params continues the newest train run with those params when it
  ended FAILED or KILLED with a checkpoint, in the same run id, unless it failed for a reason a rerun
  cannot change (tag `resumable` = false: divergence, a model no better than predicting 0). A checkpoint
  of an evaluation's step evaluates again first (a stop may have cut it short); one of the last step (a
  run stopped during its final evaluation or registration) resumes into those.
"""

import click
from mlflow.entities import RunStatus

from models import DamagedCheckpoint, Hook, load_checkpoint
from pipeline.settings import same_params
from pipeline.tracking.heartbeats import ago, is_alive
from pipeline.tracking.runs import REASON_TAG, local_copy
from pipeline.types import InputError

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
        client.set_tag(run.info.run_id, REASON_TAG, f"died: its process stopped without a word ({ago(beat)})")
        client.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.FAILED))
    return [run.info.run_id for run in dead]


def resumable_run(tracking, params, total_steps):
    """The train run with `params` that a rerun continues, or None: the newest train run with these params,
    when it ended FAILED or KILLED with a checkpoint (one of step total_steps, written before the run ended,
    resumes into the final evaluation and registration) and did not fail for a reason a rerun cannot
    change (tag `resumable` = false). Only the newest counts: an older attempt was superseded by it (a new
    run starts only when nothing was resumable, or with `--resume never`). Dead RUNNING runs were marked
    FAILED when the entry point started (cli.entry_point)."""
    query = "tags.stage = 'train'"
    if "'" not in params["model_name"]:  # fewer runs to fetch and compare (MLflow returns 1000 at most)
        query += f" and params.model_name = '{params['model_name']}'"
    runs = tracking.client().search_runs([tracking.experiment_id], query, order_by=["attributes.start_time DESC"])
    run = next((run for run in runs if same_params(run.data.params, params)), None)
    if run is None or run.info.status not in ("FAILED", "KILLED") or "checkpoint" not in run.data.tags:
        return None
    if run.data.tags.get("resumable") == "false" or checkpoint_step(run.data.tags["checkpoint"]) > total_steps:
        return None
    return run


def restored_checkpoint(run, device):
    """(state, tag) of the newest good checkpoint of `run` (an MLflow Run with the tag `checkpoint`): the
    tagged slot's, or the other slot's (one evaluation older) when that one is damaged or missing, each
    failure said in one line; `tag` names the checkpoint used, as the tag `checkpoint` does. InputError
    when neither slot holds a good one: the run is left as it was, and only `--resume never` (a training
    from step 0, in a new run) goes past it."""
    tagged = run.data.tags["checkpoint"].rsplit("@", 1)[0]
    other = next(slot for slot in SLOTS if not tagged.startswith(slot))
    problems = []
    for path in (tagged, f"{other}/last.pt"):
        try:
            with local_copy(f"runs:/{run.info.run_id}/{path}", name="checkpoint") as file:
                state = load_checkpoint(file, device)
        except (InputError, DamagedCheckpoint) as error:
            problem = f"{path} is missing" if isinstance(error, InputError) else f"{path} is {error.reason}"
            click.echo(f"{run.info.run_name} ({run.info.run_id}): checkpoint {problem}", err=True)
            problems.append(problem)
            continue
        return state, f"{path}@{state['step']}"
    raise InputError(
        f"{run.info.run_name} ({run.info.run_id}) has no good checkpoint to resume from ({'; '.join(problems)}): "
        "rerun with --resume never (-P resume=never) to train from step 0 in a new run"
    )


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
