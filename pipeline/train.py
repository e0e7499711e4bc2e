"""Entry point: pretrain the transformer on a task pool, evaluating along the way, and register it.

Logs the training loss, and every `eval_every` steps (with step=) loss/D and Delta_{PT,Ridge},
Delta_{PT,dMMSE} on T_Pretrain and T_True, using the eval sets and estimator predictions of an
evaluate_baselines run when `baselines` is given (else computing them here); a checkpoint
(checkpoints/last.pt: weights, optimiser, step); n_params; the final model, registered with an alias
for its pool size. A run that fails registers nothing.
"""

import json
import math
import sys
import tempfile
import time
from pathlib import Path

import click
import mlflow
import numpy as np
import torch

from models import SCHEDULES, ModelConfig, build_model, make_optimizer, train_step
from pipeline.cli import EntryCommand, entry_point, open_pool, pool_label
from pipeline.evaluation import (
    EVAL_KEYS,
    build_eval_sets,
    estimator_predictions,
    log_curves,
    score,
    transformer_predictions,
)
from pipeline.figures import per_position_figure
from pipeline.options import option, options
from pipeline.registry import log_and_register
from pipeline.tracking import local_copy, log_params_once, tracked_run
from tasks import BatchSpec, EvalSet, sample_batch

LOSS_EVERY = 50  # steps between training-loss points (each costs a device sync)


def train(params, *, on_eval=None, label=""):
    """Run train with `params`; returns the run id.

    `on_eval()` is called at each evaluation (sweeps rebalance threads there); `label` prefixes the
    progress lines, which replace the live status line when set (several trainings share a terminal).
    """
    pool = open_pool(params["pool"], params["n_dims"])
    if params["warmup_steps"] >= params["total_steps"]:
        raise ValueError(f"warmup_steps={params['warmup_steps']} must be below total_steps={params['total_steps']}")
    device = _device(params["device"])
    with tracked_run(f"train-{pool_label(pool.n_tasks)}", "train") as run:
        log_params_once(params | {"n_tasks": pool.n_tasks, "task_scale": pool.task_scale})
        mlflow.set_tag("pool_sha256", pool.digest)
        evaluation = _evaluation(params, pool)
        config = ModelConfig(
            params["n_dims"], params["n_points"], params["n_layer"], params["n_embd"], params["n_head"]
        )
        model = build_model(config, seed=params["model_seed"], device=device)
        n_params = sum(p.numel() for p in model.parameters())
        log_params_once({"n_params": n_params})
        click.echo(f"training {n_params:,} parameters on {device} for {params['total_steps']} steps, M={pool.n_tasks}")
        progress = Progress(params["total_steps"], label)
        curves = _train_loop(model, params, pool, evaluation, device, progress, on_eval)
        mlflow.log_figure(
            per_position_figure(curves, list(evaluation), f"M = {pool.n_tasks}"), "figures/per_position.png"
        )
        version = log_and_register(model, params, pool)
        click.echo(
            f"registered models:/{params['model_name']}/{version} as "
            f"models:/{params['model_name']}@{pool_label(pool.n_tasks)}"
        )
    return run.info.run_id


def _train_loop(model, params, pool, evaluation, device, progress, on_eval):
    """Train for total_steps; returns the metric curves of the final evaluation."""
    spec = BatchSpec(
        params["batch_size"],
        params["n_points"],
        params["n_dims"],
        params["noise_scale"],
        params["data_scale"],
        pool.task_scale,
        params["data_seed"],
        params["task_seed"],
        params["noise_seed"],
    )
    pool_tensor = None if pool.tasks is None else torch.from_numpy(pool.tasks).to(device)
    optimizer = make_optimizer(model, lr=params["lr"], weight_decay=params["weight_decay"])
    schedule = SCHEDULES[params["schedule"]]
    total = params["total_steps"]
    running = torch.zeros((), device=device)
    for step in range(total):
        lr = schedule(step, lr=params["lr"], warmup_steps=params["warmup_steps"], total_steps=total)
        xs, _, ys = sample_batch(spec, step, pool=pool_tensor, device=device)
        running += train_step(model, optimizer, xs, ys, lr)
        done = step + 1
        if done % LOSS_EVERY == 0 or done == total:
            loss = running.item() / (done % LOSS_EVERY or LOSS_EVERY)
            running.zero_()
            if not math.isfinite(loss):
                raise ValueError(f"training diverged at step {done}: loss={loss}; lower lr (lr={params['lr']})")
            mlflow.log_metrics({"train/loss": loss, "train/lr": lr}, step=done)
            progress.update(done, loss)
        if done % params["eval_every"] == 0 or done == total:
            curves = _evaluate(model, evaluation, device)
            log_curves(curves, step=done, by_position=done == total)
            _save_checkpoint(model, optimizer, done)
            progress.report(done, curves)
            if on_eval is not None:
                on_eval()
    progress.close()
    return curves


def _evaluate(model, evaluation, device):
    curves = {}
    for dist, (eval_set, preds) in evaluation.items():
        pt = transformer_predictions(model, eval_set, device=device)
        curves |= score(dist, eval_set, {**preds, "pt": pt})
    return curves


def _save_checkpoint(model, optimizer, step):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder, "last.pt")
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step}, path)
        mlflow.log_artifact(str(path), artifact_path="checkpoints")


def _evaluation(params, pool):
    """{dist: (eval set, estimator predictions)}: cached from a baselines run, or computed now."""
    if not params["baselines"]:
        eval_sets = build_eval_sets(pool, params)
        return {d: (s, estimator_predictions(pool, s, params["noise_scale"])) for d, s in eval_sets.items()}
    uri = params["baselines"].rstrip("/")
    uri = uri if uri.endswith("/eval") else f"{uri}/eval"
    with local_copy(uri, name="baselines") as folder:
        record = json.loads(Path(folder, "settings.json").read_text())
        if record["pool_sha256"] != pool.digest:
            raise ValueError(
                f"baselines={params['baselines']!r} was computed on another pool "
                f"(sha256 {record['pool_sha256'][:12]}... != {pool.digest[:12]}...)"
            )
        for key in EVAL_KEYS:
            if record[key] != params[key]:
                raise ValueError(f"baselines={params['baselines']!r} used {key}={record[key]} but {key}={params[key]}")
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
            raise ValueError(f"device={name!r} but CUDA is not available here")
        # Full float32 matmuls: the transformer is compared with float64 estimators.
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    return torch.device(name)


class Progress:
    """A live status line on a terminal; on a pipe or log file, one line per evaluation instead."""

    def __init__(self, total, label=""):
        self.total, self.start, self.label = total, time.perf_counter(), label
        self.live, self.last_draw = sys.stdout.isatty() and not label, 0.0

    def rate(self, step):
        return step / max(time.perf_counter() - self.start, 1e-9)

    def update(self, step, loss):
        now = time.perf_counter()
        if self.live and (now - self.last_draw > 0.5 or step == self.total):
            self.last_draw = now
            bar = "#" * int(30 * step / self.total)
            sys.stdout.write(f"\r[{bar:30s}] {step}/{self.total} {self.rate(step):.1f} steps/s loss {loss:.4f}")
            sys.stdout.flush()

    def report(self, step, curves):
        if self.live:
            return
        parts = [
            f"{key} {curves[key].mean():.4f}"
            for key in sorted(curves)
            if key.endswith("/pt/loss_noiseless") or "delta_pt" in key
        ]
        click.echo(f"{self.label}step {step}/{self.total} ({self.rate(step):.1f} steps/s): " + ", ".join(parts))

    def close(self):
        if self.live:
            sys.stdout.write("\n")


@click.command(
    cls=EntryCommand,
    help="Pretrain the in-context regression transformer on a task pool (paper Sec. 2) and register it.",
)
@option("pool")
@option(
    "baselines",
    type=click.STRING,
    default="",
    help="optional runs:/<run_id> of an evaluate_baselines run on this pool: its eval sets and cached "
    "ridge/dMMSE predictions are reused.",
)
@options(
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
def main(**params):
    train(params)


if __name__ == "__main__":
    main()
