"""Entry point: score a registered transformer on prompts, against ridge and dMMSE.

Prompts are an .npz of xs (N, K, D) and ys (N, K) (ws (N, D) optional: it adds loss against the
noiseless targets), or sequences freshly sampled from a pool's distribution (`kind`: pretrain draws
pool tasks, true draws fresh tasks). Reports the transformer's loss/D and its Delta to ridge and, with
a finite pool, to dMMSE; the same numbers are logged to an MLflow run, predictions as an artifact.
"""

import math
import tempfile
import zipfile
from pathlib import Path

import click
import numpy as np

from pipeline.bounds import check_evaluation
from pipeline.cli import EntryCommand, entry_point, open_pool, options
from pipeline.evaluation import build_eval_sets, estimator_predictions, score, transformer_predictions
from pipeline.settings import PredictSettings, build, flat, option_names
from pipeline.tracking.curves import log_pool_size
from pipeline.tracking.registry import load_registered
from pipeline.tracking.runs import first_line, tracked_run
from pipeline.types import InputError
from tasks import EvalSet, make_pool


def predict(tracking, settings):
    """Run predict with PredictSettings `settings`; returns {metric: mean over positions}."""
    if not settings.model:
        raise InputError("model is required: pass models:/<name>@<alias>")
    model = load_registered(settings.model)
    pool = open_pool(settings.pool, model.config.n_dims) if settings.pool else None
    prompts = _prompts(settings, pool, model.config.n_dims, model.config.n_points)
    if prompts.xs.shape[1] > model.config.n_points:
        raise InputError(
            f"prompts of K={prompts.xs.shape[1]} exceed the model's context of {model.config.n_points} points"
        )
    # Without a pool, the prior is the Gaussian one (task_scale 1): ridge only, as at M = inf.
    prior = pool if pool is not None else make_pool(math.inf, model.config.n_dims, seed=0, task_scale=1.0)
    with tracked_run(tracking, "predict", "predict") as run:
        run.log_params(flat(settings))
        if pool is not None:
            log_pool_size(run, pool.n_tasks)
        preds = estimator_predictions(prior, prompts, settings.evaluation.noise_scale)
        preds["pt"] = transformer_predictions(model, prompts, device="cpu")
        results = {key: float(curve.mean()) for key, curve in score(settings.kind, prompts, preds).items()}
        run.log_metrics(results)
        with tempfile.TemporaryDirectory() as folder:
            np.savez(Path(folder, "predictions.npz"), **preds)
            run.log_artifact(Path(folder, "predictions.npz"))
        click.echo(f"{settings.model} on {len(prompts.xs)} prompts of K={prompts.xs.shape[1]} (run {run.id}):")
        for key, value in results.items():
            click.echo(f"  {key:28s} {value:.4f}")
    return results


def _prompts(settings, pool, n_dims, context):
    if settings.prompts:
        xs, ws, ys = _load_prompts(settings.prompts)
        if xs.ndim != 3 or xs.shape[2] != n_dims or ys.shape != xs.shape[:2]:
            raise InputError(
                f"prompts={settings.prompts!r} need xs (N, K, {n_dims}) and ys (N, K), got {xs.shape} and {ys.shape}"
            )
        if not xs.shape[0] or not xs.shape[1]:
            raise InputError(f"prompts={settings.prompts!r} hold no sequence to predict: xs has shape {xs.shape}")
        if ws is not None and ws.shape != (len(xs), n_dims):
            raise InputError(f"prompts={settings.prompts!r} need ws (N, {n_dims}), got {ws.shape}")
        if not all(np.isfinite(a).all() for a in (xs, ys, ws) if a is not None):
            raise InputError(f"prompts={settings.prompts!r} hold NaN or infinite values")
        return EvalSet(xs, ws, ys)
    if pool is None:
        raise InputError("predict needs prompts (an .npz of xs, ys) or a pool to sample them from")
    if settings.evaluation.n_points > context:
        raise InputError(f"n_points={settings.evaluation.n_points} exceeds the model's context of {context} points")
    check_evaluation(settings.evaluation, pool.n_dims)
    eval_sets = build_eval_sets(pool, settings.evaluation)
    if settings.kind not in eval_sets:
        raise InputError(f"kind={settings.kind!r} needs a finite pool, got n_tasks={pool.n_tasks}")
    return eval_sets[settings.kind]


def _load_prompts(path):
    """(xs, ws or None, ys) as float32 from an .npz file the user named."""
    try:
        with np.load(path, allow_pickle=False) as data:
            if "xs" not in data or "ys" not in data:
                raise InputError(f"prompts={path!r} must hold arrays xs and ys, found {sorted(data)}")
            ws = data["ws"].astype(np.float32) if "ws" in data else None
            return data["xs"].astype(np.float32), ws, data["ys"].astype(np.float32)
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise InputError(f"prompts={path!r} is not a readable .npz of arrays ({first_line(error)})") from None


@click.command(cls=EntryCommand, help="Score a registered transformer on prompts against ridge and dMMSE.")
@options(*option_names(PredictSettings))
@entry_point
def main(tracking, **params):
    predict(tracking, build(PredictSettings, params))


if __name__ == "__main__":
    main()
