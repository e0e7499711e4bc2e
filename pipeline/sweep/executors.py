"""Executors run a sweep's work: `inline` one job after another in this process, `process` in worker
processes side by side, `ray` as Ray tasks on a local instance or a cluster (pipeline/sweep/ray_tasks.py).
An executor is a context manager (its workers live for the whole sweep) whose `map(function, tracking,
jobs, parent)` returns, in order, function(tracking, *job, parent=parent) for each job, or the exception
that job raised: every job runs even when another fails. `run_chains` uses it to prepare each distinct pool
and baselines once (chain.prepare), then to train every pack of points (chain.finish: one point, or
several as one ensemble), and reports every chain that failed at the end.

Each executor says how many torch threads a training gets when the `threads` option is 0: every core
(inline), cores / workers (process), or 1 (ray: each task declares the CPUs it uses), fixed for the whole
run so that a chain's numbers do not depend on what ran beside it. Small models train faster as two
single-thread processes than as one two-thread process (1.3x the model-steps/s on 2 cores), and a 2-thread
training collapses when anything else runs on the machine, so on a CPU `executor=auto` (the default) runs
one worker per core.
"""

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import click
import torch

from models import TrainingInterrupted
from pipeline import shutdown
from pipeline.bounds import pack_size
from pipeline.devices import device_of
from pipeline.packed import pack_key
from pipeline.settings import machine_cores
from pipeline.sweep.chain import finish, preparation, prepare
from pipeline.tracking.runs import first_line
from pipeline.types import InputError


def run_chains(executor, tracking, points, parent, packs, on_chains=None):
    """{stage: run id} per point: each distinct pool and baselines prepared once, then the trainings, one
    job per pack of point indices (`packs_of`: a pack of several trains as one ensemble). A chain that
    fails does not stop the others; once all are done, the failures are raised together (`failed`).
    `on_chains({point index: chain})` is called with the chains finished so far as each pack's are in."""
    distinct = {}
    for point in points:
        distinct.setdefault(preparation(point), point)
    outcomes = executor.map(prepare, tracking, [(p,) for p in distinct.values()], parent)
    prepared = dict(zip(distinct, outcomes, strict=True))
    failures = {}
    for index, point in enumerate(points):
        if isinstance(prepared[preparation(point)], BaseException):
            failures[index] = prepared[preparation(point)]
    packs = [[i for i in indices if i not in failures] for indices in packs]
    packs = [indices for indices in packs if indices]
    jobs = [([points[i] for i in indices], [prepared[preparation(points[i])] for i in indices]) for indices in packs]
    chains = {}

    def collect(k, done):
        nonlocal failures, chains
        if isinstance(done, BaseException):
            failures |= dict.fromkeys(packs[k], done)
        else:
            chains |= dict(zip(packs[k], done, strict=True))
            if on_chains is not None:
                on_chains(dict(chains))

    executor.map(finish, tracking, jobs, parent, on_done=collect)
    if failures:
        raise failed(points, failures)
    return [chains[i] for i in range(len(points))]


def failed(points, failures):
    """The error that ends a sweep whose chains {point index: exception} failed (each after the others
    were done): one failure as it is; several as one InputError listing each point and its error, unless
    one is a bug (not an InputError), which is then raised with its traceback."""
    for error in failures.values():
        if isinstance(error, TrainingInterrupted | KeyboardInterrupt):
            return error
    errors = list(dict.fromkeys(failures.values()))  # a pack's failure is shared by its points
    if len(errors) == 1:
        return errors[0]
    # A Ray task's error names the task first; the line shows what it raised (its `cause`).
    lines = [f"  {points[i].label}: {first_line(getattr(e, 'cause', None) or e)}" for i, e in sorted(failures.items())]
    listed = InputError(f"{len(failures)} of {len(points)} chains failed (the others finished):\n" + "\n".join(lines))
    bug = next((error for error in errors if not isinstance(error, InputError)), None)
    if bug is None:
        return listed
    click.echo(str(listed), err=True)
    return bug  # with its traceback


def packs_of(settings, pack):
    """The indices of `settings` (one TrainSettings per point) in groups of at most `pack` that can train as
    one ensemble (packed.pack_key), ordered by their first point (pack=1: grid order)."""
    groups = {}
    for index, one in enumerate(settings):
        groups.setdefault(pack_key(one), []).append(index)
    packs = [indices[i : i + pack] for indices in groups.values() for i in range(0, len(indices), pack)]
    return sorted(packs, key=lambda indices: indices[0])


def report(on_done, index, outcome):
    """Call `on_done(index, outcome)` (if given) as each job's outcome is collected, in the jobs' order."""
    if on_done is not None:
        on_done(index, outcome)


class Executor:
    """What the executors share: a context for their workers (none by default) and the pack size left
    to choose (bounds.pack_size, the device shared by `workers` processes)."""

    workers = 1

    def __init__(self, device):
        self.device = device

    def __enter__(self):
        return self

    def __exit__(self, *error):
        return False

    def pack_size(self, settings):
        return pack_size(settings, self.device, sharing=self.workers)


class InlineExecutor(Executor):
    """Jobs one after another in this process."""

    name = "inline"

    def threads(self):
        return machine_cores()

    def map(self, function, tracking, jobs, parent, on_done=None):
        outcomes = []
        for job in jobs:
            try:
                outcomes.append(function(tracking, *job, parent=parent))
            except TrainingInterrupted:
                raise
            except Exception as error:
                outcomes.append(error)
            report(on_done, len(outcomes) - 1, outcomes[-1])
        return outcomes


class ProcessExecutor(Executor):
    """Jobs in `workers` spawned processes at once, logging to the same store; one pool for the whole
    sweep, started again if a worker died (the pool is then broken). The workers end with this process,
    however it ends (pipeline/shutdown.py)."""

    name = "process"

    def __init__(self, device, workers):
        super().__init__(device)
        self.workers, self.pool = workers, None

    def __exit__(self, *error):
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
        return False

    def threads(self):
        return max(1, machine_cores() // self.workers)

    def map(self, function, tracking, jobs, parent, on_done=None):
        futures = self._submitted(function, tracking, jobs, parent)
        outcomes = []
        # While the workers run, a signal goes on to them (main: shutdown.forwarding): they checkpoint, end
        # their runs KILLED and exit; this process stops once their futures are done (or broken), and the
        # pool's shutdown (`__exit__`) waits for the workers themselves.
        with shutdown.deferred():
            for future in futures:
                error = future.exception()
                if isinstance(error, TrainingInterrupted):
                    raise error
                outcomes.append(future.result() if error is None else error)
                report(on_done, len(outcomes) - 1, outcomes[-1])
        shutdown.check()
        return outcomes

    def _submitted(self, function, tracking, jobs, parent):
        if self.pool is None:
            self._start(tracking)
        try:
            return [self.pool.submit(shutdown.run_job, function, tracking, *job, parent=parent) for job in jobs]
        except BrokenProcessPool:  # a worker died in an earlier map: a fresh pool
            self._start(tracking)
            return [self.pool.submit(shutdown.run_job, function, tracking, *job, parent=parent) for job in jobs]

    def _start(self, tracking):
        self.__exit__()
        context = multiprocessing.get_context("spawn")
        self.pool = ProcessPoolExecutor(
            self.workers, mp_context=context, initializer=_start_worker, initargs=(tracking, os.getpid())
        )


def _start_worker(tracking, parent_pid):
    """A worker process's set-up: the sweep's store, and the watch on its parent (pipeline/shutdown.py:
    the worker ends with the sweep, even one killed with SIGKILL)."""
    tracking.activate()
    shutdown.start_worker(parent_pid)


def make_executor(name, workers, device, trainings, ray_address=""):
    """The executor of the `executor`, `workers` and `ray_address` options (workers None: not given) for a
    sweep of `trainings` trainings on the `device` option (or a torch.device): auto is, on a CPU, one
    worker process per core and at most one per training (inline when that is one), and inline on CUDA,
    where one process packs the trainings; ray places them on a Ray instance (its `device` is the
    cluster's, not this machine's)."""
    if ray_address and name != "ray":
        raise InputError(f"ray_address={ray_address!r} needs executor=ray")
    if name == "ray":
        if workers is not None:
            raise InputError(
                f"workers={workers} does not apply to executor=ray: Ray runs as many chains at once as the "
                "cluster's CPUs and GPUs allow (set threads to give each training more CPUs)"
            )
        from pipeline.sweep.ray_tasks import RayExecutor  # Ray starts only for the sweeps that use it

        return RayExecutor(ray_address, device)
    device = device if isinstance(device, torch.device) else device_of(device)
    if name == "inline":
        if workers not in (None, 1):
            raise InputError(f"workers={workers} needs executor=process (executor=inline runs one chain at a time)")
        return InlineExecutor(device)
    if name == "auto" and workers is None and device.type == "cuda":
        return InlineExecutor(device)
    workers = workers or min(machine_cores(), trainings)
    return ProcessExecutor(device, workers) if name == "process" or workers > 1 else InlineExecutor(device)
