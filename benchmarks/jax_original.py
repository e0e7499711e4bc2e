#!/usr/bin/env python
"""Benchmark (not in CI, not in `make bench`: it needs the original code and its own environment): the
ORIGINAL JAX transformer evaluation of Raventos et al. 2023 (github.com/mansheej/icl-task-diversity) on
CPU, to compare with benchmarks/evaluation.py run beside it (docs/benchmarks.md).

Set-up, in a folder of its own (the original pins jax 0.4.8 / jaxlib 0.4.7; the oldest jaxlib on PyPI
for Python 3.11 is 0.4.13): a checkout of the original at 7c35803e68c49f94ac2e618ce4e1bc14470b771b, a
venv with jax==0.4.13 jaxlib==0.4.13 flax==0.6.8 optax==0.1.4 chex==0.1.7 ml-collections==0.1.1
numpy==1.23.5 scipy==1.10.1 tensorflow-probability==0.19.0, then
    NPROC=2 <venv>/bin/python benchmarks/jax_original.py --repo <checkout> --sizes small,base --n 4096

The original code is imported from the unmodified checkout given by --repo. Nothing is copied.

What is timed (the original's icl/train.py and icl/evaluate.py at the commit above):
  * model   = icl.models.get_model("transformer", ...)        (GPT-2 in flax)
  * params  = icl.train.initialize(model, config)             (jit(model.init), seed 100)
  * state   = TrainState.create(...) + flax.jax_utils.replicate (as icl.train.train)
  * p_eval_step = jax.pmap(icl.train.eval_step, axis_name="device")
  * the timed call is icl.evaluate.get_model_preds(state, p_eval_step, samplers,
    n_samples=n, batch_size=eval_batch_size): the original loop that calls
    p_eval_step on chunks of `config.eval.batch_size` (= 4096) sequences,
    reshapes each chunk to (batch, n_points), and concatenates.
    With n=4096 this is exactly one pmap call on the whole batch.
  * inputs: random normal xs (n,16,8), ys (n,16), float32, pre-sharded to
    (n_devices, -1, ...) exactly as icl.train.get_sharded_batch_sampler does,
    and materialised on device before timing (so data generation is NOT timed,
    unless --include-sampling is given, which uses the original jitted
    NoisyLinearRegression eval sampler instead of fixed random inputs).

Reported: best-of-R wall seconds (block_until_ready) after one warm-up call;
"compile s" = warm-up call time minus best steady-state time (the warm-up call
is compile + one execution); the raw warm-up time is printed too.
"""

import argparse
import os
import sys
import time
import types

SIZES = {
    "small": dict(n_layer=4, n_embd=64, n_head=2),
    "base": dict(n_layer=8, n_embd=128, n_head=2),
}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="small,base", help="comma list from: " + ",".join(SIZES))
    p.add_argument("--n", type=int, default=4096, help="number of eval sequences")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats after the warm-up call (best is reported)")
    p.add_argument(
        "--eval-batch-size",
        type=int,
        default=4096,
        help="chunk size of the original eval loop (config.eval.batch_size = 4096); "
        "if --n is smaller, one chunk of size n is used",
    )
    p.add_argument("--n-dims", type=int, default=8)
    p.add_argument("--n-points", type=int, default=16)
    p.add_argument("--seed", type=int, default=0, help="seed for the random xs/ys")
    p.add_argument(
        "--include-sampling",
        action="store_true",
        help="use the original jitted eval-data sampler (NoisyLinearRegression, n_tasks=0) "
        "inside the timed loop, as the original does, instead of fixed random inputs",
    )
    p.add_argument(
        "--repo",
        required=True,
        help="path to the original checkout (contains the icl/ package)",
    )
    return p.parse_args()


def stub_training_only_imports():
    """icl/train.py imports tensorflow, wandb, orbax.checkpoint and
    flax.training.checkpoints at module level. They are only used inside
    train() (logging/checkpointing), never by eval_step / initialize /
    get_sharded_batch_sampler. With jax 0.4.13 the flax-0.6.8 / orbax-0.1.7
    checkpoint modules fail to import (jax.experimental.gda_serialization is
    gone), and tensorflow/wandb are not installed, so stub them."""
    for name in ("tensorflow", "wandb", "orbax.checkpoint", "flax.training.checkpoints"):
        if name in sys.modules:
            continue
        try:
            __import__(name)
        except Exception:
            sys.modules[name] = types.ModuleType(name + " (stub: not used by evaluation)")


def main():
    args = parse_args()
    sys.path.insert(0, os.path.abspath(args.repo))
    stub_training_only_imports()

    # Import order as in run.py (icl.utils first) to respect the utils<->models import cycle.
    import icl.utils as u  # noqa: F401
    import jax
    import jax.numpy as jnp
    import numpy as np
    from flax import jax_utils
    from flax.training.train_state import TrainState
    from icl.configs.example import get_config
    from icl.evaluate import get_model_preds
    from icl.models import get_model
    from icl.optim import get_optimizer_and_lr_schedule
    from icl.tasks import get_task
    from icl.train import eval_step, get_sharded_batch_sampler, initialize

    n = args.n
    bs = min(args.eval_batch_size, n)
    if n % bs:
        sys.exit(f"--n ({n}) must be a multiple of the eval batch size ({bs}); the original loop drops the rest")
    n_dev = jax.local_device_count()

    # Thread / device info (for a fair comparison with torch at 2 threads)
    try:
        aff = len(os.sched_getaffinity(0))
    except AttributeError:
        aff = os.cpu_count()
    print(
        f"jax {jax.__version__}  devices={jax.devices()}  local_device_count={n_dev}  "
        f"schedulable CPUs (affinity)={aff}  NPROC={os.environ.get('NPROC')!r}  "
        f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}",
        flush=True,
    )
    print(
        f"n={n}  eval chunk (config.eval.batch_size)={bs}  calls per eval pass={n // bs}  "
        f"repeats={args.repeats}  include_sampling={args.include_sampling}",
        flush=True,
    )

    # Random inputs, float32, sharded like get_sharded_batch_sampler (reshape to (n_devices, -1, ...)).
    rng = np.random.default_rng(args.seed)
    xs_all = rng.standard_normal((n, args.n_points, args.n_dims), dtype=np.float32)
    ys_all = rng.standard_normal((n, args.n_points), dtype=np.float32)

    class FixedBatches:
        """Stand-in for a Task: sample_batch(step) -> (data, tasks, targets), step = 1..n//bs."""

        def sample_batch(self, step):
            sl = slice((step - 1) * bs, step * bs)
            return xs_all[sl], None, ys_all[sl]

    if args.include_sampling:
        cfg = get_config()
        task_kw = dict(cfg.task)
        task_kw.pop("name")
        task_kw.update(
            n_tasks=0,
            n_dims=args.n_dims,
            n_points=args.n_points,
            batch_size=bs,
            data_seed=cfg.eval.data_seed,
            task_seed=cfg.eval.task_seed,
            noise_seed=cfg.eval.noise_seed,
        )
        eval_task = get_task("noisy_linear_regression", **task_kw, dtype=jnp.float32)
        sampler = jax.jit(get_sharded_batch_sampler(eval_task))  # as in icl/train.py:106-109
    else:
        shard = get_sharded_batch_sampler(FixedBatches())  # original reshape code
        chunks = [jax.device_put(shard(i)) for i in range(1, n // bs + 1)]
        jax.block_until_ready(chunks)
        sampler = lambda i: chunks[i - 1]  # noqa: E731
    samplers = {"Random": sampler}

    rows = []
    for size in [s.strip() for s in args.sizes.split(",") if s.strip()]:
        if size not in SIZES:
            sys.exit(f"unknown size {size!r}; choose from {list(SIZES)}")
        cfg = get_config()
        cfg.task.n_dims = args.n_dims
        cfg.task.n_points = args.n_points
        cfg.model.n_points = args.n_points
        cfg.model.update(SIZES[size])
        model = get_model(**cfg.model, dtype=jnp.dtype(cfg.dtype))
        params, _ = initialize(model, cfg)
        n_params = sum(int(np.prod(p.shape)) for p in jax.tree_util.tree_leaves(params))
        tx, _ = get_optimizer_and_lr_schedule(**cfg.training, params=params)
        state = jax_utils.replicate(TrainState.create(apply_fn=model.apply, params=params, tx=tx))
        p_eval_step = jax.pmap(eval_step, axis_name="device")  # as in icl/train.py:114

        def run_eval(state=state, p_eval_step=p_eval_step):
            preds = get_model_preds(state, p_eval_step, samplers, n, bs)
            return jax.block_until_ready(preds)

        t0 = time.perf_counter()
        preds = run_eval()
        warm = time.perf_counter() - t0
        out = preds["Random"]["Transformer"]
        assert out.shape == (n, args.n_points), out.shape
        assert bool(jnp.all(jnp.isfinite(out)))

        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            run_eval()
            times.append(time.perf_counter() - t0)
        best = min(times)
        compile_s = max(warm - best, 0.0)
        print(
            f"[{size}] params={n_params}  warm-up(compile+run)={warm:.3f}s  runs={[round(t, 4) for t in times]}",
            flush=True,
        )
        rows.append((size, best, compile_s))

    with open("/proc/self/status") as f:
        threads = next((ln.split()[1] for ln in f if ln.startswith("Threads:")), "?")
    print(f"OS threads in this process at the end: {threads}")
    print()
    print(f"| model | jax seconds (best of {args.repeats}) | compile s |")
    print("|---|---|---|")
    for size, best, compile_s in rows:
        print(f"| {size} | {best:.4f} | {compile_s:.3f} |")


if __name__ == "__main__":
    main()
