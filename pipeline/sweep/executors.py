"""Executors run a sweep's work: `inline` one job after another in this process, `process` in worker
processes side by side. `map(function, tracking, jobs, parent)` returns function(tracking, *job,
parent=parent) for each job, in order; `run_chains` uses it to prepare each distinct pool and baselines
once (chain.prepare), then to train every pack of points (chain.finish: one point, or several as one
ensemble). A cluster executor plugs in here.

Each executor says how many torch threads a training gets when the `threads` option is 0: every core
(inline), or cores / workers (process), fixed for the whole run so that a chain's numbers do not depend
on what ran beside it. Small models train faster as two single-thread processes than as one two-thread
process (1.3x the model-steps/s on 2 cores), and a 2-thread training collapses when anything else runs
on the machine, so on a CPU `executor=auto` (the default) runs one worker per core.
"""

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

from pipeline.packed import pack_key
from pipeline.settings import machine_cores
from pipeline.sweep.chain import finish, preparation, prepare
from pipeline.types import InputError


def run_chains(executor, tracking, points, parent, packs):
    """{stage: run id} per point: each distinct pool and baselines prepared once, then the trainings, one
    job per pack of point indices (`packs_of`: a pack of several trains as one ensemble)."""
    distinct = {}
    for point in points:
        distinct.setdefault(preparation(point), point)
    prepared = dict(
        zip(distinct, executor.map(prepare, tracking, [(p,) for p in distinct.values()], parent), strict=True)
    )
    ready = [prepared[preparation(point)] for point in points]
    jobs = [([points[i] for i in indices], [ready[i] for i in indices]) for indices in packs]
    chains = {}
    for indices, done in zip(packs, executor.map(finish, tracking, jobs, parent), strict=True):
        chains |= dict(zip(indices, done, strict=True))
    return [chains[i] for i in range(len(points))]


def packs_of(settings, pack):
    """The indices of `settings` (one TrainSettings per point) in groups of at most `pack` that can train as
    one ensemble (packed.pack_key), ordered by their first point (pack=1: grid order)."""
    groups = {}
    for index, one in enumerate(settings):
        groups.setdefault(pack_key(one), []).append(index)
    packs = [indices[i : i + pack] for indices in groups.values() for i in range(0, len(indices), pack)]
    return sorted(packs, key=lambda indices: indices[0])


class InlineExecutor:
    """Jobs one after another in this process."""

    name, workers = "inline", 1

    def threads(self):
        return machine_cores()

    def map(self, function, tracking, jobs, parent):
        return [function(tracking, *job, parent=parent) for job in jobs]


class ProcessExecutor:
    """Jobs in `workers` spawned processes at once, logging to the same store."""

    name = "process"

    def __init__(self, workers):
        self.workers = workers

    def threads(self):
        return max(1, machine_cores() // self.workers)

    def map(self, function, tracking, jobs, parent):
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(self.workers, mp_context=context, initializer=tracking.activate) as pool:
            futures = [pool.submit(function, tracking, *job, parent=parent) for job in jobs]
            return [future.result() for future in futures]


def make_executor(name, workers, device, trainings):
    """The executor of the `executor` and `workers` options (workers None: not given) for a sweep of
    `trainings` trainings on `device`: auto is, on a CPU, one worker process per core and at most one per
    training (inline when that is one), and inline on CUDA, where one process packs the trainings."""
    if name == "inline":
        if workers not in (None, 1):
            raise InputError(f"workers={workers} needs executor=process (executor=inline runs one chain at a time)")
        return InlineExecutor()
    if name == "auto" and workers is None and device.type == "cuda":
        return InlineExecutor()
    workers = workers or min(machine_cores(), trainings)
    return ProcessExecutor(workers) if name == "process" or workers > 1 else InlineExecutor()
