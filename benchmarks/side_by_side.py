"""Benchmark (not in CI): this tree's training loop against another commit's, side by side in one process.

`python -m benchmarks.side_by_side --against b915a28` extracts that commit's `models` package (git show)
into a temporary folder under the name `old_models`, its imports renamed, and times the whole loop of each
tree (schedule, batches, steps, the loss logged every 50 steps, the stop check; no evaluation, no
checkpoint) on the same batches, drawn before the timing, at one thread, D = 8, K = 16:
- one small model at batch 64 and one base model at batch 256 (`models.train` in both trees);
- S small models packed at batch 64 (this tree: `models.train_members`, the Packed strategy; before issue
  25's item 3: `EnsembleRegressor`, `EnsembleAdamW` and `train_ensemble`).
The two trees alternate chunk by chunk (old first in even rounds, new first in odd ones), so a change in the
machine's load hits both alike; it prints each tree's median steps/s, the median of the rounds' new/old
ratios with its 95% bootstrap interval (over rounds; seeded), and the lowest and highest ratio.
"""

import importlib
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
import numpy as np
import torch

import models
from tasks import DataSettings, make_pool, sample_batch

ROOT = Path(__file__).resolve().parents[1]


def old_models(commit, folder):
    """That commit's `models` package, imported as `old_models` from `folder`."""
    names = subprocess.run(
        ["git", "-C", str(ROOT), "ls-tree", "--name-only", commit, "models/"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    package = Path(folder, "old_models")
    package.mkdir()
    for name in names:
        text = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{commit}:{name}"], check=True, capture_output=True
        ).stdout
        text = re.sub(rb"\bmodels\.", b"old_models.", re.sub(rb"from models import", b"from old_models import", text))
        Path(package, Path(name).name).write_bytes(text)
    sys.path.insert(0, str(folder))
    return importlib.import_module("old_models")


def drawn(members, batch_size, steps):
    """Per member, `steps` batches (xs, ys) of its own stream (a pool of 1024 tasks)."""
    pool = torch.from_numpy(make_pool(1024, 8, seed=0, task_scale=1.0).tasks)
    specs = [DataSettings(batch_size, 16, 8, 0.5, 1.0, 101 + s, 102 + s, 103 + s) for s in range(members)]
    return [[sample_batch(spec, step, pool=pool, task_scale=1.0)[::2] for step in range(steps)] for spec in specs]


def single(package, size, data):
    """Seconds of `package`'s loop over data[0], one model."""
    model = package.build_model(package.ModelConfig.of_size(size, n_dims=8, n_points=16), seed=0)
    optimizer = package.make_optimizer(model, lr=1e-4)
    steps = len(data[0])
    optim = package.OptimSettings(
        lr=1e-4, schedule="triangle", warmup_steps=steps // 4, total_steps=steps, weight_decay=0
    )
    start = time.perf_counter()
    package.train(model, optimizer, optim, batches=lambda step: data[0][step], evaluate=lambda m: {}, eval_every=steps)
    return time.perf_counter() - start


def stacked(data, step, members):
    return tuple(torch.stack([data[i][step][j] for i in members]) for j in (0, 1))


def packed(package, size, data):
    """Seconds of `package`'s loop over the members' data, packed into one ensemble."""
    config = package.ModelConfig.of_size(size, n_dims=8, n_points=16)
    built = [package.build_model(config, seed=s) for s in range(len(data))]
    steps = len(data[0])
    optim = package.OptimSettings(
        lr=1e-4, schedule="triangle", warmup_steps=steps // 4, total_steps=steps, weight_decay=0
    )
    common = {"batches": lambda step, members: stacked(data, step, members), "eval_every": steps}
    if package is models:
        members = [models.Member(m, models.make_optimizer(m, lr=1e-4), optim) for m in built]
        start = time.perf_counter()
        models.train_members(members, evaluate=lambda i, m: {}, strategy=models.PACKED, **common)
        return time.perf_counter() - start
    ensemble_module = importlib.import_module("old_models.ensemble")
    ensemble = ensemble_module.EnsembleRegressor.of(built)
    optimizer = ensemble_module.EnsembleAdamW(ensemble, [0.0] * len(built))
    loop = importlib.import_module("old_models.ensemble_training").train_ensemble
    start = time.perf_counter()
    loop(ensemble, optimizer, [optim] * len(built), evaluate=lambda i, m: {}, hooks=[[] for _ in built], **common)
    return time.perf_counter() - start


CASES = {"small": (single, "small", 1, 64), "base": (single, "base", 1, 256), "pack": (packed, "small", 5, 64)}


@click.command()
@click.option("--against", default="b915a28", show_default=True, help="The commit whose loop is the reference.")
@click.option("--cases", default="small,base,pack", show_default=True, help=f"Which of {sorted(CASES)}.")
@click.option("--steps", default="200,40,60", show_default=True, help="Steps per chunk, per case.")
@click.option("--rounds", default=9, show_default=True, help="Alternating rounds of each tree.")
def main(against, cases, steps, rounds):
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        old = old_models(against, folder)
        print(f"torch {torch.__version__}, 1 thread; this tree against {against}, {rounds} alternating rounds\n")
        print("| case | steps/chunk | old steps/s | new steps/s | new/old median [95%] | lowest-highest |")
        print("|---|---|---|---|---|---|")
        for case, n_steps in zip(cases.split(","), (int(s) for s in steps.split(",")), strict=False):
            run, size, members, batch_size = CASES[case]
            data = drawn(members, batch_size, n_steps)
            run(old, size, [d[:3] for d in data]), run(models, size, [d[:3] for d in data])  # warm-up
            rates = {"old": [], "new": []}
            for r in range(rounds):
                for name in ("old", "new") if r % 2 == 0 else ("new", "old"):
                    rates[name].append(n_steps / run(old if name == "old" else models, size, data))
            ratios = [n / o for n, o in zip(rates["new"], rates["old"], strict=True)]
            label = f"{size} x{members}, batch {batch_size}"
            old_rate, new_rate = statistics.median(rates["old"]), statistics.median(rates["new"])
            draws = np.random.default_rng(0).choice(ratios, size=(10_000, len(ratios)))
            low, high = np.percentile(np.median(draws, axis=1), [2.5, 97.5])
            median = statistics.median(ratios)
            spread = f"**{median:.3f}** [{low:.3f}, {high:.3f}] | {min(ratios):.3f}-{max(ratios):.3f}"
            print(f"| {label} | {n_steps} | {old_rate:.2f} | {new_rate:.2f} | {spread} |", flush=True)


if __name__ == "__main__":
    main()
