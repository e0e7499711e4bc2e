"""Entry point: the task-diversity sweep. A grid over any options given as comma lists (n_tasks always;
e.g. -P weight_decay=0,1e-3 -P batch_size=256,512); for each point generate_pool -> evaluate_baselines
-> train as child runs of this run, run by an executor (inline or worker processes); finished children
with the same params are reused. Then the summary on this run: a table (MLflow table + CSV) with a row
per point, the Fig. 2-style figure with a curve per value of the other axes, and a threshold estimate
per group (pipeline/sweep/summary.py).

Every option overrides the preset (pipeline/presets.py); left empty, the preset's value is used.
"""

import math

import click

from pipeline.cli import EntryCommand, entry_point, options
from pipeline.presets import PRESETS, SWEEP_OPTIONS, resolve
from pipeline.resume import stop_on_signals
from pipeline.sweep import summary
from pipeline.sweep.chain import check
from pipeline.sweep.executors import make_executor, run_chains
from pipeline.sweep.figure import sweep_figure
from pipeline.sweep.grid import grid, warmup_fraction
from pipeline.tracking import as_text, tracked_run
from pipeline.train import device_of
from pipeline.types import InputError


def sweep(tracking, preset, overrides):
    """Run the sweep and its summary; returns the parent run id."""
    settings = resolve(preset, overrides)
    executor_name, workers = settings["executor"][0], settings["workers"][0]
    if executor_name == "inline" and workers > 1:
        raise InputError(f"workers={workers} needs executor=process (executor=inline runs one chain at a time)")
    executor = make_executor(executor_name, workers)
    given = overrides.get("warmup_steps") is not None
    points = grid(settings, warmup_fraction(settings if given else resolve(preset, {})), executor.threads())
    for point in points:
        check(point, device_of(settings["device"][0]))
    with stop_on_signals(forward=True), tracked_run(tracking, f"sweep-{preset}", "main") as run:
        # Under `mlflow run`, the launcher has logged the options as given ("" = from the preset), so
        # the resolved settings also go to settings.json; run directly, they are the params.
        resolved = {k: v[0] if len(v) == 1 else ",".join(map(as_text, v)) for k, v in settings.items()}
        resolved["n_tasks"] = ",".join(map(as_text, settings["n_tasks"]))
        run.log_params({"preset": preset} | resolved)
        run.log_dict(resolved, "settings.json")
        axes = points[0].axes
        click.echo(
            f"sweep {preset}: {len(points)} trainings over {', '.join(axes)} "
            f"({', '.join(p.label for p in points)}), executor {executor_name}, {workers} at a time"
        )
        chains = run_chains(executor, tracking, points, run.id)
        client = tracking.client()
        rows = [
            summary.summary_row(
                point.values,
                axes,
                client.get_run(chain["evaluate_baselines"]).data.metrics,
                client.get_run(chain["train"]).data.metrics,
                runs=chain,
            )
            for point, chain in zip(points, chains, strict=True)
        ]
        _log_summary(run, rows, axes)
    return run.id


def _log_summary(run, rows, axes):
    found = summary.thresholds(rows, axes)
    for group, log2_m, rule in found:
        suffix = "/" + "_".join(f"{axis}_{as_text(value)}" for axis, value in group) if group else ""
        run.set_tag(f"threshold_rule{suffix}", rule)
        if math.isfinite(log2_m):
            run.log_metrics({f"threshold_log2_n_tasks{suffix}": log2_m})
    run.log_table(summary.summary_table(rows, axes), "summary/summary.json")
    run.log_text(summary.summary_csv(rows, axes), "summary/summary.csv")
    run.log_figure(sweep_figure(rows, axes, found), "summary/sweep.png")
    click.echo(summary.summary_csv(rows, axes))
    for group, log2_m, rule in found:
        where = f" for {summary.group_label(group)}" if group else ""
        result = f"M* ~ 2^{log2_m:.2f}" if math.isfinite(log2_m) else "no threshold inside the grid"
        click.echo(f"{result}{where} ({rule})")
    click.echo(f"summary figure: {run.artifact_uri('summary/sweep.png')}")
    click.echo(f"summary table:  {run.artifact_uri('summary/summary.csv')}")
    click.echo(f"open the MLflow UI on these runs: {ui_command(run.tracking.uri)}")


def ui_command(uri):
    """The command that serves this tracking store in the MLflow UI (one worker: 2-core machines)."""
    if uri.startswith("sqlite:///"):
        return f"mlflow server --backend-store-uri {uri} --workers 1 --port 5000  # then open http://127.0.0.1:5000"
    return f"open {uri} in a browser"


@click.command(
    cls=EntryCommand,
    help="Task-diversity sweep over any axes (options given as comma lists): for each grid point, "
    "generate_pool -> evaluate_baselines -> train as child runs, then the summary table, figure and "
    "threshold estimates.",
)
@click.option(
    "--preset",
    type=click.Choice(sorted(PRESETS)),
    default="smoke",
    show_default=True,
    help="named settings (pipeline/presets.py); the options below override them.",
)
@options(*SWEEP_OPTIONS, sweep=True)
@entry_point
def main(tracking, preset, **overrides):
    sweep(tracking, preset, overrides)


if __name__ == "__main__":
    main()
