"""Entry point: score ridge, dMMSE and optionally a trained transformer on fixed T_Pretrain / T_True sets
(and, with smoothed_held_out > 0, smoothed dMMSE at the s that is best on held-out fresh-task sequences).

Logs the eval sets and every estimator's predictions (eval/, and as dataset inputs), loss/D and Delta
averaged over positions (metrics; see pipeline/evaluation.py for the keys), per position (a table and a
figure), and log2_n_tasks. `train` reuses the cached eval sets and predictions through this run's URI,
which it prints last.
"""

import dataclasses
import tempfile
import time

import click

from pipeline.bounds import check_evaluation
from pipeline.cli import EntryCommand, entry_point, open_pool, options
from pipeline.evaluation import (
    EVAL_SEEDS,
    build_eval_sets,
    check_smoothed_seed,
    choose_smoothing,
    estimator_predictions,
    score,
    transformer_predictions,
)
from pipeline.figures import per_position_figure
from pipeline.settings import BaselinesSettings, build, flat, option_names
from pipeline.tracking.curves import log_curves, log_pool_size, log_position_table
from pipeline.tracking.datasets import log_eval_datasets
from pipeline.tracking.eval_cache import save_eval_sets
from pipeline.tracking.registry import load_registered
from pipeline.tracking.runs import tracked_run
from pipeline.types import InputError, pool_label


def evaluate_baselines(tracking, settings, *, parent=None, label=None):
    """Run evaluate_baselines with BaselinesSettings `settings`; returns the run id."""
    evaluation = settings.evaluation
    check_evaluation(evaluation, settings.n_dims)
    if settings.smoothed_held_out:
        check_smoothed_seed(evaluation, settings.smoothed_seed)
    pool = open_pool(settings.pool, settings.n_dims)
    transformer = load_registered(settings.model) if settings.model else None
    if transformer is not None and transformer.config.n_points < evaluation.n_points:
        raise InputError(
            f"n_points={evaluation.n_points} exceeds the model's context of {transformer.config.n_points} points"
        )
    name = f"baselines-{label or pool_label(pool.n_tasks)}"
    with tracked_run(tracking, name, "evaluate_baselines", parent) as run:
        run.log_params(flat(settings) | {"n_tasks": pool.n_tasks})
        run.set_tag("pool_sha256", pool.digest)
        log_pool_size(run, pool.n_tasks)
        run.set_description(
            f"Ridge and dMMSE (and a `model`, if given) on fixed T_Pretrain / T_True eval sets of the pool "
            f"{run.link(settings.pool)}. Train runs given `baselines=runs:/{run.id}` reuse these eval sets and "
            "predictions (eval/), and leave the estimators' numbers here."
        )
        eval_sets = build_eval_sets(pool, evaluation)
        smoothing = None
        if settings.smoothed_held_out and pool.tasks is not None:
            start = time.perf_counter()
            seeds = dict.fromkeys(EVAL_SEEDS, settings.smoothed_seed)
            held_out = dataclasses.replace(evaluation, n_eval=settings.smoothed_held_out, **seeds)
            smoothing, tuned = choose_smoothing(pool, held_out)
            run.log_metrics({"smoothed_dmmse/smoothing": smoothing, "smoothed_dmmse/held_out_loss": tuned})
            click.echo(
                f"smoothed dMMSE: s = {smoothing:.4g} (loss/D {tuned:.4f} on {settings.smoothed_held_out} held-out "
                f"sequences), chosen in {time.perf_counter() - start:.1f} s"
            )
        preds, curves, start = {}, {}, time.perf_counter()
        for dist, eval_set in eval_sets.items():
            preds[dist] = estimator_predictions(pool, eval_set, evaluation.noise_scale, smoothing=smoothing)
            if transformer is not None:
                preds[dist]["pt"] = transformer_predictions(transformer, eval_set, device="cpu")
            curves |= score(dist, eval_set, preds[dist])
        log_curves(run, curves)
        log_position_table(run, curves)
        log_eval_datasets(run, eval_sets, pool_label(pool.n_tasks))
        with tempfile.TemporaryDirectory() as folder:
            save_eval_sets(folder, eval_sets, preds, evaluation, pool)
            run.log_artifacts(folder, "eval")
        run.log_figure(per_position_figure(curves, list(eval_sets), f"M = {pool.n_tasks}"), "figures/per_position.png")
        seconds = time.perf_counter() - start
        sizes = "/".join(str(len(e.xs)) for e in eval_sets.values())
        if parent is not None:  # in a sweep: one line per point
            ridge, dmmse = (curves.get(f"true/{name}/loss_noiseless") for name in ("ridge", "dmmse"))
            found = f"ridge {ridge.mean():.4f}" + (f", dMMSE {dmmse.mean():.4f}" if dmmse is not None else "")
            click.echo(
                f"[{name.removeprefix('baselines-')}] baselines on {sizes} sequences in {seconds:.1f} s: "
                f"T_True loss/D {found}"
            )
            return run.id
        click.echo(f"estimators on {sizes} sequences ({', '.join(eval_sets)}), M={pool.n_tasks}: {seconds:.1f} s")
        for key in sorted(k for k in curves if "delta" in k or "loss_noiseless" in k):
            click.echo(f"  {key:32s} {curves[key].mean():.4f}")
    click.echo(f"baselines: runs:/{run.id}  (train reuses its eval sets and predictions: -P baselines=runs:/{run.id})")
    return run.id


@click.command(
    cls=EntryCommand, help="Score ridge, dMMSE (and a trained transformer) on fixed T_Pretrain and T_True sets."
)
@options(*option_names(BaselinesSettings))
@entry_point
def main(tracking, **params):
    evaluate_baselines(tracking, build(BaselinesSettings, params))


if __name__ == "__main__":
    main()
