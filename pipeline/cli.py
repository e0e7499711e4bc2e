"""What every entry point shares: tracking set-up, one-line errors, pool loading."""

import functools
from pathlib import Path

import click

from pipeline.tracking import local_copy, setup_tracking
from tasks import load_pool


def entry_point(command):
    """Set up tracking, then turn a ValueError into a one-line `Error: ...` and exit status 1.

    The failing run itself is marked FAILED by `tracked_run` before the error gets here.
    """

    @functools.wraps(command)
    def wrapper(**params):
        setup_tracking()
        try:
            return command(**params)
        except ValueError as error:
            raise click.ClickException(str(error)) from None

    return wrapper


def open_pool(uri, n_dims=None):
    """The TaskPool behind a pool file path or URI (a folder holding pool.npz also works)."""
    if not uri:
        raise ValueError("pool is required: pass the pool file or its runs:/<run_id>/pool/pool.npz URI")
    with local_copy(uri, name="pool") as path:
        path = Path(path) / "pool.npz" if Path(path).is_dir() else path
        pool = load_pool(path)
    if n_dims is not None and pool.n_dims != n_dims:
        raise ValueError(f"pool has D={pool.n_dims} but n_dims={n_dims}")
    return pool


def pool_label(n_tasks):
    """m1024, minf: used in run names and registry aliases."""
    return "minf" if n_tasks == float("inf") else f"m{n_tasks}"


class EntryCommand(click.Command):
    """A click command whose bad-option errors are one line: `Error: Invalid value for '--x': ...`."""

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as error:
            raise click.ClickException(error.format_message()) from None
