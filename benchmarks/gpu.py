"""Benchmark for a CUDA machine: how many base-model trainings one accelerator runs at once as an ensemble
(models/ensemble.py), and what that makes of the paper's Fig. 2 sweep.

For S = 1, 4, 16, 42 members (42 = the Fig. 2 grid: 21 pool sizes x 2 data scales) of the base model at
the paper's setting (D = 8, K = 16, batch 256), it times ensemble steps after a warm-up (the batches are
drawn beforehand), synchronising the device, and reports members x steps / s, the peak device memory,
and the projected wall time of the 42 trainings of 500k steps each when packed S at a time. With
`--compile`, the compiled step (the `compile` option: torch.compile) is timed too, after its compile
time, and the projection uses the faster way. `--dry` runs the same code on the CPU with the smoke model
and a few steps (CI checks it runs); its numbers mean nothing.

    python -m benchmarks.gpu --compile            # on a CUDA machine
    python -m benchmarks.gpu --compile --dry      # anywhere
"""

import math
import time

import click
import torch

from benchmarks.ensemble import stacked_batches
from models import PACKED, ModelConfig, build_model, make_optimizer

FIG2_TRAININGS, FIG2_STEPS = 42, 500_000


def rate(config, members, batch_size, steps, device, compile=False):
    """(members x steps / s, peak device bytes or None, seconds of the warm-up) of `steps` ensemble steps
    after 3 warm-up steps (the first compiles, with `compile`)."""
    models = [build_model(config, seed=s, device=device) for s in range(members)]
    optimizers, lr = [make_optimizer(m, lr=1e-4) for m in models], [1e-4] * members
    stepped = PACKED.modules(models, compile)[0]
    shape = {"n_points": config.n_points, "n_dims": config.n_dims, "device": device}
    data = stacked_batches(members, batch_size, 3 + steps, **shape)  # drawn before the timing starts
    cuda = torch.device(device).type == "cuda"
    warm = time.perf_counter()
    for xs, ys in data[:3]:  # warm-up
        PACKED.step(stepped, optimizers, xs, ys, lr)
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    warm = time.perf_counter() - warm
    start = time.perf_counter()
    for xs, ys in data[3:]:
        PACKED.step(stepped, optimizers, xs, ys, lr)
    if cuda:
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    return members * steps / seconds, torch.cuda.max_memory_allocated(device) if cuda else None, warm


@click.command()
@click.option("--dry", is_flag=True, help="CPU, smoke model, a few steps: check the script, not the machine.")
@click.option("--steps", default=50, show_default=True, help="Timed steps per ensemble size.")
@click.option("--compile", "compile_", is_flag=True, help="Time the compiled step (torch.compile) too.")
def main(dry, steps, compile_):
    if dry:
        device, config, batch_size, sizes, steps = "cpu", ModelConfig(4, 8, 1, 32, 2), 32, (1, 2), 2
    else:
        if not torch.cuda.is_available():
            raise click.ClickException("no CUDA device here: run with --dry to check the script on a CPU")
        device, batch_size, sizes = "cuda", 256, (1, 4, 16, 42)
        config = ModelConfig.of_size("base", n_dims=8, n_points=16)
        torch.backends.cuda.matmul.allow_tf32 = False  # as training does (pipeline/devices.py)
    name = torch.cuda.get_device_name(device) if device == "cuda" else "CPU (dry run: numbers mean nothing)"
    print(f"{name}; torch {torch.__version__}; {config}, batch {batch_size}, {steps} timed steps\n")
    columns = ["S", "members x steps / s", "compiled (compile time)", "peak memory"]
    print(f"| {' | '.join(columns)} | Fig. 2 (42 x 500k steps) packed S at a time |")
    print("|---|---|---|---|---|")
    for members in sizes:
        try:
            speed, peak, _ = rate(config, members, batch_size, steps, device)
            fast = rate(config, members, batch_size, steps, device, compile=True) if compile_ else None
        except torch.OutOfMemoryError:
            print(f"| {members} | out of memory | - | - | - |", flush=True)
            torch.cuda.empty_cache()
            continue
        packs = math.ceil(FIG2_TRAININGS / members)
        best = max(speed, fast[0]) if fast else speed
        hours = packs * members * FIG2_STEPS / best / 3600  # every pack runs S members for 500k steps
        memory = f"{peak / 2**30:.1f} GiB" if peak is not None else "-"
        faster = f"{fast[0]:.1f} ({fast[2]:.0f} s)" if fast else "-"
        print(f"| {members} | {speed:.1f} | {faster} | {memory} | {hours:.1f} h ({packs} packs) |", flush=True)


if __name__ == "__main__":
    main()
