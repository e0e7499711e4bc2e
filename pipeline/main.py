"""Entry point: a task-diversity sweep. For each pool size M of the preset's grid (or -P n_tasks=...),
generate_pool -> evaluate_baselines -> train run as child runs of this run.

Every option overrides the preset (pipeline/presets.py); left empty, the preset's value is used.
"""

import math

import click
import mlflow

from pipeline import evaluate_baselines, generate_pool, train
from pipeline.cli import EntryCommand, entry_point
from pipeline.generate_pool import POOL_ARTIFACT
from pipeline.options import NTasksList, option, options
from pipeline.presets import PRESETS, resolve
from pipeline.tracking import log_params_once, tracked_run

STAGES = (generate_pool, evaluate_baselines, train)
OVERRIDABLE = (
    "n_dims",
    "n_points",
    "noise_scale",
    "task_scale",
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
    "pool_seed",
    "data_seed",
    "task_seed",
    "noise_seed",
    "model_seed",
    "eval_data_seed",
    "eval_task_seed",
    "eval_noise_seed",
    "eval_every",
    "n_eval",
    "device",
    "model_name",
)


def stage_params(stage, settings, **extra):
    """The subset of `settings` that a stage's click command declares, plus `extra`."""
    names = {p.name for p in stage.main.params}
    return {key: value for key, value in settings.items() if key in names} | extra


def sweep(preset, overrides):
    """Run the sweep; returns the parent run id."""
    settings = resolve(preset, overrides)
    with tracked_run(f"sweep-{preset}") as run:
        log_params_once({"preset": preset} | {k: v for k, v in overrides.items() if v is not None})
        mlflow.set_tag("n_tasks_grid", ",".join(_label(m) for m in settings["n_tasks"]))
        for n_tasks in settings["n_tasks"]:
            click.echo(f"--- M = {_label(n_tasks)} ---")
            pool_run = generate_pool.generate_pool(stage_params(generate_pool, settings, n_tasks=n_tasks))
            pool_uri = f"runs:/{pool_run}/{POOL_ARTIFACT}"
            baselines_run = evaluate_baselines.evaluate_baselines(
                stage_params(evaluate_baselines, settings, pool=pool_uri, model="")
            )
            train.train(stage_params(train, settings, pool=pool_uri, baselines=f"runs:/{baselines_run}"))
    return run.info.run_id


def _label(n_tasks):
    return "inf" if n_tasks == math.inf else str(n_tasks)


@click.command(
    cls=EntryCommand,
    help="Task-diversity sweep: for each M, generate_pool -> evaluate_baselines -> train as child runs.",
)
@option(
    "preset",
    type=click.Choice(sorted(PRESETS)),
    default="smoke",
    help="named settings (pipeline/presets.py); the options below override them.",
)
@option(
    "n_tasks",
    type=NTasksList(),
    unset=True,
    help="grid of pool sizes M, comma-separated (e.g. 2,8,32,inf); empty: the preset's grid.",
)
@options(*OVERRIDABLE, unset=True)
@entry_point
def main(preset, **overrides):
    sweep(preset, overrides)


if __name__ == "__main__":
    main()
