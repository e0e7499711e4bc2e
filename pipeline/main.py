"""Entry point: the task-diversity sweep. A grid over any options given as comma lists (n_tasks always;
e.g. -P weight_decay=0,1e-3 -P batch_size=256,512); for each point generate_pool -> evaluate_baselines
-> train as child runs of this run, run by an executor (inline or worker processes); finished children
with the same params are reused. Then the summary on this run: a table (MLflow table + CSV) with a row
per point, the Fig. 2-style figure with a curve per value of the other axes, and a threshold estimate
per group (pipeline/sweep/summary.py).

Every option overrides the preset (pipeline/presets.py); left out, the preset's value is used.
"""

import contextlib
import math

import click
import torch

from pipeline import shutdown
from pipeline.bounds import check_pack, check_steps, check_work, estimator_flops, training_flops, work_limit
from pipeline.cli import EntryCommand, entry_point, options
from pipeline.presets import PRESETS, REPLICATE, SWEEP_OPTIONS, resolve
from pipeline.sweep import dashboard, summary
from pipeline.sweep.chain import check, preparation, train_settings
from pipeline.sweep.executors import make_executor, packs_of, run_chains
from pipeline.sweep.figure import sweep_figure
from pipeline.sweep.grid import grid
from pipeline.sweep.progress import SweepProgress
from pipeline.tracking.runs import Run, first_line, short_id, tracked_run
from pipeline.tracking.store import ui_command


def sweep(tracking, preset, overrides):
    """Run the sweep and its summary; returns the parent run id."""
    settings = resolve(preset, overrides)
    trainings = len(grid(settings, 1))  # the grid's points
    run = settings.execution
    with make_executor(run.executor, run.workers, settings.value("device"), trainings, run.ray_address) as executor:
        return _sweep(tracking, settings, executor)


def _sweep(tracking, settings, executor):
    preset, limits, device = settings.preset, settings.execution, torch.device(executor.device)
    points = grid(settings, executor.threads())
    for point in points:
        check(point)
    trained = [train_settings(point) for point in points]
    for one in trained:
        check_steps(one, limits.max_steps, settings.value("checkpoint_every"))
    pack = limits.pack or min(executor.pack_size(one) for one in trained)
    packs = packs_of(trained, pack)
    if executor.name == "ray":  # against the cluster's nodes, and its store against their reach
        executor.check(points, packs)
        executor.check_tracking(tracking)
    else:
        for indices in packs:
            check_pack([trained[i] for i in indices], device)
    work = sum(map(training_flops, trained)) + sum(
        estimator_flops(p.values["n_tasks"], t.evaluation, t.data.n_dims)
        for p, t in {preparation(p): (p, t) for p, t in zip(points, trained, strict=True)}.values()
    )
    check_work(work, f"this sweep of {len(points)} trainings", device, limits.max_work)
    with shutdown.forwarding(), tracked_run(tracking, f"{preset} sweep", "main") as run:
        run.client.update_run(run.id, name=sweep_name(preset, points, run.id))
        # The resolved value of every option (MLproject declares only preset, so `mlflow run` has logged
        # just the options given, as given); settings.json holds the same.
        params = settings.params(executor, pack, work_limit(device, limits.max_work))
        run.log_params(params)
        run.log_dict(params, "settings.json")
        axes = points[0].axes
        click.echo(
            f"sweep {preset}: {len(points)} trainings over {', '.join(axes)} "
            f"({', '.join(p.label for p in points)}), executor {executor.name}, {executor.workers} at a time"
            + (f", packed up to {pack} per ensemble" if pack > 1 else "")
        )
        setting, client = summary.setting_text(settings.described()), tracking.client()
        progress = SweepProgress(len(points), f"[sweep {short_id(run.id)}]")
        fetched = {}  # each run of the sweep read from the store once (a finished run does not change)

        def fetch(run_id):
            if run_id not in fetched:
                fetched[run_id] = client.get_run(run_id)
            return fetched[run_id]

        def chart(done):  # the summary figure so far, among the run's charts: a step per finished point
            progress.update(len(done))
            try:
                rows = summary_rows(fetch, [points[i] for i in sorted(done)], [done[i] for i in sorted(done)], axes)
                means, shown = summary.aggregate(rows, axes), summary.point_axes(axes)
                figure = sweep_figure(means, shown, summary.thresholds(rows, axes), setting)
                # Step k: after k points; step 0, where the UI's slider starts, the newest (MLflow shows the
                # latest image of a step).
                run.log_chart(figure, "summary", (len(done), 0))
            except Exception as error:  # a picture of the progress must not end a sweep of hours
                progress.say(f"(the summary chart after {len(done)} point(s) was not drawn: {first_line(error)})")

        with contextlib.closing(progress):
            chains = run_chains(executor, tracking, points, run.id, packs, on_chains=chart)
        rows = summary_rows(fetch, points, chains, axes)
        for point, chain in zip(points, chains, strict=True):
            log_numeric_axes(Run(tracking, chain["train"]), fetch(chain["train"]).data.metrics, point)
        made_by = {i: fetch(i).data.tags.get("mlflow.parentRunId") for chain in chains for i in chain.values()}
        reused = {i for i, parent in made_by.items() if parent != run.id}
        if reused:  # runs of earlier sweeps, left under them: the description marks and links them
            run.set_tag("reused_runs", f"{len(reused)} of {sum(map(len, chains))} (made by earlier sweeps)")
        _log_summary(run, preset, rows, axes, chains, setting, reused)
    return run.id


def summary_rows(fetch, points, chains, axes):
    """The summary's row of each of `points` from its chain's runs, read by `fetch(run id)` (sweep/summary.py)."""
    return [
        summary.summary_row(
            point.values,
            axes,
            fetch(chain["evaluate_baselines"]).data.metrics,
            fetch(chain["train"]).data.metrics,
            runs=chain,
        )
        for point, chain in zip(points, chains, strict=True)
    ]


def log_numeric_axes(train_run, present, point):
    """Mirror the point's numeric sweep axes (all but M, which log2_n_tasks mirrors, and the replicate) as
    metrics of its `train_run` (a tracking.Run; `present`: its metrics), `weight_decay` and, where positive,
    `log10_weight_decay`, so that the UI's charts and compare page can put runs on a numeric axis (params
    are text: 16 sorts before 2)."""
    numeric = {
        axis: value
        for axis, value in point.values.items()
        if axis in point.axes
        and axis not in ("n_tasks", REPLICATE)
        and isinstance(value, int | float)
        and not isinstance(value, bool)
    }
    metrics = dict(numeric) | {f"log10_{axis}": math.log10(v) for axis, v in numeric.items() if v > 0}
    train_run.log_metrics({key: v for key, v in metrics.items() if key not in present})


def sweep_name(preset, points, run_id):
    """What tells this sweep apart in the UI's runs list, first: `fig2_cpu [1f0c2a] M x weight_decay, 3 seeds`
    (the run id's start, which its children's names carry too: pipeline/tracking/runs.py)."""
    axes = [axis for axis in points[0].axes if axis not in ("n_tasks", REPLICATE)]
    seeds = len({point.values.get(REPLICATE, 0) for point in points})
    return f"{preset} [{short_id(run_id)}] " + " x ".join(["M", *axes]) + (f", {seeds} seeds" if seeds > 1 else "")


def _log_summary(run, preset, rows, axes, chains, setting, reused):
    """The summary of `rows` (one per training): thresholds over every replicate, the table of the trainings
    and, where a point has replicates, of their means with 95% intervals; the figure (captioned with the
    `setting`), the terminal table and the dashboard show the means."""
    found = summary.thresholds(rows, axes)
    means, shown = summary.aggregate(rows, axes), summary.point_axes(axes)
    scale = dashboard.log_curves_by_pool_size(run, means, shown)
    experiment = run.tracking.experiment_id
    figure = run.image("summary/sweep.png", "the summary figure")
    run.set_description(dashboard.description(preset, rows, axes, found, scale, chains, experiment, reused, figure))
    for threshold in found:
        suffix = summary.group_key(threshold.group)
        run.set_tag(f"threshold{suffix}", threshold.finding)
        run.set_tag(f"threshold_rule{suffix}", threshold.rule)
        for name, value in (("", threshold.log2_m), ("_low", threshold.low), ("_high", threshold.high)):
            if math.isfinite(value):
                run.log_metrics({f"threshold_log2_n_tasks{name}{suffix}": value})
    run.log_table(summary.summary_table(rows, axes), "summary/summary.json")
    run.log_text(summary.summary_csv(rows, axes), "summary/summary.csv")
    if len(means) < len(rows):
        run.log_table(summary.means_table(means, shown), "summary/means.json")
    run.log_figure(sweep_figure(means, shown, found, setting), "summary/sweep.png")
    click.echo(summary.summary_text(means, shown))
    for threshold in found:
        where = f" for {summary.group_label(threshold.group)}" if threshold.group else ""
        click.echo(f"threshold{where}: {threshold.finding} (rule: {threshold.rule})")
    click.echo(f"summary figure: {run.artifact_uri('summary/sweep.png')}")
    click.echo(f"summary table:  {run.artifact_uri('summary/summary.csv')}")
    click.echo(f"open the MLflow UI on these runs: {ui_command(run.tracking)}")
    click.echo(f"sweep run: runs:/{run.id}  (its Model metrics tab draws the summary against M)")


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
