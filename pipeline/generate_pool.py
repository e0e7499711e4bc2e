"""Entry point: draw a task pool of M tasks and log it as an artifact, a digest tag and a dataset input."""

import tempfile
from pathlib import Path

import click

from pipeline.bounds import check_pool_size
from pipeline.cli import EntryCommand, entry_point, options
from pipeline.settings import build, flat, option_names
from pipeline.tracking.curves import log_pool_size
from pipeline.tracking.datasets import pool_dataset
from pipeline.tracking.runs import tracked_run
from pipeline.types import pool_label
from tasks import PoolSettings, make_pool, save_pool

POOL_ARTIFACT = "pool/pool.npz"


def generate_pool(tracking, settings, *, parent=None):
    """Draw and log the pool of PoolSettings `settings` (under run id `parent` if given); returns the run id."""
    check_pool_size(settings)
    pool = make_pool(
        settings.n_tasks,
        settings.n_dims,
        seed=settings.pool_seed,
        task_scale=settings.task_scale,
        task_prior=settings.task_prior,
    )
    with tracked_run(tracking, f"pool-{pool_label(pool.n_tasks)}", "generate_pool", parent) as run:
        run.log_params(flat(settings))
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder, "pool.npz")
            save_pool(pool, path)
            run.log_artifact(path, "pool")
        run.set_tag("pool_sha256", pool.digest)
        log_pool_size(run, pool.n_tasks)
        run.log_dataset(pool_dataset(pool), context="pool")
        if parent is None:  # alone: what it made and what comes next (a sweep says it once per point)
            click.echo(f"pool: runs:/{run.id}/{POOL_ARTIFACT}  (sha256 {pool.digest[:12]}...)")
            click.echo(f"next: evaluate_baselines and train with -P pool=runs:/{run.id}/{POOL_ARTIFACT}")
    return run.id


@click.command(
    cls=EntryCommand, help="Draw the pretraining task pool: M tasks w ~ N(0, task_scale^2 I_D) (paper Sec. 2)."
)
@options(*option_names(PoolSettings))
@entry_point
def main(tracking, **params):
    generate_pool(tracking, build(PoolSettings, params))


if __name__ == "__main__":
    main()
