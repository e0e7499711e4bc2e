"""What every entry point shares: its click options from the one definition, tracking set-up, errors,
pool loading."""

import errno
import functools
import math
import signal
from pathlib import Path

import click

from models import TrainingInterrupted
from pipeline import shutdown
from pipeline.devices import rank
from pipeline.resume import mark_dead_runs
from pipeline.settings import OPTIONS
from pipeline.store import setup_tracking
from pipeline.tracking import local_copy
from pipeline.types import CommaList, InputError, Unset
from tasks import load_pool


def options(*names, sweep=False):
    """Decorator adding `--name` for each option name, in order, with its one type, default and help.

    `sweep=True` (for `main`): each option is optional (empty: the preset's value) and takes a comma
    list, whose values become an axis of the sweep's grid.
    """

    def apply(command):
        for name in reversed(names):
            spec = OPTIONS[name]
            if sweep:
                text = spec.help + " A comma list makes it an axis of the sweep."
                command = click.option(f"--{name}", type=Unset(CommaList(spec.type)), default=None, help=text)(command)
            else:
                command = click.option(
                    f"--{name}", type=spec.type, default=spec.default, show_default=True, help=spec.help
                )(command)
        return command

    return apply


def entry_point(command):
    """Set up tracking and pass its handle to `command` as `tracking`, with SIGTERM and SIGINT handled as
    pipeline/shutdown.py says (the runs end KILLED; exit status 128 + the signal's number).

    A user's bad value raises InputError, which click prints as one line; so does a store or artifact
    folder that cannot be written (full, read-only: `unwritable`); anything else (a bug, a numerical
    failure) keeps its traceback. The failing run itself is marked FAILED by `tracked_run`, with the reason.
    """

    @functools.wraps(command)
    def wrapper(**params):
        with shutdown.handling():
            try:
                tracking = setup_tracking()
                if rank() == 0:  # under torchrun, rank 0 alone writes to the store
                    mark_dead_runs(tracking)
                return command(tracking, **params)
            except TrainingInterrupted as stop:  # a signal during a training's step: checkpointed, KILLED
                if rank() == 0:
                    click.echo(f"{stop}: rerun the same command to resume", err=True)
                raise SystemExit(128 + (shutdown.requested() or signal.SIGTERM)) from None
            except KeyboardInterrupt as stop:  # at any other moment: the runs are KILLED at once
                signum = getattr(stop, "signum", signal.SIGINT)
                click.echo(
                    f"{stop or 'interrupted'}: the run is marked KILLED; rerun the same command to resume", err=True
                )
                raise SystemExit(128 + signum) from None
            except OSError as error:
                if not unwritable(error):
                    raise
                raise InputError(f"cannot use {error.filename or 'the store'}: {error.strerror}") from None

    return wrapper


# What a full, read-only or unreachable store or artifact folder raises: the machine's state, not a bug.
UNWRITABLE = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO, errno.ENOTDIR}


def unwritable(error):
    return isinstance(error, OSError) and error.errno in UNWRITABLE


def open_pool(uri, n_dims=None):
    """The TaskPool behind a pool file path or URI (a folder holding pool.npz also works)."""
    if not uri:
        raise InputError("pool is required: pass the pool file or its runs:/<run_id>/pool/pool.npz URI")
    with local_copy(uri, name="pool") as path:
        path = Path(path) / "pool.npz" if Path(path).is_dir() else path
        try:
            pool = load_pool(path)
        except ValueError as error:  # the file the user pointed at is not a good pool
            raise InputError(str(error)) from None
    if n_dims is not None and pool.n_dims != n_dims:
        raise InputError(f"pool has D={pool.n_dims} but n_dims={n_dims}")
    return pool


# Where M = inf sits on the paper's x-axis (log2 M) in the MLflow UI: two units right of the paper's
# largest pool, 2^20, as the sweep figure leaves two units after the largest M of its grid.
INF_LOG2_N_TASKS = 22.0


def log2_n_tasks(n_tasks):
    """log2 M, with M = inf at INF_LOG2_N_TASKS: a numeric task diversity the UI can order and space."""
    return INF_LOG2_N_TASKS if n_tasks == math.inf else math.log2(n_tasks)


def log_pool_size(run, n_tasks):
    """The metric log2_n_tasks on `run` (charts, scatter and parallel-coordinates plots of the MLflow UI
    then put runs where the paper's x-axis does) and, at M = inf, a tag saying where inf was drawn."""
    run.log_metrics({"log2_n_tasks": log2_n_tasks(n_tasks)})
    if n_tasks == math.inf:
        run.set_tag("log2_n_tasks", f"inf, drawn at {INF_LOG2_N_TASKS:g} (right of the largest finite M)")


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
