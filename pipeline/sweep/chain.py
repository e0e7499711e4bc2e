"""One chain per grid point: generate_pool -> evaluate_baselines -> train, as child runs of the sweep.

A chain runs in two parts: `prepare` (the pool and its baselines) and `finish` (the training, alone or
packed with others into one ensemble). Points
that differ only in training settings (weight_decay, lr, ...) share one pool and one baselines run,
so a sweep prepares each distinct pair once before it trains (two workers never compute the same
dMMSE side by side).

Reuse: before running a stage, a FINISHED run of the same stage in the experiment whose params equal
the stage's settings (compared after typing each value with its option, so "1e-3" equals "0.001") and
whose metrics are all finite is reused, so rerunning a sweep finishes only what is missing. A reused run
stays nested under the sweep that made it (so every sweep keeps its children in the MLflow UI); its tag
`sweeps` lists every sweep run that used it, oldest first, and the reusing sweep's description links it.
"""

import dataclasses
import math
from collections.abc import Callable

import click

from pipeline.bounds import check_pool_size
from pipeline.evaluate_baselines import evaluate_baselines
from pipeline.generate_pool import POOL_ARTIFACT, generate_pool
from pipeline.packed import train_packed
from pipeline.settings import BaselinesSettings, TrainSettings, build, flat, same_params
from pipeline.tracking.runs import record_use
from pipeline.training import train
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


def check(point):
    """Build the point's pool settings and check the pool's memory bound (pipeline/bounds.py; its
    training's, the eval sets' included, is checked with its pack: check_pack): a bad value raises
    InputError before any run starts."""
    check_pool_size(build(GENERATE_POOL.settings, point.values | LINKS))


def train_settings(point):
    """The point's TrainSettings, before its pool and baselines runs exist (their URIs left empty)."""
    return build(TRAIN.settings, point.values | LINKS)


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


def reused(tracking, stage, settings, *, parent):
    """The id of a finished run of `stage` with `settings`, its use by the sweep `parent` recorded; None when
    there is none."""
    previous = finished_run(tracking, stage, settings)
    if previous is None:
        return None
    click.echo(f"reusing {previous.info.run_name} ({previous.info.run_id}): same params, FINISHED")
    record_use(tracking.client(), previous, parent)
    return previous.info.run_id


def run_stage(tracking, stage, values, *, parent, **kwargs):
    """Reuse a finished run of `stage` with the settings built from `values`, or run it; returns its id."""
    settings = build(stage.settings, values)
    return reused(tracking, stage, settings, parent=parent) or stage.run(tracking, settings, parent=parent, **kwargs)


def prepare(tracking, point, *, parent):
    """The point's pool and baselines runs under the run id `parent`: {stage name: run id}."""
    values = point.values | LINKS
    pool_run = run_stage(tracking, GENERATE_POOL, values, parent=parent)
    values |= {"pool": f"runs:/{pool_run}/{POOL_ARTIFACT}"}
    label = point.label_of(flat(build(EVALUATE_BASELINES.settings, values)))
    baselines_run = run_stage(tracking, EVALUATE_BASELINES, values, parent=parent, label=label)
    return {GENERATE_POOL.name: pool_run, EVALUATE_BASELINES.name: baselines_run}


def finish(tracking, points, prepared, *, parent):
    """The trainings of `points` (one point, or several that share an ensemble: packed.pack_key), each on
    its `prepared` pool and baselines, as one ensemble (pipeline/packed.py; a single one trains alone);
    those with a finished run are reused. Returns each chain's {stage name: run id}."""
    runs, todo = {}, []
    for k, point in enumerate(points):
        settings = build(TRAIN.settings, _train_values(point, prepared[k]))
        runs[k] = reused(tracking, TRAIN, settings, parent=parent)
        if runs[k] is None:
            todo.append((k, settings))
    if todo:
        labels = [points[k].label for k, _ in todo]
        trained = train_packed(tracking, [s for _, s in todo], parent=parent, labels=labels, **_control(points[0]))
        runs |= {k: run_id for (k, _), run_id in zip(todo, trained, strict=True)}
    return [prepared[k] | {TRAIN.name: runs[k]} for k in range(len(points))]


def _train_values(point, prepared):
    """The point's option values with the URIs of its prepared pool and baselines runs."""
    links = {"pool": f"runs:/{prepared[GENERATE_POOL.name]}/{POOL_ARTIFACT}", "model": ""}
    links["baselines"] = f"runs:/{prepared[EVALUATE_BASELINES.name]}"
    return point.values | links


def _control(point):
    """How a training runs rather than what it computes (not params: equal runs match whatever these were)."""
    return {key: point.values[key] for key in ("checkpoint_every", "resume", "compile")}
