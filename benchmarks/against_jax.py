"""Benchmark (not in CI, not in `make bench`: it needs the original JAX code and its own environment, set up
as benchmarks/jax_original.py says): our evaluation of 4096 sequences against the original's, in pairs of
fresh processes run one after the other (the original's first, then ours), so that both sides of a pair see
the same machine; each pair's ratio is printed, then the median and the range per model.

    .venv/bin/python -m benchmarks.against_jax --jax-python <venv>/bin/python --repo <checkout> --pairs 6

Each side is timed the same way: best of 3 after one warm-up call (the JAX compile time is left out, as
ours, which has none in eager mode, would be). Ours is pipeline/evaluation.py transformer_predictions
with its defaults, as a training or `predict` runs it: chunks of 2^17 activations, each thread computing
its own chunks (docs/benchmarks.md). Both use torch's thread count (NPROC for the original).
"""

import os
import re
import statistics
import subprocess
import sys
import time

import click

from benchmarks.evaluation import N_DIMS, N_POINTS, N_SEQS

REPEATS = 3
ROW = re.compile(r"^\| (\w+) \| ([0-9.]+) \|", re.MULTILINE)


def ours(sizes):
    """Time our evaluation of each model size in this process; prints `| size | seconds |` rows."""
    import torch

    from benchmarks.evaluation import random_eval_set
    from models import ModelConfig, build_model
    from pipeline.evaluation import transformer_predictions

    eval_set = random_eval_set()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for size in sizes:
        model = build_model(ModelConfig.of_size(size, n_dims=N_DIMS, n_points=N_POINTS), seed=0)
        transformer_predictions(model, eval_set, device="cpu")
        seconds = []
        for _ in range(REPEATS):
            start = time.perf_counter()
            transformer_predictions(model, eval_set, device="cpu")
            seconds.append(time.perf_counter() - start)
        print(f"| {size} | {min(seconds):.4f} |", flush=True)


def timed(command, env=None):
    """{size: seconds} from the `| size | seconds |` rows a benchmark process prints (run in the repository)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=root, check=False)
    if done.returncode:
        sys.exit(f"{' '.join(command[:3])} ... failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return {size: float(seconds) for size, seconds in ROW.findall(done.stdout)}


@click.command()
@click.option("--jax-python", help="the Python of the original's venv (benchmarks/jax_original.py)")
@click.option("--repo", help="the original's checkout")
@click.option("--pairs", default=6, show_default=True, type=click.IntRange(1))
@click.option("--sizes", default="small,base", show_default=True)
@click.option("--ours-only", is_flag=True, hidden=True)
def main(jax_python, repo, pairs, sizes, ours_only):
    sizes = sizes.split(",")
    if ours_only:
        return ours(sizes)
    if not jax_python or not repo:
        raise click.UsageError("--jax-python and --repo are required")
    import torch

    env = os.environ | {"NPROC": str(torch.get_num_threads())}  # as many threads as ours
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "jax_original.py")
    jax_command = [jax_python, script, "--repo", repo, "--sizes", ",".join(sizes), "--n", str(N_SEQS)]
    ours_command = [sys.executable, "-m", "benchmarks.against_jax", "--ours-only", "--sizes", ",".join(sizes)]
    ratios = {size: [] for size in sizes}
    print(f"{N_SEQS} sequences, D = {N_DIMS}, K = {N_POINTS}; {pairs} pairs, each side best of {REPEATS}\n")
    print("| pair | model | JAX original | ours | ours faster by |")
    print("|---|---|---|---|---|")
    for pair in range(1, pairs + 1):
        jax, mine = timed(jax_command, env), timed(ours_command)
        for size in sizes:
            ratios[size].append(jax[size] / mine[size])
            print(f"| {pair} | {size} | {jax[size]:.2f} s | {mine[size]:.2f} s | {ratios[size][-1]:.2f}x |", flush=True)
    for size, values in ratios.items():
        print(f"\n{size}: median {statistics.median(values):.2f}x, range {min(values):.2f}-{max(values):.2f}x")


if __name__ == "__main__":
    main()
