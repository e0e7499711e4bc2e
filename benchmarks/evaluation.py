"""Benchmark (not in CI; part of `make bench`): evaluating a transformer on 4096 sequences, D = 8, K = 16,
five ways side by side in one run, for the demo (small) and base models:

  * whole, one chunk: every block at all 2K tokens, all sequences in one forward pass (the first code);
  * whole, chunks: the same in cache-sized chunks, torch's threads splitting each chunk's operations
    (pipeline/evaluation.py chunk_rows; the code before the pruned forward);
  * pruned: today's forward (models/transformer.py: y_K left out, the last block at the x tokens only,
    the GELU through a sigmoid), in the same chunks and threads;
  * per thread: the pruned forward as pipeline/evaluation.py runs it on a CPU, each thread computing whole
    chunks of its own at one torch thread (pipeline/devices.py in_threads);
  * compiled: the pruned forward through torch.compile (the `compile` option), chunks computed in turn as
    in `pruned` (a compiled model is not thread-safe), timed after its first call, whose time is reported
    apart as the compile time.

Rounds alternate the ways (so that a change in the machine's load hits all alike), each timed by its
best of 3. Each way's predictions are compared with the pruned eager ones (max abs difference).
`benchmarks/jax_original.py`, run beside it, times the original JAX evaluation the same way.
"""

import time

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from models import X_TOKENS, ModelConfig, build_model, to_tokens
from models.strategies import compiled
from pipeline.evaluation import chunk_rows, transformer_predictions
from tasks import EvalSet

N_DIMS, N_POINTS, N_SEQS, ROUNDS = 8, 16, 4096, 3


class WholeNetwork(nn.Module):
    """`model` computed at every one of the 2K tokens with torch's tanh GELU, read at the x tokens: the
    forward before it was pruned and its GELU computed through a sigmoid (models/transformer.py)."""

    def __init__(self, model):
        super().__init__()
        self.model, self.config = model, model.config

    def forward(self, xs, ys):
        m = self.model
        tokens = to_tokens(xs, ys)
        h = m.read_in(tokens) + m.wpe.weight[: tokens.shape[1]]
        for block in m.blocks:
            h = h + block.attn(block.ln_1(h))
            h = h + block.mlp.c_proj(F.gelu(block.mlp.c_fc(block.ln_2(h)), approximate="tanh"))
        return m.read_out(m.ln_f(h)[:, X_TOKENS])[..., 0]


def random_eval_set():
    """N_SEQS random sequences (xs, ys standard normal, float32, seed 0): what every evaluation timing reads."""
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((N_SEQS, N_POINTS, N_DIMS)).astype(np.float32)
    return EvalSet(xs, None, rng.standard_normal((N_SEQS, N_POINTS)).astype(np.float32))


def timed(model, eval_set, chunk, workers):
    start = time.perf_counter()
    preds = transformer_predictions(model, eval_set, device="cpu", chunk=chunk, workers=workers)
    return time.perf_counter() - start, preds


def main():
    eval_set = random_eval_set()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {N_SEQS} sequences, best of {ROUNDS}\n")
    threads = torch.get_num_threads()
    print("| model | chunk | whole, one chunk | whole, chunks | pruned | per thread (chunk) | compiled (compile s) |")
    print("|---|---|---|---|---|---|---|")
    for size in ("small", "base"):
        model = build_model(ModelConfig.of_size(size, n_dims=N_DIMS, n_points=N_POINTS), seed=0)
        rows, own = chunk_rows(model.config, "cpu", threads), chunk_rows(model.config, "cpu")
        fast = compiled(model)
        first, _ = timed(fast, eval_set, rows, 1)
        ways = {"one": (WholeNetwork(model), N_SEQS, 1), "whole": (WholeNetwork(model), rows, 1)}
        ways |= {"pruned": (model, rows, 1), "per thread": (model, own, threads), "compiled": (fast, rows, 1)}
        times, preds = {name: [] for name in ways}, {}
        for _ in range(ROUNDS):
            for name, (way, chunk, workers) in ways.items():
                seconds, preds[name] = timed(way, eval_set, chunk, workers)
                times[name].append(seconds)
        best = {name: min(t) for name, t in times.items()}
        diff = {name: np.abs(p - preds["pruned"]).max() for name, p in preds.items()}
        print(
            f"| {size} | {rows} | {best['one']:.2f} s | {best['whole']:.2f} s | {best['pruned']:.2f} s "
            f"| {best['per thread']:.2f} s ({own}) | {best['compiled']:.2f} s ({first - best['compiled']:.0f} s) |"
        )
        ratios = [p / t for p, t in zip(times["pruned"], times["per thread"], strict=True)]
        print(f"  per thread against pruned, round by round: {', '.join(f'{r:.2f}x' for r in ratios)}")
        print(f"  max |difference| from pruned: {', '.join(f'{n} {d:.1e}' for n, d in diff.items() if n != 'pruned')}")


if __name__ == "__main__":
    main()
