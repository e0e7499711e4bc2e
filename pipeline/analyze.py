"""Entry point: analyse a finished sweep (the paper's figures beyond Fig. 2) from what its runs tracked.

`--kind` names the analysis (pipeline/analysis/), `--sweep` the sweep's run (runs:/<id>). The analysis
runs nested under the sweep: its figure(s) as PNG, the numbers behind every curve as MLflow tables, the
fitted quantities as metrics, and in its description what it found and which runs it read. Nothing
that is tracked is recomputed. Its options are its own (not pipeline/settings.py OPTIONS, where `kind`
is predict's distribution).
"""

import click

from pipeline.analysis.accuracy import final_accuracy
from pipeline.analysis.data_scale import data_scale
from pipeline.analysis.dimension import dimension
from pipeline.analysis.interpolation import interpolation
from pipeline.analysis.laplace import laplace
from pipeline.analysis.lmc import lmc
from pipeline.analysis.smoothing import smoothing
from pipeline.analysis.sweep_runs import open_sweep
from pipeline.analysis.thresholds import thresholds
from pipeline.analysis.transition import transition_time
from pipeline.cli import EntryCommand, entry_point
from pipeline.sweep.dashboard import metric_key
from pipeline.tracking.runs import tracked_run
from pipeline.types import Unset

KINDS = {
    "data_scale": "Fig. 3: the Deltas against M per data scale, and where they cross",
    "transition_time": "Fig. 4: Delta_PT,Ridge against step per M, t* and its power law in M",
    "dimension": "Fig. 6: the threshold per task dimension D, and the Deltas at the largest M against D",
    "interpolation": "Fig. 5: loss/D of the three predictors along paths between two pool tasks",
    "thresholds": "Fig. 7 and 13: the threshold M* per value of a swept axis, with its curves",
    "final_accuracy": "Fig. 10: final T_True loss/D above the threshold against M = inf",
    "smoothing": "Fig. 12: T_True loss/D of the transformer against smoothed dMMSE with the best smoothing",
    "lmc": "Fig. 11: the training-loss barrier on the line between the weights of PT(M) and PT(inf)",
    "laplace": "Fig. 14: with Laplace tasks, the transformer against the Laplace prior's Bayes predictor and ridge",
}


# interpolation's options: (lowest value, default, meaning).
PATHS = {
    "pairs": (1, 64, "random pairs of pool tasks."),
    "alphas": (2, 11, "points on each path, alpha evenly in [0, 1] (lmc: points t on the line)."),
    "sequences": (1, 16, "sequences per pair and alpha."),
    "seed": (0, 107, "seed of the pairs and sequences (smoothing, lmc: of their fresh sequences)."),
}
HELD_OUT = 512  # smoothing's default: fresh-task sequences on which s is chosen
FRESH = 4096  # lmc's default: sequences per distribution on which the loss is taken
# Every sampling option as a click option: (lowest value, default, help).
SAMPLING = {name: (lowest, default, f"interpolation: {text}") for name, (lowest, default, text) in PATHS.items()}
SAMPLING["held_out"] = (
    8,
    HELD_OUT,
    "smoothing: fresh-task sequences on which the smoothing s is chosen (drawn with --seed).",
)
SAMPLING["fresh"] = (
    1,
    FRESH,
    "lmc: fresh sequences per distribution on which the training loss is taken (drawn with --seed).",
)


def sampling_options(command):
    """The click options of SAMPLING on `command`."""
    for name, (lowest, default, text) in reversed(SAMPLING.items()):
        kind = click.IntRange(min=lowest)
        command = click.option(f"--{name}", type=kind, default=default, show_default=True, help=text)(command)
    return command


def analyze(tracking, kind, sweep_uri, *, above=None, paths=None, held_out=HELD_OUT, fresh=FRESH):
    """Run analysis `kind` on the sweep run `sweep_uri` and log it under that run.
    `above`: final_accuracy's cut (log2 M); `paths`: interpolation's {pairs, alphas, sequences, seed}
    (smoothing and lmc use its seed, lmc its alphas); `held_out`: smoothing's sequences for choosing s;
    `fresh`: lmc's sequences per distribution.
    Returns (the analysis run's id, its findings: markdown lines)."""
    paths = paths or {name: default for name, (_, default, _) in PATHS.items()}
    client = tracking.client()
    sweep = open_sweep(client, sweep_uri)
    options = {}
    if kind == "final_accuracy":
        result = final_accuracy(client, sweep, above)
        options = {} if above is None else {"above": above}
    elif kind == "interpolation":
        result = interpolation(client, sweep, **paths)
        options = paths
    elif kind == "smoothing":
        result = smoothing(client, sweep, held_out=held_out, seed=paths["seed"])
        options = {"held_out": held_out, "seed": paths["seed"]}
    elif kind == "lmc":
        result = lmc(client, sweep, alphas=paths["alphas"], fresh=fresh, seed=paths["seed"])
        options = {"alphas": paths["alphas"], "fresh": fresh, "seed": paths["seed"]}
    else:
        simple = {
            "data_scale": data_scale,
            "transition_time": transition_time,
            "thresholds": thresholds,
            "laplace": laplace,
            "dimension": dimension,
        }
        analysis = simple[kind]
        result = analysis(client, sweep)
    # Under `mlflow run`, the launcher's run is the analysis: it is moved under the sweep.
    parent = None if tracking.launched_run else sweep.run_id
    with tracked_run(tracking, f"analyze-{kind}", "analyze", parent) as run:
        run.set_tag("mlflow.parentRunId", sweep.run_id)
        run.log_params({"kind": kind, "sweep": sweep_uri} | options)
        if result.metrics:  # named by their curves (replicate=0, weight_decay=0.1): in MLflow's characters
            run.log_metrics({metric_key(key): value for key, value in result.metrics.items()})
        for path, table in result.tables.items():
            run.log_table(table, path)
        for path, figure in result.figures.items():
            run.log_figure(figure, path)
            run.log_chart(figure, path.rsplit("/", 1)[-1].removesuffix(".png"))  # among the run's charts too
        figures = [run.image(path, kind) for path in result.figures]  # on its Overview, full size
        lines = [*figures, "", f"**{kind}** of sweep {run.link(sweep_uri)}: {KINDS[kind]}.", "", *result.findings, ""]
        lines += ["Runs read:", *(f"- {run.link(f'runs:/{run_id}')}" for run_id in result.runs)]
        run.set_description("\n".join(lines))
        for line in result.findings:
            click.echo(line)
        for path in result.figures:
            click.echo(f"figure: {run.artifact_uri(path)}")
        click.echo(f"analysis run: runs:/{run.id} ({len(result.runs)} runs read)")
    return run.id, result.findings


@click.command(
    cls=EntryCommand,
    help="Analyse a finished sweep: the paper's figures beyond Fig. 2 ("
    + "; ".join(f"{kind}: {text}" for kind, text in KINDS.items())
    + ").",
)
@click.option(
    "--kind", type=click.Choice(list(KINDS)), default="transition_time", show_default=True, help="the analysis."
)
@click.option("--sweep", type=click.STRING, default="", help="runs:/<id> of a finished sweep (main) run.")
@click.option(
    "--above",
    type=Unset(click.FLOAT),
    default=None,
    help="final_accuracy: log2 M above which models are compared (empty: the sweep's threshold estimate).",
)
@sampling_options
@entry_point
def main(tracking, kind, sweep, above, held_out, fresh, **paths):
    analyze(tracking, kind, sweep, above=above, paths=paths, held_out=held_out, fresh=fresh)


if __name__ == "__main__":
    main()
