"""Presets of `main`: named sets of overrides on the defaults (pipeline/settings.py OPTIONS).

A value may be a list: it is then an axis of the sweep's grid (`n_tasks` always is one). Every option
stays overridable on the command line (`-P weight_decay=0,1e-3` adds an axis).
"""

import math

from pipeline.settings import DEFAULTS
from pipeline.types import InputError

PRESETS = {
    # The paper's grid M = 2^1 ... 2^20 and inf at its base setting, evaluated as the original code does
    # (2^20 sequences per distribution every 1000 steps): a GPU job.
    "paper": {"n_tasks": [2**i for i in range(1, 21)] + [math.inf], "n_eval": 2**20},
    # The largest reproduction that runs end to end on 2 CPU cores in about 40 minutes (README:
    # every deviation from the paper and why): the small transformer, batch 64, 12k steps with 25%
    # warm-up, one training per core side by side (executor auto), each at one thread on any machine,
    # so that its numbers are the README's everywhere.
    "demo": {
        "n_tasks": [4, 16, 64, 1024, math.inf],
        "batch_size": 64,
        "n_layer": 4,
        "n_embd": 64,
        "n_head": 2,
        "warmup_steps": 3000,
        "total_steps": 12000,
        "eval_every": 1000,
        "n_eval": 2048,
        "threads": 1,
        "model_name": "icl-demo",
    },
    # Seconds per pool size, for tests and for trying the pipeline out: inline, as starting worker
    # processes would take longer than these trainings.
    "smoke": {
        "n_tasks": [4, 64, math.inf],
        "n_dims": 4,
        "n_points": 8,
        "batch_size": 32,
        "n_layer": 1,
        "n_embd": 32,
        "n_head": 2,
        "lr": 3e-3,
        "warmup_steps": 30,
        "total_steps": 60,
        "eval_every": 30,
        "n_eval": 128,
        "executor": "inline",
        "model_name": "icl-smoke",
    },
}

# Options of `main`: every setting of a chain, and how the sweep runs; SINGLE ones take one value.
SWEEP_OPTIONS = [name for name in DEFAULTS if name not in ("pool", "baselines", "model", "prompts", "kind")]
SINGLE = ("device", "model_name", "executor", "ray_address", "workers", "pack", "checkpoint_every", "resume", "compile")


def resolve(preset, overrides):
    """{option: [values]}: DEFAULTS, then `preset`, then `overrides` (None values are ignored)."""
    if preset not in PRESETS:
        raise InputError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    settings = {name: DEFAULTS[name] for name in SWEEP_OPTIONS} | PRESETS[preset]
    settings |= {key: value for key, value in overrides.items() if value is not None}
    settings = {key: list(value) if isinstance(value, list) else [value] for key, value in settings.items()}
    for name in SINGLE:
        if len(settings[name]) > 1:
            raise InputError(f"{name} takes one value, got {','.join(map(str, settings[name]))}")
    return settings
