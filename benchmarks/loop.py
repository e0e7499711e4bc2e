"""Benchmark (not in CI): steps/s of the whole training loop, `models.train` (the schedule, the batches, the
steps, the loss logged every LOG_EVERY steps, the stop check after each step; no evaluation), for one model at
one thread, D = 8, K = 16. It uses only what every version of the loop takes, so that two trees can be timed
side by side: `PYTHONPATH=<tree> python benchmarks/loop.py small 64 300` under `farm-bench --vs`
(docs/benchmarks.md)."""

import sys
import time

import torch

from models import ModelConfig, OptimSettings, build_model, make_optimizer, train
from tasks import DataSettings, make_pool, sample_batch


def main(size="small", batch_size=64, steps=300):
    torch.set_num_threads(1)
    model = build_model(ModelConfig.of_size(size, n_dims=8, n_points=16), seed=0)
    optimizer = make_optimizer(model, lr=1e-4)
    spec = DataSettings(batch_size, 16, 8, 0.5, 1.0, 101, 102, 103)
    pool = torch.from_numpy(make_pool(1024, 8, seed=0, task_scale=1.0).tasks)
    drawn = [sample_batch(spec, step, pool=pool, task_scale=1.0) for step in range(steps)]
    optim = OptimSettings(lr=1e-4, schedule="triangle", warmup_steps=steps // 4, total_steps=steps, weight_decay=0.0)
    start = time.perf_counter()
    batches = lambda step: (drawn[step][0], drawn[step][2])  # noqa: E731 (xs, ys: the sampler also gives ws)
    train(model, optimizer, optim, batches=batches, evaluate=lambda m: {}, eval_every=steps)
    print(f"{size}, batch {batch_size}: {steps / (time.perf_counter() - start):.2f} steps/s")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
