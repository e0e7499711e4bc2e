"""Entry point: the task-diversity sweep. For each pool size M of the grid (and each data scale),
generate_pool -> evaluate_baselines -> train run as child runs of this run; finished children with
the same params are reused. Then the summary: a table (MLflow table + CSV), the Fig. 2-style figure
and the threshold estimate, on this run.

Every option overrides the preset (pipeline/presets.py); left empty, the preset's value is used.
batch_size or total_steps may hold two comma-separated values: the two data scales of the paper's
threshold rule (warmup_steps is then scaled in proportion to total_steps).
"""

import math
import tempfile
from pathlib import Path

import click
import mlflow
from mlflow.tracking import MlflowClient

from pipeline import summary
from pipeline.cli import EntryCommand, entry_point
from pipeline.figures import sweep_figure
from pipeline.options import POSITIVE, SPECS, CommaList, NTasks, option, options
from pipeline.presets import DEFAULTS, PRESETS, resolve
from pipeline.sweep import job_label, run_chains
from pipeline.tracking import as_text, log_params_once, tracked_run

# Options that override one setting each; n_tasks, batch_size and total_steps take lists (below).
OVERRIDABLE = [name for name in DEFAULTS if name not in ("n_tasks", "batch_size", "total_steps")]


def data_scales(settings, warmup_fraction):
    """[(label, settings)] per data scale: one, or two when batch_size or total_steps lists two values.

    Each scale warms up for `warmup_fraction` of its total_steps; a bad combination fails here, before
    any run starts.
    """
    batches, totals = settings["batch_size"], settings["total_steps"]
    if len(batches) > 1 and len(totals) > 1:
        raise ValueError(f"give two values for batch_size or for total_steps, not both: {batches}, {totals}")
    if max(len(batches), len(totals)) > 2:
        raise ValueError(f"at most two data scales, got batch_size={batches}, total_steps={totals}")
    label = "B" if len(batches) == 2 else "T"
    scales = []
    for batch_size in batches:
        for total in totals:
            value = batch_size if label == "B" else total
            name = f"{label}{value}" if len(batches) + len(totals) > 2 else ""
            warmup = round(warmup_fraction * total)
            if not 0 <= warmup < total:
                raise ValueError(f"warmup_steps={warmup} must be below total_steps={total}")
            scales.append((name, settings | {"batch_size": batch_size, "total_steps": total, "warmup_steps": warmup}))
    return scales


def warmup_fraction(preset, overrides, settings):
    """The share of training spent warming up: as given (warmup_steps over the first total_steps), or
    the preset's own share, so overriding only total_steps keeps the preset's schedule shape."""
    if overrides.get("warmup_steps") is not None:
        return settings["warmup_steps"] / settings["total_steps"][0]
    preset_only = resolve(preset, {})
    return preset_only["warmup_steps"] / preset_only["total_steps"]


def sweep(preset, overrides):
    """Run the sweep and its summary; returns the parent run id."""
    settings = resolve(preset, overrides)
    for key in ("batch_size", "total_steps"):
        settings[key] = settings[key] if isinstance(settings[key], list) else [settings[key]]
    scales = data_scales(settings, warmup_fraction(preset, overrides, settings))
    with tracked_run(f"sweep-{preset}", "main") as run:
        # Under `mlflow run`, the launcher has logged the options as given ("" = from the preset), so
        # the resolved settings also go to settings.json; run directly, they are the params.
        resolved = {k: ",".join(map(as_text, v)) if isinstance(v, list) else v for k, v in settings.items()}
        log_params_once({"preset": preset} | resolved)
        mlflow.log_dict(resolved, "settings.json")
        grid = [(m, scale, s) for scale, s in scales for m in settings["n_tasks"]]
        jobs = [(s, m, job_label(m, scale)) for m, scale, s in grid]
        click.echo(
            f"sweep {preset}: {len(jobs)} trainings ({', '.join(j[2] for j in jobs)}), {settings['workers']} at a time"
        )
        chains = run_chains(jobs, run.info.run_id, settings["workers"])
        rows = [_row(chain, m, scale) for chain, (m, scale, _) in zip(chains, grid, strict=True)]
        _log_summary(rows)
    return run.info.run_id


def _row(chain, n_tasks, scale):
    client = MlflowClient()
    baselines = client.get_run(chain["evaluate_baselines"]).data.metrics
    trained = client.get_run(chain["train"]).data.metrics
    return summary.summary_row(n_tasks, scale, baselines, trained, runs=chain)


def _log_summary(rows):
    log2_m, rule = summary.threshold(rows)
    mlflow.set_tag("threshold_rule", rule)
    if math.isfinite(log2_m):
        mlflow.log_metric("threshold_log2_n_tasks", log2_m)
    mlflow.log_table(summary.summary_table(rows), "summary/summary.json")
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "summary.csv").write_text(summary.summary_csv(rows))
        mlflow.log_artifact(str(Path(folder, "summary.csv")), "summary")
    mlflow.log_figure(sweep_figure(rows, log2_m, rule), "summary/sweep.png")
    click.echo(summary.summary_csv(rows))
    found = f"M* ~ 2^{log2_m:.2f}" if math.isfinite(log2_m) else "no threshold inside the grid"
    click.echo(f"{found} ({rule})")
    click.echo(f"summary figure: {mlflow.get_artifact_uri('summary/sweep.png')}")
    click.echo(f"summary table:  {mlflow.get_artifact_uri('summary/summary.csv')}")
    click.echo(f"open the MLflow UI on these runs: {ui_command()}")


def ui_command():
    """The command that serves this tracking store in the MLflow UI (one worker: 2-core machines)."""
    uri = mlflow.get_tracking_uri()
    if uri.startswith("sqlite:///"):
        return f"mlflow server --backend-store-uri {uri} --workers 1 --port 5000  # then open http://127.0.0.1:5000"
    return f"open {uri} in a browser"


@click.command(
    cls=EntryCommand,
    help="Task-diversity sweep: for each M, generate_pool -> evaluate_baselines -> train "
    "as child runs, then the summary table, figure and threshold estimate.",
)
@option(
    "preset",
    type=click.Choice(sorted(PRESETS)),
    default="smoke",
    help="named settings (pipeline/presets.py); the options below override them.",
)
@option(
    "n_tasks",
    type=CommaList(NTasks()),
    unset=True,
    help="grid of pool sizes M, comma-separated (e.g. 2,8,32,inf); empty: the preset's grid.",
)
@option(
    "batch_size",
    type=CommaList(POSITIVE),
    unset=True,
    help=SPECS["batch_size"][1] + " Two values (e.g. 256,512) make two data scales.",
)
@option(
    "total_steps",
    type=CommaList(POSITIVE),
    unset=True,
    help=SPECS["total_steps"][1] + " Two values make two data scales.",
)
@options(*OVERRIDABLE, unset=True)
@entry_point
def main(preset, **overrides):
    sweep(preset, overrides)


if __name__ == "__main__":
    main()
