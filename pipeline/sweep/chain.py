"""One chain per grid point: generate_pool -> evaluate_baselines -> train, as child runs of the sweep.

Reuse: before running a stage, a FINISHED run of the same stage in the experiment whose params equal
the stage's settings (compared after typing each value with its option, so "1e-3" equals "0.001") and
whose metrics are all finite is reused, so rerunning a sweep finishes only what is missing.
"""

import dataclasses
import math
from collections.abc import Callable

import click

from pipeline.evaluate_baselines import evaluate_baselines
from pipeline.generate_pool import POOL_ARTIFACT, generate_pool
from pipeline.settings import BaselinesSettings, TrainSettings, build, flat, same_value
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


def same_params(logged, wanted):
    """Whether logged (text) params hold every wanted value, each compared as its option types it."""
    return all(name in logged and same_value(name, logged[name], value) for name, value in wanted.items())


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
        return previous.info.run_id
    return stage.run(tracking, settings, parent=parent, **kwargs)


def run_chain(tracking, point, parent, hooks=()):
    """The three stages of one grid point under the run id `parent`; returns {stage name: run id}.

    `hooks` are extra training-loop hooks (an executor's thread balancing, say).
    """
    values = point.values
    pool_run = run_stage(tracking, GENERATE_POOL, values, parent=parent)
    pool_uri = f"runs:/{pool_run}/{POOL_ARTIFACT}"
    values = values | {"pool": pool_uri, "model": ""}
    baselines_run = run_stage(tracking, EVALUATE_BASELINES, values, parent=parent, label=point.label)
    values = values | {"baselines": f"runs:/{baselines_run}"}
    train_run = run_stage(tracking, TRAIN, values, parent=parent, label=point.label, hooks=hooks)
    return {GENERATE_POOL.name: pool_run, EVALUATE_BASELINES.name: baselines_run, TRAIN.name: train_run}
