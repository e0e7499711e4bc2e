"""Entry point: draw a task pool of M tasks and log it as an artifact, a digest tag and a dataset input."""

import tempfile
from pathlib import Path

import click
import mlflow
import numpy as np

from pipeline.cli import EntryCommand, entry_point, pool_label
from pipeline.options import options
from pipeline.tracking import log_params_once, tracked_run
from tasks import make_pool, save_pool

POOL_ARTIFACT = "pool/pool.npz"


def generate_pool(params):
    """Run generate_pool with `params` (n_tasks, n_dims, task_scale, pool_seed); returns the run id."""
    pool = make_pool(params["n_tasks"], params["n_dims"], seed=params["pool_seed"], task_scale=params["task_scale"])
    with tracked_run(f"pool-{pool_label(pool.n_tasks)}", "generate_pool") as run:
        log_params_once(params)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder, "pool.npz")
            save_pool(pool, path)
            mlflow.log_artifact(str(path), artifact_path="pool")
        mlflow.set_tag("pool_sha256", pool.digest)
        tasks = pool.tasks if pool.tasks is not None else np.zeros((0, pool.n_dims), np.float32)
        dataset = mlflow.data.from_numpy(tasks, name=f"task-pool-{pool_label(pool.n_tasks)}", digest=pool.digest[:16])
        mlflow.log_input(dataset, context="pool")
        click.echo(f"pool: runs:/{run.info.run_id}/{POOL_ARTIFACT}  (sha256 {pool.digest[:12]}...)")
    return run.info.run_id


@click.command(
    cls=EntryCommand, help="Draw the pretraining task pool: M tasks w ~ N(0, task_scale^2 I_D) (paper Sec. 2)."
)
@options("n_tasks", "n_dims", "task_scale", "pool_seed")
@entry_point
def main(**params):
    generate_pool(params)


if __name__ == "__main__":
    main()
