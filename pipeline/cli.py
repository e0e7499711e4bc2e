"""What every entry point shares: its click options from the one definition, tracking set-up, errors,
pool loading."""

import errno
import functools
import signal
from pathlib import Path

import click

from models import TrainingInterrupted
from pipeline import shutdown
from pipeline.devices import rank
from pipeline.settings import OPTIONS
from pipeline.tracking.resume import mark_dead_runs
from pipeline.tracking.runs import local_copy
from pipeline.tracking.store import setup_tracking
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


class EntryCommand(click.Command):
    """A click command whose bad-option errors are one line: `Error: Invalid value for '--x': ...`."""

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as error:
            raise click.ClickException(error.format_message()) from None
