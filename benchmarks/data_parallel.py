"""Benchmark (not in CI; part of `make bench`): one training on this machine's cores as torchrun's data
parallelism would run it (pipeline/distributed.py: N ranks of one thread, each on 1/N of the batch, DDP
over gloo) against one process at N threads on the whole batch, side by side in one run.

Reports steps/s of each way and their ratio for the demo's small model (batch 64) and the base model
(batch 256) at D = 8, K = 16. The ways alternate in rounds (one process, ranks, one process, ...), each
timed by its best round after a warm-up; the batches are drawn before the timing.
"""

import os
import socket
import time

import click
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from benchmarks.ensemble import N_DIMS, N_POINTS, SETTINGS, batches
from models import ModelConfig, build_model, make_optimizer, train_step
from pipeline.settings import machine_cores

WARMUP = 5


def rate(size, batch_size, steps, rank=0, world=1):
    """Steps/s of the `size` model on this rank's 1/world share of each batch (DDP when world > 1)."""
    model = build_model(ModelConfig.of_size(size, n_dims=N_DIMS, n_points=N_POINTS), seed=0)
    optimizer = make_optimizer(model, lr=1e-4)
    stepped = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    rows = slice(rank * batch_size // world, (rank + 1) * batch_size // world)
    data = [(xs[rows], ys[rows]) for xs, ys in batches(1, batch_size, WARMUP + steps)[0]]
    for xs, ys in data[:WARMUP]:
        train_step(stepped, optimizer, xs, ys, 1e-4)
    if world > 1:
        dist.barrier()
    start = time.perf_counter()
    for xs, ys in data[WARMUP:]:
        train_step(stepped, optimizer, xs, ys, 1e-4)
    if world > 1:
        dist.barrier()
    return steps / (time.perf_counter() - start)


def _rank(rank, world, port, size, batch_size, steps, results):
    os.environ |= {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        measured = rate(size, batch_size, steps, rank, world)
        if rank == 0:
            results.put(measured)
    finally:
        dist.destroy_process_group()


def ranks_rate(size, batch_size, steps, world):
    with socket.socket() as probe:  # a free port for the group's rendezvous
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    context = mp.get_context("spawn")
    results = context.Queue()
    mp.start_processes(_rank, (world, port, size, batch_size, steps, results), nprocs=world, start_method="spawn")
    return results.get()


@click.command()
@click.option("--steps", default=40, show_default=True, help="timed steps per round")
@click.option("--rounds", default=3, show_default=True)
def main(steps, rounds):
    world = machine_cores()
    print(f"torch {torch.__version__}; {world} cores: {world} ranks x 1 thread against 1 process x {world} threads")
    print("| model | batch | 1 process | ranks (DDP) | ranks / 1 process |\n|---|---|---|---|---|")
    for size, (batch_size, _) in SETTINGS.items():
        single, ranked = [], []
        for _ in range(rounds):
            torch.set_num_threads(world)
            single.append(rate(size, batch_size, steps))
            ranked.append(ranks_rate(size, batch_size, steps, world))
        best, best_ranked = max(single), max(ranked)
        print(f"| {size} | {batch_size} | {best:.1f} steps/s | {best_ranked:.1f} steps/s | {best_ranked / best:.2f}x |")


if __name__ == "__main__":
    main()
