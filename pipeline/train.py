"""Entry point: pretrain the transformer on a task pool, evaluating along the way, and register it.

The loop itself is `models.train` (MLflow-free); this module wires the data in (batches from `tasks`,
a pure function of the step), scores against the estimators, and attaches tracking to the loop's
hooks: the training loss, and every `eval_every` steps (with step=) loss/D and Delta_{PT,Ridge},
Delta_{PT,dMMSE} on T_Pretrain and T_True, using the eval sets and estimator predictions of an
evaluate_baselines run when `baselines` is given (else computing them here); a checkpoint
(checkpoints/last.pt: weights, optimiser, step, and the settings that rebuild model and data);
n_params; the final model, registered with an alias for its pool size. A run that fails registers
nothing.
"""

import json
import tempfile
from pathlib import Path

import click
import numpy as np
import torch

import models
from models import Checkpointing, Hook, Progress, TrainingDiverged, build_model, make_optimizer
from pipeline.cli import EntryCommand, entry_point, open_pool, options, pool_label
from pipeline.evaluation import build_eval_sets, estimator_predictions, log_curves, score, transformer_predictions
from pipeline.figures import per_position_figure
from pipeline.registry import log_and_register
from pipeline.settings import TrainSettings, build, flat
from pipeline.tracking import local_copy, tracked_run
from pipeline.types import InputError
from tasks import EvalSet, sample_batch


class TrackingHook(Hook):
    """The loop's reports, logged on `run`: loss and lr, eval curves (per position at the end), checkpoints."""

    def __init__(self, run, total_steps):
        self.run, self.total_steps = run, total_steps

    def on_log(self, step, scalars):
        self.run.log_metrics(scalars, step=step)

    def on_eval(self, step, curves):
        log_curves(self.run, curves, step=step, by_position=step == self.total_steps)

    def on_checkpoint(self, step, path):
        self.run.log_artifact(path, "checkpoints")


def train(tracking, settings, *, parent=None, label=None, hooks=()):
    """Train, evaluate and register the model of TrainSettings `settings`; returns the run id.

    `parent` nests the run under that run id; `label` names it (train-<label>) and prefixes its progress
    lines (several trainings share a terminal); `hooks` are extra loop hooks (models.Hook).
    """
    pool = open_pool(settings.pool, settings.data.n_dims)
    device = _device(settings.device)
    total = settings.optim.total_steps
    with tracked_run(tracking, f"train-{label or pool_label(pool.n_tasks)}", "train", parent) as run:
        run.log_params(flat(settings) | {"n_tasks": pool.n_tasks, "task_scale": pool.task_scale})
        run.set_tag("pool_sha256", pool.digest)
        evaluation = _evaluation(settings, pool)
        model = build_model(settings.arch, seed=settings.model_seed, device=device)
        n_params = sum(p.numel() for p in model.parameters())
        run.log_params({"n_params": n_params})
        click.echo(f"training {n_params:,} parameters on {device} for {total} steps, M={pool.n_tasks}")
        pool_tensor = None if pool.tasks is None else torch.from_numpy(pool.tasks).to(device)

        def batches(step):
            xs, _, ys = sample_batch(settings.data, step, pool=pool_tensor, task_scale=pool.task_scale, device=device)
            return xs, ys

        progress = Progress(total, f"[{label}] " if label else "")
        record = flat(settings) | {"n_tasks": pool.n_tasks, "task_scale": pool.task_scale, "pool_sha256": pool.digest}
        optimizer = make_optimizer(model, lr=settings.optim.lr, weight_decay=settings.optim.weight_decay)
        with tempfile.TemporaryDirectory() as folder:
            try:
                curves = models.train(
                    model,
                    optimizer,
                    settings.optim,
                    batches=batches,
                    evaluate=lambda m: _evaluate(m, evaluation, device),
                    eval_every=settings.eval_every,
                    hooks=[progress, TrackingHook(run, total), *hooks],
                    checkpointing=Checkpointing(Path(folder), record),
                )
            except TrainingDiverged as error:  # the learning rate the user chose is too high for this model
                raise InputError(str(error)) from None
        run.log_figure(per_position_figure(curves, list(evaluation), f"M = {pool.n_tasks}"), "figures/per_position.png")
        version = log_and_register(run, model, settings, pool)
        name = settings.model_name
        click.echo(f"registered models:/{name}/{version} as models:/{name}@{pool_label(pool.n_tasks)}")
    return run.id


def _evaluate(model, evaluation, device):
    curves = {}
    for dist, (eval_set, preds) in evaluation.items():
        pt = transformer_predictions(model, eval_set, device=device)
        curves |= score(dist, eval_set, {**preds, "pt": pt})
    return curves


def _evaluation(settings, pool):
    """{dist: (eval set, estimator predictions)}: cached from a baselines run, or computed now."""
    if not settings.baselines:
        eval_sets = build_eval_sets(pool, settings.evaluation)
        noise = settings.evaluation.noise_scale
        return {d: (s, estimator_predictions(pool, s, noise)) for d, s in eval_sets.items()}
    uri = settings.baselines.rstrip("/")
    uri = uri if uri.endswith("/eval") else f"{uri}/eval"
    with local_copy(uri, name="baselines") as folder:
        record = json.loads(Path(folder, "settings.json").read_text())
        if record["pool_sha256"] != pool.digest:
            raise InputError(
                f"baselines={settings.baselines!r} was computed on another pool "
                f"(sha256 {record['pool_sha256'][:12]}... != {pool.digest[:12]}...)"
            )
        for key, value in flat(settings.evaluation).items():
            if record[key] != value:
                raise InputError(f"baselines={settings.baselines!r} used {key}={record[key]} but {key}={value}")
        evaluation = {}
        for path in sorted(Path(folder).glob("*.npz")):
            with np.load(path) as data:
                preds = {name: data[name] for name in ("ridge", "dmmse") if name in data}
                evaluation[path.stem] = (EvalSet(data["xs"], data["ws"], data["ys"]), preds)
    return evaluation


def _device(name):
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InputError(f"device={name!r} but CUDA is not available here")
        # Full float32 matmuls: the transformer is compared with float64 estimators.
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    return torch.device(name)


@click.command(
    cls=EntryCommand,
    help="Pretrain the in-context regression transformer on a task pool (paper Sec. 2) and register it.",
)
@options(
    "pool",
    "baselines",
    "n_dims",
    "n_points",
    "noise_scale",
    "data_scale",
    "batch_size",
    "n_layer",
    "n_embd",
    "n_head",
    "lr",
    "schedule",
    "warmup_steps",
    "total_steps",
    "weight_decay",
    "data_seed",
    "task_seed",
    "noise_seed",
    "model_seed",
    "eval_every",
    "n_eval",
    "eval_data_seed",
    "eval_task_seed",
    "eval_noise_seed",
    "device",
    "model_name",
)
@entry_point
def main(tracking, **params):
    train(tracking, build(TrainSettings, params))


if __name__ == "__main__":
    main()
