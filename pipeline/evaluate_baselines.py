"""Entry point: score ridge, dMMSE and optionally a trained transformer on fixed T_Pretrain / T_True sets.

Logs the eval sets and every estimator's predictions (eval/), loss/D and Delta per position and
averaged (see pipeline/evaluation.py for the keys), and a per-position figure. `train` reuses the
cached eval sets and predictions through this run's URI.
"""

import tempfile
import time

import click
import mlflow

from pipeline.cli import EntryCommand, entry_point, open_pool, pool_label
from pipeline.evaluation import (
    build_eval_sets,
    estimator_predictions,
    log_curves,
    save_eval_sets,
    score,
    transformer_predictions,
)
from pipeline.figures import per_position_figure
from pipeline.options import option, options
from pipeline.registry import load_registered
from pipeline.tracking import log_params_once, tracked_run


def evaluate_baselines(params):
    """Run evaluate_baselines with `params`; returns the run id."""
    pool = open_pool(params["pool"], params["n_dims"])
    transformer = load_registered(params["model"]) if params["model"] else None
    if transformer is not None and transformer.config.n_points < params["n_points"]:
        raise ValueError(
            f"n_points={params['n_points']} exceeds the model's context of {transformer.config.n_points} points"
        )
    with tracked_run(f"baselines-{pool_label(pool.n_tasks)}", "evaluate_baselines") as run:
        log_params_once(params | {"n_tasks": pool.n_tasks})
        mlflow.set_tag("pool_sha256", pool.digest)
        eval_sets = build_eval_sets(pool, params)
        preds, curves = {}, {}
        for dist, eval_set in eval_sets.items():
            start = time.perf_counter()
            preds[dist] = estimator_predictions(pool, eval_set, params["noise_scale"])
            click.echo(
                f"{dist}: estimators on {len(eval_set.xs)} sequences, M={pool.n_tasks}: "
                f"{time.perf_counter() - start:.1f} s"
            )
            if transformer is not None:
                preds[dist]["pt"] = transformer_predictions(transformer, eval_set, device="cpu")
            curves |= score(dist, eval_set, preds[dist])
        log_curves(curves)
        with tempfile.TemporaryDirectory() as folder:
            save_eval_sets(folder, eval_sets, preds, params, pool)
            mlflow.log_artifacts(folder, artifact_path="eval")
        figure = per_position_figure(curves, list(eval_sets), f"M = {pool.n_tasks}")
        mlflow.log_figure(figure, "figures/per_position.png")
        for key in sorted(k for k in curves if "delta" in k or "loss_noiseless" in k):
            click.echo(f"  {key:32s} {curves[key].mean():.4f}")
    return run.info.run_id


@click.command(
    cls=EntryCommand, help="Score ridge, dMMSE (and a trained transformer) on fixed T_Pretrain and T_True sets."
)
@option("pool")
@options(
    "n_dims", "n_points", "noise_scale", "data_scale", "n_eval", "eval_data_seed", "eval_task_seed", "eval_noise_seed"
)
@option(
    "model",
    type=click.STRING,
    default="",
    help="optional trained transformer to score too: models:/<name>@<alias> or runs:/<run_id>/model.",
)
@entry_point
def main(**params):
    evaluate_baselines(params)


if __name__ == "__main__":
    main()
