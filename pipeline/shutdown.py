"""Honest shutdown: what SIGTERM and SIGINT do in an entry point, and sweep workers that end with their sweep.

Signals reach a process in its main thread, so the state here is the process's:
- Outside a deferred section the first SIGTERM or SIGINT raises `Interrupted` (a KeyboardInterrupt) at
  once: the open runs end KILLED with the reason as a tag (pipeline/tracking/runs.py) and the entry point
  exits 128 + the signal's number. Estimators, evaluation, registration and a sweep between its stages
  all stop so; their worker threads give up within a fraction of a second (baselines/dmmse.py,
  pipeline/devices.py `in_threads`).
- Inside `deferred()` (a training's steps; a sweep waiting for its worker processes) the signal is only
  recorded: a training loop asks `requested()` after each step, writes a checkpoint and raises
  models.TrainingInterrupted, so no step is lost; a sweep's wait ends once its workers have stopped.
  A training's evaluation is `interruptible` again: it can take longer than a scheduler's grace period.
- A call to the tracking store is `atomic()`: a signal inside waits for the call to end (an exception
  raised inside SQLAlchemy can leave a SQLite transaction open, and the store locked for every later
  write, the KILLED mark included), then raises. The writes that end a run are `masked()`. Off the main
  thread (a run's heartbeat thread) these sections do nothing: signals reach the main thread only.
- Later signals are recorded and nothing more: raising again would cut short the clean-up the first one
  started (marking the runs KILLED).
- With `forwarding()` (a sweep's main process) each signal also goes to the worker processes.

A sweep's worker process (`start_worker`) watches its parent: once the parent is gone, even by kill -9,
it interrupts its job as SIGTERM would (a training checkpoints, its run ends KILLED and a rerun resumes
it), takes no queued job, and exits. A signal to a worker (its sweep's, passed on; or anyone's) ends its
job the same way, and the worker exits after it.
"""

import contextlib
import functools
import multiprocessing
import os
import signal
import sys
import threading
import time

SIGNALS = (signal.SIGTERM, signal.SIGINT)
WATCH_S = 0.5  # seconds between a worker's looks at its parent
ORPHAN_GRACE_S = 120  # the longest a stopped worker's job gets to end its runs before the worker exits


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGINT (`signum`) stopped what the process was doing."""

    def __init__(self, signum):
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum

    def __reduce__(self):  # pickled from a worker process: rebuilt from the number, not the message
        return type(self), (self.signum,)


class _State:
    """The process's signal handling (one per process: signals are the process's)."""

    def __init__(self):
        self.signal = None  # the first SIGTERM or SIGINT received since the handlers were installed
        self.pending = False  # it came inside a deferred section and has not been raised yet
        self.deferring = 0  # > 0 inside deferred(), masked() or atomic(): record, do not raise
        self.forward = False  # pass signals on to the worker processes
        self.installed = 0  # nesting depth of handling()
        self.busy = threading.Lock()  # held by a worker process while it runs a job

    def reset(self):
        self.signal, self.pending, self.deferring, self.forward = None, False, 0, False

    def handle(self, signum, frame):
        first = self.signal is None
        self.signal = self.signal or signum
        if self.forward:
            for child in multiprocessing.active_children():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signum)
        if first and self.deferring:
            self.pending = True
        elif first:
            raise Interrupted(signum)


STATE = _State()


def requested():
    """The signal number of the stop asked for, or None."""
    return STATE.signal


def check():
    """Raise Interrupted for a signal recorded inside a deferred section and not raised yet (once)."""
    if STATE.pending:
        STATE.pending = False
        raise Interrupted(STATE.signal)


@contextlib.contextmanager
def handling():
    """SIGTERM and SIGINT handled as this module says, for the block (nested blocks share the outer one's
    state; the outermost restores the handlers it replaced). Only the main thread can install handlers;
    elsewhere (a thread of a test, a Ray task's thread) the block runs with the handlers there are."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if STATE.installed == 0:
        STATE.reset()
        previous = {signum: signal.signal(signum, STATE.handle) for signum in SIGNALS}
    STATE.installed += 1
    try:
        yield
    finally:
        STATE.installed -= 1
        if STATE.installed == 0:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            STATE.reset()


@contextlib.contextmanager
def deferred():
    """A signal inside the block is recorded, not raised (the code inside asks `requested()` at safe
    points), and raised at its end if the block did not act on it; no block starts once a stop was asked
    for (it raises at its start)."""
    if STATE.signal is not None:
        STATE.pending = False
        raise Interrupted(STATE.signal)
    STATE.deferring += 1
    try:
        yield
    finally:
        STATE.deferring -= 1
    check()


@contextlib.contextmanager
def atomic():
    """A call that must not be cut in half (a write to or read from the tracking store: an exception raised
    inside SQLAlchemy can leave a SQLite transaction open, and the store locked for every later write): a
    signal inside waits for the block to end, and is raised then unless a deferred section around it
    takes care of it."""
    with masked():
        yield
    if threading.current_thread() is threading.main_thread() and not STATE.deferring:
        check()


@contextlib.contextmanager
def masked():
    """A signal inside the block is recorded, and nothing is checked: for the writes that end a run, which
    an interrupt must not cut in half (the caller raises what it was raising, or checks afterwards)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    STATE.deferring += 1
    try:
        yield
    finally:
        STATE.deferring -= 1


def interruptible(function):
    """`function` with signals raising at once while it runs, even inside a deferred section (and at its
    start when one was recorded before)."""

    @functools.wraps(function)
    def run(*args, **kwargs):
        check()
        depth, STATE.deferring = STATE.deferring, 0
        try:
            return function(*args, **kwargs)
        finally:
            STATE.deferring = depth

    return run


@contextlib.contextmanager
def forwarding():
    """Each signal inside the block also goes to this process's worker processes."""
    before, STATE.forward = STATE.forward, True
    try:
        yield
    finally:
        STATE.forward = before


# ---- worker processes of a sweep

_LEAVING = threading.Event()


def start_worker(parent_pid):
    """In a new worker process (its pool's initializer): the handlers installed, idle counting as deferred
    (a signal between jobs is recorded: the worker then exits, and a job picked up meanwhile raises it at
    its start), and a thread that stops the worker once its parent `parent_pid` is gone or a signal came."""
    STATE.installed, STATE.deferring = 1, 1
    for signum in SIGNALS:
        signal.signal(signum, STATE.handle)
    # Spawned by the sweep's process: another parent already means it died while this one started.
    threading.Thread(target=_watch, args=(parent_pid,), name="watch-parent", daemon=True).start()


def run_job(function, *args, **kwargs):
    """function(*args, **kwargs) as a worker's job: signals raise in it as in an entry point; refused (the
    worker exits) once the worker is leaving, so no queued job starts after the sweep died."""
    with STATE.busy:
        if _LEAVING.is_set():
            os._exit(1)
        STATE.deferring -= 1
        try:
            check()  # a signal that came while idle
            return function(*args, **kwargs)
        finally:
            STATE.deferring += 1


def _watch(parent_pid):
    """The worker's exit: once its parent is gone (even killed with SIGKILL, which no process can catch),
    its job is stopped as SIGTERM stops it (a training checkpoints, its run ends KILLED); once a signal
    came, its job stops by itself. Either way the worker exits when the job is over (or after
    ORPHAN_GRACE_S), rather than wait for jobs that will not come."""
    while os.getppid() == parent_pid and STATE.signal is None:
        time.sleep(WATCH_S)
    _LEAVING.set()
    if os.getppid() != parent_pid and STATE.busy.locked():
        os.kill(os.getpid(), signal.SIGTERM)
    if STATE.busy.acquire(timeout=ORPHAN_GRACE_S):
        time.sleep(WATCH_S)  # the job's result on its way to a parent that is still there
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(1)
