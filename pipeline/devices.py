"""Where a training runs: its torch device (the `device` option), its fixed CPU thread count, and its
rank under torchrun (pipeline/distributed.py)."""

import contextlib
import os
from concurrent.futures import ThreadPoolExecutor

import torch

from pipeline.types import InputError


def device_of(name):
    """The torch device called `name` (the `device` option: auto, cpu, cuda, cuda:N)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InputError(f"device={name!r} but CUDA is not available here")
        # Full float32 matmuls: the transformer is compared with float64 estimators.
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    return torch.device(name)


@contextlib.contextmanager
def fixed_threads(count):
    """torch's CPU thread count, fixed for a whole training (its float results depend on it), then restored."""
    if count < 1:
        raise ValueError(f"threads must be resolved to a positive count before training, got {count}")
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def in_threads(compute, items, workers):
    """[compute(item) for item in items], shared among `workers` threads that each run torch at one thread;
    the caller's thread count is restored after. Each core then works through whole items in its own
    caches, where torch's threads would split every operation of every item between the cores and meet
    at a barrier after each: for the many small operations of an evaluation chunk this is the faster way
    (docs/benchmarks.md). `compute` must be thread-safe (an eager model is, a compiled one is not) and set
    its own grad mode: torch's is per thread. An evaluation's predictions were measured equal bit for bit
    to those of two threads splitting each chunk (tests/test_evaluation.py, and the golden files at 1 and
    2 threads), though BLAS does not promise it."""
    before = torch.get_num_threads()
    pool = ThreadPoolExecutor(workers, initializer=torch.set_num_threads, initargs=(1,))
    try:
        return list(pool.map(compute, items))
    finally:  # on an error or an interrupt, the items not started are dropped, not computed
        pool.shutdown(cancel_futures=True)
        torch.set_num_threads(before)


def world_size():
    """The ranks of this training (torchrun's WORLD_SIZE; 1 outside torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank():
    """This process's rank (torchrun's RANK; 0 outside torchrun): rank 0 alone logs to MLflow."""
    return int(os.environ.get("RANK", "0"))


def cores_per_rank(cores):
    """The threads of a training left at threads=0: the `cores` of this machine shared by its ranks."""
    return max(1, cores // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
