"""Benchmark (not in CI; `make bench`): training steps/s of the small and base transformers (D = 8,
K = 16), with today's pruned forward (models/transformer.py) and with the whole network at every token
(the forward before, benchmarks/evaluation.py WholeNetwork), side by side: rounds alternate the two, each
timed by its best round. The estimators have their own: benchmarks/estimators.py."""

import time

import click
import numpy as np
import torch

from benchmarks.evaluation import WholeNetwork
from models import ModelConfig, build_model, make_optimizer, train_step
from tasks import DataSettings, make_pool, sample_batch

N_DIMS, N_POINTS, NOISE = 8, 16, 0.5


ROUNDS = 3


def training_rates(size, batch_size, steps):
    """Steps/s of the whole and the pruned forward, best of ROUNDS alternating rounds of `steps` steps."""
    model = build_model(ModelConfig.of_size(size, n_dims=N_DIMS, n_points=N_POINTS), seed=0)
    optimizer = make_optimizer(model, lr=1e-4)
    ways = {"whole": WholeNetwork(model), "pruned": model}
    spec = DataSettings(batch_size, N_POINTS, N_DIMS, NOISE, 1.0, 101, 102, 103)
    pool = torch.from_numpy(make_pool(1024, N_DIMS, seed=0, task_scale=1.0).tasks)
    batches = [sample_batch(spec, step, pool=pool, task_scale=1.0) for step in range(steps)]
    for way in ways.values():  # warm-up: allocator, first-call overheads
        for xs, _, ys in batches[:3]:
            train_step(way, optimizer, xs, ys, 1e-4)
    rates = {name: 0.0 for name in ways}
    for _ in range(ROUNDS):
        for name, way in ways.items():
            start = time.perf_counter()
            for xs, _, ys in batches:
                train_step(way, optimizer, xs, ys, 1e-4)
            rates[name] = max(rates[name], steps / (time.perf_counter() - start))
    return rates


@click.command()
@click.option("--train-steps", default=20, show_default=True, help="Timed steps per model size.")
def main(train_steps):
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; numpy {np.__version__}\n")
    print("| model | batch | whole network, steps/s | pruned, steps/s | speed-up |\n|---|---|---|---|---|")
    cases = (("small", 64, 3 * train_steps), ("small", 256, train_steps), ("base", 256, train_steps))
    for size, batch_size, steps in cases:
        rates = training_rates(size, batch_size, steps)
        ratio = rates["pruned"] / rates["whole"]
        print(f"| {size} | {batch_size} | {rates['whole']:.2f} | {rates['pruned']:.2f} | {ratio:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
