"""Entry point: score a registered transformer on prompts, against ridge and dMMSE.

Prompts are an .npz of xs (N, K, D) and ys (N, K) (ws (N, D) optional: it adds loss against the
noiseless targets), or sequences freshly sampled from a pool's distribution (`kind`: pretrain draws
pool tasks, true draws fresh tasks). Reports the transformer's loss/D and its Delta to ridge and, with
a finite pool, to dMMSE; the same numbers are logged to an MLflow run, predictions as an artifact.
"""

import tempfile
from pathlib import Path

import click
import mlflow
import numpy as np

from pipeline.cli import EntryCommand, entry_point, open_pool
from pipeline.evaluation import build_eval_sets, estimator_predictions, score, transformer_predictions
from pipeline.options import option, options
from pipeline.registry import load_registered
from pipeline.tracking import log_params_once, tracked_run
from tasks import EvalSet, make_pool


def predict(params):
    """Run predict with `params`; returns {metric: mean over positions}."""
    model = load_registered(params["model"])
    pool = open_pool(params["pool"], model.config.n_dims) if params["pool"] else None
    prompts = _prompts(params, pool, model.config.n_dims)
    if prompts.xs.shape[1] > model.config.n_points:
        raise ValueError(
            f"n_points={prompts.xs.shape[1]} exceeds the model's context of {model.config.n_points} points"
        )
    # Without a pool, the prior is the Gaussian one (task_scale 1): ridge only, as at M = inf.
    prior = pool if pool is not None else make_pool("inf", model.config.n_dims, seed=0)
    with tracked_run("predict", "predict") as run:
        log_params_once(params)
        preds = estimator_predictions(prior, prompts, params["noise_scale"])
        preds["pt"] = transformer_predictions(model, prompts, device="cpu")
        results = {key: float(curve.mean()) for key, curve in score(params["kind"], prompts, preds).items()}
        mlflow.log_metrics(results)
        with tempfile.TemporaryDirectory() as folder:
            np.savez(Path(folder, "predictions.npz"), **preds)
            mlflow.log_artifact(str(Path(folder, "predictions.npz")))
        click.echo(
            f"{params['model']} on {len(prompts.xs)} prompts of K={prompts.xs.shape[1]} (run {run.info.run_id}):"
        )
        for key, value in results.items():
            click.echo(f"  {key:28s} {value:.4f}")
    return results


def _prompts(params, pool, n_dims):
    if params["prompts"]:
        with np.load(params["prompts"]) as data:
            if "xs" not in data or "ys" not in data:
                raise ValueError(f"prompts={params['prompts']!r} must hold arrays xs and ys, found {sorted(data)}")
            xs, ys = data["xs"].astype(np.float32), data["ys"].astype(np.float32)
            ws = data["ws"].astype(np.float32) if "ws" in data else None
        if xs.ndim != 3 or xs.shape[2] != n_dims or ys.shape != xs.shape[:2]:
            raise ValueError(
                f"prompts={params['prompts']!r} need xs (N, K, {n_dims}) and ys (N, K), got {xs.shape} and {ys.shape}"
            )
        return EvalSet(xs, ws, ys)
    if pool is None:
        raise ValueError("predict needs prompts (an .npz of xs, ys) or a pool to sample them from")
    eval_sets = build_eval_sets(pool, params)
    if params["kind"] not in eval_sets:
        raise ValueError(f"kind={params['kind']!r} needs a finite pool, got n_tasks={pool.n_tasks}")
    return eval_sets[params["kind"]]


@click.command(cls=EntryCommand, help="Score a registered transformer on prompts against ridge and dMMSE.")
@option(
    "model",
    type=click.STRING,
    default="",
    help="the model: models:/<name>@<alias>, models:/<name>/<version> or runs:/<run_id>/model.",
)
@option("prompts", type=click.STRING, default="", help="optional .npz with xs (N, K, D), ys (N, K) [, ws (N, D)].")
@option("pool", help="task pool (path or runs:/ URI): dMMSE's prior, and where prompts are sampled from if none given.")
@option(
    "kind",
    type=click.Choice(["true", "pretrain"]),
    default="true",
    help="which distribution to sample prompts from: true (fresh tasks, T_True) or pretrain (pool tasks).",
)
@options("n_points", "noise_scale", "data_scale", "n_eval", "eval_data_seed", "eval_task_seed", "eval_noise_seed")
@entry_point
def main(**params):
    if not params["model"]:
        raise ValueError("model is required: pass models:/<name>@<alias>")
    predict(params)


if __name__ == "__main__":
    main()
