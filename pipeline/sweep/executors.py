"""Executors run a sweep's work: `inline` one job after another in this process, `process` in worker
processes side by side. `map(function, tracking, jobs, parent)` returns function(tracking, *job,
parent=parent) for each job, in order; `run_chains` uses it to prepare each distinct pool and baselines
once (chain.prepare), then to train every point (chain.finish). A cluster executor or a packed-ensemble
runner plugs in here.

Each executor says how many torch threads a training gets when the `threads` option is 0: every core
(inline), or cores / workers (process), fixed for the whole run so that a chain's numbers do not depend
on what ran beside it. Small models train faster as two single-thread processes than as one two-thread
process.
"""

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

from pipeline.settings import machine_cores
from pipeline.sweep.chain import finish, preparation, prepare


def run_chains(executor, tracking, points, parent):
    """{stage: run id} per point: each distinct pool and baselines prepared once, then every training."""
    distinct = {}
    for point in points:
        distinct.setdefault(preparation(point), point)
    prepared = dict(
        zip(distinct, executor.map(prepare, tracking, [(p,) for p in distinct.values()], parent), strict=True)
    )
    return executor.map(finish, tracking, [(point, prepared[preparation(point)]) for point in points], parent)


class InlineExecutor:
    """Jobs one after another in this process."""

    def threads(self):
        return machine_cores()

    def map(self, function, tracking, jobs, parent):
        return [function(tracking, *job, parent=parent) for job in jobs]


class ProcessExecutor:
    """Jobs in `workers` spawned processes at once, logging to the same store."""

    def __init__(self, workers):
        self.workers = workers

    def threads(self):
        return max(1, machine_cores() // self.workers)

    def map(self, function, tracking, jobs, parent):
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(self.workers, mp_context=context, initializer=tracking.activate) as pool:
            futures = [pool.submit(function, tracking, *job, parent=parent) for job in jobs]
            return [future.result() for future in futures]


def make_executor(name, workers):
    """The executor called `name` (the `executor` option)."""
    return ProcessExecutor(workers) if name == "process" else InlineExecutor()
