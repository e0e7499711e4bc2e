"""Benchmark (not in CI; part of `make bench`): the training step compiled by torch.compile (the `compile`
option; models.training.compiled) against the eager step, side by side in one run.

For the demo's small model (batch 64) and the base model (batch 256) at D = 8, K = 16, alone and as an
ensemble of 4 (models/ensemble.py): the compile time (the first compiled step), then steps/s of each way
in alternating rounds (eager, compiled, eager, ...) so that a change in the machine's load hits both
alike, each timed by its best round, and how far apart the two ways' weights end (max abs).
"""

import time

import click
import torch

from benchmarks.ensemble import N_DIMS, N_POINTS, stacked_batches
from models import PACKED, ModelConfig, build_model, make_optimizer, train_step
from models.strategies import compiled

SETTINGS = {"small": 64, "base": 256}


class Way:
    """One way of training S members (S = 1: the single model and torch AdamW; else an ensemble)."""

    def __init__(self, config, members, compile):
        self.members = members
        if members == 1:
            self.model = build_model(config, seed=0)
            self.optimizer = make_optimizer(self.model, lr=1e-4)
        else:
            self.models = [build_model(config, seed=s) for s in range(members)]
            self.optimizers = [make_optimizer(m, lr=1e-4) for m in self.models]
            self.model = PACKED.modules(self.models, False)[0]
        self.stepped = compiled(self.model) if compile else self.model

    def step(self, xs, ys):
        if self.members == 1:
            return train_step(self.stepped, self.optimizer, xs[0], ys[0], 1e-4)
        return PACKED.step(self.stepped, self.optimizers, xs, ys, [1e-4] * self.members)

    def rate(self, data):
        """Members x steps / s over `data`."""
        start = time.perf_counter()
        for xs, ys in data:
            loss = self.step(xs, ys)
        loss.sum().item()  # wait for the last step (a no-op on a CPU)
        return self.members * len(data) / (time.perf_counter() - start)


@click.command()
@click.option("--steps", default=30, show_default=True, help="Timed steps per round (base: a third).")
@click.option("--rounds", default=3, show_default=True, help="Alternating rounds of each way; the best counts.")
def main(steps, rounds):
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; members x steps / s, best of {rounds}\n")
    print("| model | members | compile time | eager | compiled | gain | weights apart |\n|---|---|---|---|---|---|---|")
    for size, batch_size in SETTINGS.items():
        config = ModelConfig.of_size(size, n_dims=N_DIMS, n_points=N_POINTS)
        n_steps = steps if size == "small" else max(3, steps // 3)
        for members in (1, 4):
            data = stacked_batches(members, batch_size, n_steps)
            eager, fast = Way(config, members, False), Way(config, members, True)
            eager.step(*data[0])
            start = time.perf_counter()
            fast.step(*data[0])  # compiles forward and backward
            compile_s = time.perf_counter() - start
            best = {"eager": 0.0, "compiled": 0.0}
            for _ in range(rounds):
                best["eager"] = max(best["eager"], eager.rate(data))
                best["compiled"] = max(best["compiled"], fast.rate(data))
            a, b = eager.model.state_dict(), fast.model.state_dict()
            apart = max((a[k] - b[k]).abs().max().item() for k in a)
            print(
                f"| {size}, batch {batch_size} | {members} | {compile_s:.0f} s | {best['eager']:.1f} | "
                f"{best['compiled']:.1f} | {best['compiled'] / best['eager']:.2f}x | {apart:.1e} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
