"""The CPU-setting study of issue 24 (docs/cpu_setting.md): how close the M = inf transformer gets to ridge on
T_True at the paper's signal-to-noise (D = 4, sigma^2 = 0.125), per training (batch, steps, lr), over
replicates.

    python -m benchmarks.cpu_setting run --store runs/study.db 128,20000,1e-3 128,40000,1e-3 128,40000,1e-3,2/32/2
    python -m benchmarks.cpu_setting report --store runs/study.db

`run` runs one `main` sweep per setting (fig2_cpu at M = inf, `replicates` of them, two trainings side by side)
into its own store; finished trainings are reused and interrupted ones resumed, so it can be stopped and
started again. `report` prints each setting's replicates and the mean gap with Student's 95% interval.
"""

import os
import subprocess
import sys
from pathlib import Path

import click
from mlflow.tracking import MlflowClient

from pipeline.stats import t_interval

EXPERIMENT = "cpu-setting"
NOISE_SCALE = 0.3535533906  # sigma^2 = 0.125: D / sigma^2 = 32 at D = 4, the paper's 8 / 0.25


@click.group(help=__doc__.split("\n\n")[0])
def main():
    pass


@main.command(
    help="Run the sweeps of the settings given as batch,steps,lr or batch,steps,lr,layers/width/heads (25% "
    "warm-up; the model fig2_cpu's 3/64/2 unless given)."
)
@click.option("--store", type=click.Path(path_type=Path), default=Path("runs/study.db"), show_default=True)
@click.option("--replicates", default=2, show_default=True)
@click.argument("settings", nargs=-1, required=True)
def run(store, replicates, settings):
    store.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{store.resolve()}", "MLFLOW_EXPERIMENT_NAME": EXPERIMENT}
    for setting in settings:
        batch, steps, lr, *model = setting.split(",")
        layers, width, heads = model[0].split("/") if model else ("3", "64", "2")
        args = ["--preset", "fig2_cpu", "--n_tasks", "inf", "--noise_scale", str(NOISE_SCALE)]
        args += ["--n_layer", layers, "--n_embd", width, "--n_head", heads]
        args += ["--replicates", str(replicates), "--eval_every", "1000", "--checkpoint_every", "1000"]
        args += ["--batch_size", batch, "--total_steps", steps, "--warmup_steps", str(int(steps) // 4), "--lr", lr]
        name = f"cpu-b{batch}-t{steps}" + ("" if float(lr) == 1e-3 else f"-lr{lr}")
        args += ["--model_name", name + ("" if model == [] else f"-m{layers}x{width}x{heads}")]
        click.echo(f"=== batch {batch}, {steps} steps, lr {lr}, model {layers}/{width}/{heads}")
        subprocess.run([sys.executable, "-m", "pipeline.main", *args], env=env, check=True)


@main.command(help="Each setting's M = inf transformer against ridge on T_True.")
@click.option("--store", type=click.Path(path_type=Path), default=Path("runs/study.db"), show_default=True)
@click.option("--experiment", default=EXPERIMENT, show_default=True)
def report(store, experiment):
    client = MlflowClient(f"sqlite:///{store.resolve()}")
    experiment = client.get_experiment_by_name(experiment)
    where = "tags.stage = 'train' and attributes.status = 'FINISHED' and params.n_tasks = 'inf'"
    runs = client.search_runs([experiment.experiment_id], where)
    settings = {}
    for run in runs:
        settings.setdefault(run.data.params["model_name"], []).append(run)
    for name, group in sorted(settings.items()):
        gaps = []
        for run in group:
            baselines = client.get_run(run.data.params["baselines"].removeprefix("runs:/").split("/")[0])
            pt, ridge = run.data.metrics["true/pt/loss_noiseless"], baselines.data.metrics["true/ridge/loss_noiseless"]
            gaps.append(pt / ridge - 1)
            click.echo(f"{name} model_seed {run.data.params['model_seed']}: {pt:.4f} against ridge {ridge:.4f}")
        mean, low, high = t_interval(gaps)
        click.echo(f"{name}: gap {mean:+.2%} (95% t interval {low:+.2%} to {high:+.2%}) over {len(gaps)} replicates")


if __name__ == "__main__":
    main()
