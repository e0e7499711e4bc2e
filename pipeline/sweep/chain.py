"""One chain per grid point: generate_pool -> evaluate_baselines -> train, as child runs of the sweep.

A chain runs in two parts: `prepare` (the pool and its baselines) and `finish` (the training). Points
that differ only in training settings (weight_decay, lr, ...) share one pool and one baselines run,
so a sweep prepares each distinct pair once before it trains (two workers never compute the same
dMMSE side by side).

Reuse: before running a stage, a FINISHED run of the same stage in the experiment whose params equal
the stage's settings (compared after typing each value with its option, so "1e-3" equals "0.001") and
whose metrics are all finite is reused, so rerunning a sweep finishes only what is missing. A reused run
moves under the sweep that reused it (its tag mlflow.parentRunId), so the newest sweep's run shows every
run it is made of in the MLflow UI; its tag `sweeps` lists every sweep run that used it, oldest first.
"""

import dataclasses
import math
from collections.abc import Callable

import click

from pipeline.bounds import check_pool, check_training
from pipeline.evaluate_baselines import evaluate_baselines
from pipeline.generate_pool import POOL_ARTIFACT, generate_pool
from pipeline.settings import BaselinesSettings, TrainSettings, build, flat, same_params
from pipeline.tracking import adopt
from pipeline.train import train
from tasks import PoolSettings


@dataclasses.dataclass(frozen=True)
class Stage:
    name: str  # the `stage` tag of its runs
    settings: type  # the settings dataclass it takes
    run: Callable  # run(tracking, settings, *, parent, ...) -> run id


GENERATE_POOL = Stage("generate_pool", PoolSettings, generate_pool)
EVALUATE_BASELINES = Stage("evaluate_baselines", BaselinesSettings, evaluate_baselines)
TRAIN = Stage("train", TrainSettings, train)
# Placeholders for the run URIs a chain fills in as it goes.
LINKS = {"pool": "", "model": "", "baselines": ""}


def check(point, device):
    """Build every stage's settings of `point` and check their memory bounds (pipeline/bounds.py): a bad
    combination raises InputError before any run starts."""
    values = point.values | LINKS
    check_pool(build(GENERATE_POOL.settings, values))
    check_training(build(TRAIN.settings, values), device)  # the eval sets too: the baselines run's are the same


def preparation(point):
    """What the point's pool and baselines depend on: points with equal keys share both runs."""
    values = point.values | LINKS
    pool, baselines = build(GENERATE_POOL.settings, values), build(EVALUATE_BASELINES.settings, values)
    return tuple(sorted((flat(pool) | flat(baselines)).items()))


def finished_run(tracking, stage, settings):
    """The newest FINISHED run of `stage` with these settings and only finite metrics, or None (a run
    whose metrics hold NaN is recomputed, not trusted)."""
    runs = tracking.client().search_runs(
        [tracking.experiment_id],
        f"tags.stage = '{stage.name}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
    )
    wanted = flat(settings)
    return next(
        (
            run
            for run in runs
            if same_params(run.data.params, wanted) and all(math.isfinite(v) for v in run.data.metrics.values())
        ),
        None,
    )


def run_stage(tracking, stage, values, *, parent, **kwargs):
    """Reuse a finished run of `stage` with the settings built from `values`, or run it; returns its id."""
    settings = build(stage.settings, values)
    previous = finished_run(tracking, stage, settings)
    if previous is not None:
        click.echo(f"reusing {previous.info.run_name} ({previous.info.run_id}): same params, FINISHED")
        adopt(tracking.client(), previous.info.run_id, parent)
        return previous.info.run_id
    return stage.run(tracking, settings, parent=parent, **kwargs)


def prepare(tracking, point, *, parent):
    """The point's pool and baselines runs under the run id `parent`: {stage name: run id}."""
    values = point.values | LINKS
    pool_run = run_stage(tracking, GENERATE_POOL, values, parent=parent)
    values |= {"pool": f"runs:/{pool_run}/{POOL_ARTIFACT}"}
    label = point.label_of(flat(build(EVALUATE_BASELINES.settings, values)))
    baselines_run = run_stage(tracking, EVALUATE_BASELINES, values, parent=parent, label=label)
    return {GENERATE_POOL.name: pool_run, EVALUATE_BASELINES.name: baselines_run}


def finish(tracking, point, prepared, *, parent):
    """The point's training on its `prepared` pool and baselines; returns the chain's {stage name: run id}."""
    links = {"pool": f"runs:/{prepared[GENERATE_POOL.name]}/{POOL_ARTIFACT}", "model": ""}
    links["baselines"] = f"runs:/{prepared[EVALUATE_BASELINES.name]}"
    control = {key: point.values[key] for key in ("checkpoint_every", "resume")}
    train_run = run_stage(tracking, TRAIN, point.values | links, parent=parent, label=point.label, **control)
    return prepared | {TRAIN.name: train_run}
