"""Executors run a sweep's chains: `inline` one after another in this process, `process` in worker
processes side by side. Each takes the tracking store, the points and the parent run id, and returns
{stage: run id} per point, in order. A cluster executor or a packed-ensemble runner plugs in here.

Threads (process executor): each worker starts with cores / workers torch threads; at every evaluation
a training takes cores / (chains running now), so a chain that outlives the others takes their cores.
Small models train faster as two single-thread processes than as one two-thread process.
"""

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

import torch

from models import Hook
from pipeline.sweep.chain import run_chain


class InlineExecutor:
    """Chains one after another in this process."""

    def map(self, tracking, points, parent):
        return [run_chain(tracking, point, parent) for point in points]


class ProcessExecutor:
    """Chains in `workers` spawned processes at once, logging to the same store, nested under `parent`."""

    def __init__(self, workers):
        self.workers = workers

    def map(self, tracking, points, parent):
        context = multiprocessing.get_context("spawn")
        with context.Manager() as manager:
            running, lock = manager.Value("i", 0), manager.Lock()
            init = (tracking, max(1, _cores() // self.workers))
            with ProcessPoolExecutor(
                self.workers, mp_context=context, initializer=_start_worker, initargs=init
            ) as pool:
                futures = [pool.submit(_chain, tracking, point, parent, running, lock) for point in points]
                return [future.result() for future in futures]


def make_executor(name, workers):
    """The executor called `name` (the `executor` option)."""
    return ProcessExecutor(workers) if name == "process" else InlineExecutor()


class ThreadBalance(Hook):
    """At each evaluation, take an even share of the cores among the chains running now."""

    def __init__(self, running):
        self.running = running

    def on_eval(self, step, curves):
        torch.set_num_threads(max(1, _cores() // max(1, self.running.value)))


def _start_worker(tracking, threads):
    tracking.activate()
    torch.set_num_threads(threads)


def _chain(tracking, point, parent, running, lock):
    with lock:
        running.value += 1
    try:
        return run_chain(tracking, point, parent, hooks=[ThreadBalance(running)])
    finally:
        with lock:
            running.value -= 1


def _cores():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
