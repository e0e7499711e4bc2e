"""Benchmark (not in CI; `make bench`): training steps/s of the small and base transformers (D = 8,
K = 16, batch 256), printed as a table. The estimators have their own: benchmarks/estimators.py."""

import time

import click
import numpy as np
import torch

from models import ModelConfig, build_model, make_optimizer, train_step
from tasks import DataSettings, make_pool, sample_batch

N_DIMS, N_POINTS, NOISE = 8, 16, 0.5


def training_rate(size, batch_size, steps):
    model = build_model(ModelConfig.of_size(size, n_dims=N_DIMS, n_points=N_POINTS), seed=0)
    optimizer = make_optimizer(model, lr=1e-4)
    spec = DataSettings(batch_size, N_POINTS, N_DIMS, NOISE, 1.0, 101, 102, 103)
    pool = torch.from_numpy(make_pool(1024, N_DIMS, seed=0, task_scale=1.0).tasks)
    for step in range(3):  # warm-up: allocator, first-call overheads
        xs, _, ys = sample_batch(spec, step, pool=pool, task_scale=1.0)
        train_step(model, optimizer, xs, ys, 1e-4)
    start = time.perf_counter()
    for step in range(steps):
        xs, _, ys = sample_batch(spec, step, pool=pool, task_scale=1.0)
        train_step(model, optimizer, xs, ys, 1e-4)
    return steps / (time.perf_counter() - start)


@click.command()
@click.option("--train-steps", default=20, show_default=True, help="Timed steps per model size.")
def main(train_steps):
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; numpy {np.__version__}\n")
    print("| model | batch | steps/s |\n|---|---|---|")
    for size, batch_size, steps in (("small", 256, 3 * train_steps), ("base", 256, train_steps)):
        print(f"| {size} | {batch_size} | {training_rate(size, batch_size, steps):.2f} |", flush=True)


if __name__ == "__main__":
    main()
