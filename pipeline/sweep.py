"""Sweep orchestration: one chain generate_pool -> evaluate_baselines -> train per (M, data scale).

- Reuse: before running a stage, a FINISHED run of the same stage whose params equal the wanted ones
  (compared after typing each value with the stage's click option, so "1e-3" equals "0.001") is
  reused, so rerunning a sweep finishes only what is missing.
- Parallel: with workers > 1, chains run in separate processes, nested under the sweep's run. Each
  training uses cores / (chains running) threads, rebalanced at every evaluation: small models train
  faster as two single-thread processes than as one two-thread process (PAPER.md cost facts).
"""

import math
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

import click
import torch
from mlflow.tracking import MlflowClient

from pipeline import evaluate_baselines, generate_pool, train
from pipeline.cli import pool_label
from pipeline.generate_pool import POOL_ARTIFACT
from pipeline.tracking import nest_under, setup_tracking

STAGES = {"generate_pool": generate_pool, "evaluate_baselines": evaluate_baselines, "train": train}


def stage_params(stage, settings, **extra):
    """The subset of `settings` that a stage's click command declares, plus `extra`."""
    names = {p.name for p in STAGES[stage].main.params}
    return {key: value for key, value in settings.items() if key in names} | extra


def same_params(stage, logged, wanted):
    """Whether logged (text) params equal `wanted`, each compared as its click option types it."""
    for option in STAGES[stage].main.params:
        if option.name not in wanted:
            continue
        if option.name not in logged:
            return False
        try:
            if option.type.convert(logged[option.name], option, None) != option.type.convert(
                wanted[option.name], option, None
            ):
                return False
        except click.BadParameter:
            return False
    return True


def finished_run(stage, params):
    """The newest FINISHED run of `stage` with these params and only finite metrics in the active
    experiment, or None (a run whose metrics hold NaN is recomputed, not trusted)."""
    runs = MlflowClient().search_runs(
        [_experiment_id()],
        f"tags.stage = '{stage}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
    )
    return next(
        (
            run
            for run in runs
            if same_params(stage, run.data.params, params)
            and all(math.isfinite(value) for value in run.data.metrics.values())
        ),
        None,
    )


def _experiment_id():
    from mlflow.tracking.fluent import _get_experiment_id

    return _get_experiment_id()


def run_stage(stage, params, **kwargs):
    """Reuse a finished run of `stage` with `params`, or run it (with `kwargs`); returns the run id."""
    previous = finished_run(stage, params)
    if previous is not None:
        click.echo(f"reusing {previous.info.run_name} ({previous.info.run_id}): same params, FINISHED")
        return previous.info.run_id
    run = getattr(STAGES[stage], stage)
    return run(params, **kwargs)


def run_chain(settings, n_tasks, label="", on_eval=None):
    """generate_pool -> evaluate_baselines -> train for one pool size; returns the three run ids."""
    pool_run = run_stage("generate_pool", stage_params("generate_pool", settings, n_tasks=n_tasks))
    pool_uri = f"runs:/{pool_run}/{POOL_ARTIFACT}"
    baselines_run = run_stage(
        "evaluate_baselines", stage_params("evaluate_baselines", settings, pool=pool_uri, model="")
    )
    train_params = stage_params("train", settings, pool=pool_uri, baselines=f"runs:/{baselines_run}")
    train_run = run_stage("train", train_params, on_eval=on_eval, label=label)
    return {"generate_pool": pool_run, "evaluate_baselines": baselines_run, "train": train_run}


def run_chains(jobs, parent_run_id, workers):
    """Run `jobs` [(settings, n_tasks, label)], in this process or in `workers` processes."""
    if workers == 1:
        return [run_chain(settings, n_tasks) for settings, n_tasks, _ in jobs]
    context = multiprocessing.get_context("spawn")
    running = context.Value("i", 0)
    init = (os.environ["MLFLOW_TRACKING_URI"], _experiment_id(), parent_run_id, running, workers)
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=init) as executor:
        futures = [executor.submit(_worker_chain, settings, n_tasks, label) for settings, n_tasks, label in jobs]
        return [future.result() for future in futures]


_running = None  # in worker processes: the shared count of chains running now


def _init_worker(tracking_uri, experiment_id, parent_run_id, running, workers):
    global _running
    os.environ["MLFLOW_TRACKING_URI"] = tracking_uri
    os.environ["MLFLOW_EXPERIMENT_ID"] = experiment_id
    setup_tracking()
    nest_under(parent_run_id)
    _running = running
    # Start from an even share; a chain that outlives the others takes their cores at its next eval.
    torch.set_num_threads(max(1, _cores() // workers))


def _worker_chain(settings, n_tasks, label):
    with _running.get_lock():
        _running.value += 1
    try:
        return run_chain(settings, n_tasks, label=f"[{label}] ", on_eval=_rebalance_threads)
    finally:
        with _running.get_lock():
            _running.value -= 1


def _rebalance_threads():
    torch.set_num_threads(max(1, _cores() // max(1, _running.value)))


def _cores():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def job_label(n_tasks, scale):
    """m1024 or minf, with the data scale when the sweep has two (m1024-B512)."""
    return f"{pool_label(n_tasks)}-{scale}" if scale else pool_label(n_tasks)
