"""Benchmark (not in CI; part of `make bench`): S models trained as one ensemble (models/ensemble.py)
against the same S models trained one after another, side by side in one run.

Reports members x steps / s of each way and their ratio, for S = 1, 2, 4, 5, 8 on the demo's small model
(batch 64) and the base model (batch 256), at D = 8, K = 16. The two ways alternate in rounds (ensemble,
sequential, ensemble, ...) so that a change in the machine's load hits both alike, and each is timed by
its best round. The batches are drawn before the timing; stacking the members' batches, which a packed
training does every step, is timed with the ensemble.
"""

import time

import click
import torch

from models import PACKED, ModelConfig, build_model, make_optimizer, train_step
from tasks import DataSettings, sample_batch

N_DIMS, N_POINTS = 8, 16
SETTINGS = {"small": (64, "demo model, batch 64"), "base": (256, "base model, batch 256")}


def stacked_batches(members, batch_size, steps, *, n_points=N_POINTS, n_dims=N_DIMS, device="cpu"):
    """Per step: xs (S, B, K, D), ys (S, B, K) of S members' own streams (fresh tasks), drawn at once for
    timings that leave the sampling out (benchmarks/compiled.py, benchmarks/gpu.py)."""
    specs = [DataSettings(batch_size, n_points, n_dims, 0.5, 1.0, 101 + s, 102 + s, 103 + s) for s in range(members)]
    data = []
    for step in range(steps):
        drawn = [sample_batch(spec, step, pool=None, task_scale=1.0, device=device) for spec in specs]
        data.append((torch.stack([xs for xs, _, _ in drawn]), torch.stack([ys for _, _, ys in drawn])))
    return data


def batches(members, batch_size, steps):
    """Each member's own batches (its own seeds, fresh tasks), drawn once outside the timed loops."""
    specs = [DataSettings(batch_size, N_POINTS, N_DIMS, 0.5, 1.0, 101 + s, 102 + s, 103 + s) for s in range(members)]
    return [[sample_batch(spec, step, pool=None, task_scale=1.0)[::2] for step in range(steps)] for spec in specs]


def sequential_rate(config, data):
    """Members x steps / s of training each member alone, one after another."""
    start = time.perf_counter()
    for s, member_batches in enumerate(data):
        model = build_model(config, seed=s)
        optimizer = make_optimizer(model, lr=1e-4)
        for xs, ys in member_batches:
            train_step(model, optimizer, xs, ys, 1e-4)
    return len(data) * len(data[0]) / (time.perf_counter() - start)


def ensemble_rate(config, data):
    """Members x steps / s of training the members as one ensemble."""
    start = time.perf_counter()
    models = [build_model(config, seed=s) for s in range(len(data))]
    optimizers, lr = [make_optimizer(m, lr=1e-4) for m in models], [1e-4] * len(data)
    ensemble = PACKED.modules(models, False)[0]
    for step in range(len(data[0])):
        xs = torch.stack([member[step][0] for member in data])
        ys = torch.stack([member[step][1] for member in data])
        PACKED.step(ensemble, optimizers, xs, ys, lr)
    return len(data) * len(data[0]) / (time.perf_counter() - start)


@click.command()
@click.option("--members", default="1,2,4,5,8", show_default=True, help="Ensemble sizes S.")
@click.option("--steps", default=30, show_default=True, help="Timed steps per member and round (base: a third).")
@click.option("--rounds", default=3, show_default=True, help="Alternating rounds of each way; the best counts.")
def main(members, steps, rounds):
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; members x steps / s, best of {rounds}\n")
    print("| model | S | ensemble | S sequential | ratio |\n|---|---|---|---|---|")
    for size, (batch_size, label) in SETTINGS.items():
        config = ModelConfig.of_size(size, n_dims=N_DIMS, n_points=N_POINTS)
        n_steps = steps if size == "small" else max(3, steps // 3)
        for count in (int(v) for v in members.split(",")):
            data = batches(count, batch_size, n_steps)
            ensemble_rate(config, [m[:2] for m in data]), sequential_rate(config, [m[:2] for m in data])  # warm-up
            best = {"ensemble": 0.0, "sequential": 0.0}
            for _ in range(rounds):
                best["ensemble"] = max(best["ensemble"], ensemble_rate(config, data))
                best["sequential"] = max(best["sequential"], sequential_rate(config, data))
            together, apart = best["ensemble"], best["sequential"]
            print(f"| {label} | {count} | {together:.1f} | {apart:.1f} | {together / apart:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
