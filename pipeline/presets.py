"""Presets of `main`: named sets of overrides on the defaults (pipeline/settings.py OPTIONS).

A value may be a list: it is then an axis of the sweep's grid (`n_tasks` always is one). Every option
stays overridable on the command line (`-P weight_decay=0,1e-3` adds an axis).
"""

import dataclasses
import math
import types

from pipeline.settings import DEFAULTS
from pipeline.types import InputError, as_text

REPLICATE = "replicate"  # the axis of a sweep's replicates (values 0 ... replicates - 1)

PRESETS = {
    # The paper's grid M = 2^1 ... 2^20 and inf at its base setting, evaluated as the original code does
    # (2^20 sequences per distribution every 1000 steps): a GPU job.
    "paper": {"n_tasks": [2**i for i in range(1, 21)] + [math.inf], "n_eval": 2**20},
    # The largest reproduction that runs end to end on 2 CPU cores in about 40 minutes (docs/demo.md:
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


# The paper's other figures (../FIGURES.md) at its scale: GPU jobs, each the `paper` preset (base PT) or the
# paper's small PT (4/64/2, batch 512) with the figure's axis. The paper gives weight decay as "three
# decades" and the widths and depths only as a plot: the values below span what its Fig. 7 shows, and are
# ours, not copied from its configs (the original code has none for these sweeps).
SMALL_PT = {"n_layer": 4, "n_embd": 64, "n_head": 2, "batch_size": 512}
PAPER_M = [2**i for i in range(1, 21)] + [math.inf]
PAPER_FIGURES = {
    # Fig. 3: 500k against 1M steps at batch 256.
    "fig3": {"n_tasks": PAPER_M, "total_steps": [500_000, 1_000_000], "n_eval": 2**20},
    # Fig. 4 and Fig. 10: the small PT over 2M steps, evaluated every 1000 (t* needs dense curves).
    "fig4": {"n_tasks": PAPER_M, **SMALL_PT, "total_steps": 2_000_000, "n_eval": 2**20},
    # Fig. 5: the three pool sizes of its panels; `analyze --kind interpolation` on the sweep.
    "fig5": {"n_tasks": [2**5, 2**10, 2**15], "n_eval": 2**20},
    # Fig. 7 left and Fig. 13: weight decay over three decades on the base PT.
    "fig7_wd": {"n_tasks": PAPER_M, "weight_decay": [0.0, 1e-4, 1e-3, 1e-2, 1e-1], "n_eval": 2**20},
    # Fig. 7 middle: width of the base PT and of the small PT.
    "fig7_width_base": {"n_tasks": PAPER_M, "n_embd": [64, 128, 256], "n_eval": 2**20},
    "fig7_width_small": {"n_tasks": PAPER_M, **SMALL_PT, "n_embd": [32, 64, 128, 256], "n_eval": 2**20},
    # Fig. 7 right: depth of the small PT.
    "fig7_depth": {"n_tasks": PAPER_M, **SMALL_PT, "n_layer": [2, 4, 8], "n_eval": 2**20},
}
PAPER_FIGURES["fig10"] = PAPER_FIGURES["fig4"]
# Fig. 6: D = 8, 16, 32 with K = 2D, the large PT (12/256/4) at D = 32, two batch sizes for the threshold.
PAPER_FIGURES["fig6"] = {
    "n_tasks": PAPER_M,
    "n_dims": [8, 16, 32],
    "n_points": [16, 32, 64],
    "n_layer": [8, 8, 12],
    "n_embd": [128, 128, 256],
    "n_head": [2, 2, 4],
    "link": "n_dims,n_points,n_layer,n_embd,n_head",
    "batch_size": [256, 512],
    "n_eval": 2**16,
}
# Fig. 11: a second data seed gives the reference barrier between two M = inf models.
PAPER_FIGURES["fig11"] = {"n_tasks": PAPER_M, "data_seed": [101, 201], "n_eval": 2**20}
# Fig. 12: the base sweep; `analyze --kind smoothing` computes smoothed dMMSE on its eval sets.
PAPER_FIGURES["fig12"] = {"n_tasks": PAPER_M, "n_eval": 2**20}
# Fig. 14: Laplace tasks. Its Bayes predictor is a 2000-sweep Gibbs estimate per prefix (baselines/laplace.py),
# so the eval sets are 2^14 sequences, not 2^20 (about 2 x 10^3 x 2^18 small solves per distribution).
PAPER_FIGURES["fig14"] = {"n_tasks": PAPER_M, "task_prior": "laplace", "n_eval": 2**14}

# The same figures on 2 CPU cores (`make figures`, README "Gallery"; chosen by measurement: docs/cpu_setting.md).
# D = 4, K = 8 at the paper's signal-to-noise D / sigma^2 = 32 (sigma^2 = 1/8), a 3/64/2 PT, 3 replicates of
# every point. Two training lengths share every sweep that can: the base (batch 64, 10k steps, log-spaced
# evaluations for Fig. 4) serves Figs. 2, 4, 5, 10, 12 and the wd = 0 half of Figs. 7 and 13; the short one
# (5k steps) is Fig. 3's smaller data scale and the D = 4 / 64-wide / 3-deep points of Figs. 6 and 7. The
# M = inf criterion (within 2% of ridge) has trainings of its own, 16x the base's sequences.
NOISE_AT_32 = {n_dims: math.sqrt(n_dims / 32) for n_dims in (1, 2, 4, 8)}  # sigma of D / sigma^2 = 32
FIGURES_CPU = {
    "n_tasks": [2, 4, 8, 16, 32, 128, math.inf],
    "n_dims": 4,
    "n_points": 8,
    "noise_scale": NOISE_AT_32[4],
    "batch_size": 64,
    "n_layer": 3,
    "n_embd": 64,
    "n_head": 2,
    "warmup_steps": 2500,
    "total_steps": 10000,
    "eval_every": 500,
    "eval_per_decade": 8,
    "checkpoint_every": 2000,
    "n_eval": 1024,
    "threads": 1,
    "replicates": 3,
    "model_name": "icl-figures",
}
SHORT_CPU = FIGURES_CPU | {"warmup_steps": 1250, "total_steps": 5000}
EVERY_OTHER_M = [2, 8, 32, 128, math.inf]
CPU_FIGURES = {
    "fig2_cpu": FIGURES_CPU,
    # Fig. 3's two data scales (the paper's threshold rule: their Delta^True_PT,Ridge curves cross at M*); the
    # warm-up is a share of the first total_steps (25%), so that both scales' runs are the other presets'.
    "fig3_cpu": FIGURES_CPU | {"total_steps": [5000, 10000], "warmup_steps": 1250},
    "fig4_cpu": FIGURES_CPU,
    "fig5_cpu": FIGURES_CPU,
    # Fig. 7 left and Fig. 13: the paper's total decay lr x wd x steps (1e-3 x {1e-4 ... 1e-1} x 500k = 0.05 ...
    # 50) at its two ends, lr 1e-3 x wd x 10k steps: wd = 0.005 and 5, against none.
    "fig7_wd_cpu": FIGURES_CPU | {"n_tasks": [4, 16, math.inf], "weight_decay": [0.0, 0.005, 5.0]},
    # Fig. 7's middle and right panels (the paper's small PT): width and depth, on the short trainings.
    "fig7_width_cpu": SHORT_CPU | {"n_tasks": EVERY_OTHER_M, "n_embd": [16, 32, 64]},
    "fig7_depth_cpu": SHORT_CPU | {"n_tasks": EVERY_OTHER_M, "n_layer": [1, 2, 3]},
    "fig10_cpu": FIGURES_CPU,
    # Fig. 11 needs the barrier between two M = inf models as its reference: a second data seed (the base runs
    # are the data_seed 101 half).
    "fig11_cpu": FIGURES_CPU | {"n_tasks": [2, 16, math.inf], "data_seed": [101, 201]},
    "fig12_cpu": FIGURES_CPU,
    # Fig. 6: D = 1, 2, 4 with K = 2D and D / sigma^2 = 32 (D = 4: Fig. 3's short trainings).
    "fig6_cpu": SHORT_CPU
    | {
        "n_tasks": EVERY_OTHER_M,
        "n_dims": [1, 2, 4],
        "n_points": [2, 4, 8],
        "noise_scale": [NOISE_AT_32[d] for d in (1, 2, 4)],
        "link": "n_dims,n_points,noise_scale",
    },
    # Fig. 14: Laplace tasks.
    "fig14_cpu": FIGURES_CPU | {"n_tasks": [8, 128, math.inf], "task_prior": "laplace"},
    # The CPU setting's M = inf transformer against ridge (within 2%): batch 128 for 64k steps, 3 replicates
    # side by side in 3 worker processes (on 2 cores: 1.5 rounds of wall time, not the 2 of two workers).
    "ridge_cpu": FIGURES_CPU
    | {"n_tasks": math.inf, "batch_size": 128, "total_steps": 64000, "warmup_steps": 16000, "eval_every": 2000}
    | {"eval_per_decade": 0, "checkpoint_every": 4000, "workers": 3},
}
PRESETS |= PAPER_FIGURES | CPU_FIGURES

# Options of `main`: every setting of a chain, and how the sweep runs; SINGLE ones take one value. EXECUTION
# ones say how the sweep runs, not what a chain computes: they live in SweepSettings.execution.
SWEEP_OPTIONS = [name for name in DEFAULTS if name not in ("pool", "baselines", "model", "prompts", "kind")]
EXECUTION = ("executor", "ray_address", "workers", "pack", "max_steps", "max_work", "max_points")
SINGLE = (
    *("device", "model_name", "checkpoint_every", "resume", "compile", "replicates", "seed_offset"),
    *EXECUTION,
)
SEEDS = [name for name in DEFAULTS if name.endswith("_seed")]


@dataclasses.dataclass(frozen=True)
class Execution:
    """How a sweep runs (one value each; none of it changes what a chain computes)."""

    executor: str
    ray_address: str | None
    workers: int | None  # None: as many as the executor chooses
    pack: int | None
    max_steps: int | None
    max_work: float | None
    max_points: int


@dataclasses.dataclass(frozen=True)
class SweepSettings:
    """A resolved sweep (`resolve`). `options`: every option of a chain with its values, a tuple (several
    values: an axis of the grid), seeds already shifted by `seed_offset`, and REPLICATE (0 ... replicates - 1)
    an axis of its own when replicates > 1. `link`: the axes whose i-th values form one point.
    `warmup_fraction`: the share of each point's total_steps spent warming up (the preset's, or the
    warmup_steps given over the first total_steps). Two presets that resolve to the same settings are one
    sweep (`preset` names it, and is left out of equality)."""

    preset: str = dataclasses.field(compare=False)
    options: types.MappingProxyType
    link: tuple
    replicates: int
    seed_offset: int
    warmup_fraction: float
    execution: Execution

    def value(self, name):
        """The value of an option that has one (the first of an axis's)."""
        return self.options[name][0]

    @property
    def axes(self):
        """The sweep's axes, n_tasks first, the others in option order, REPLICATE last."""
        multi = [name for name, values in self.options.items() if len(values) > 1 and name != "n_tasks"]
        return ("n_tasks", *sorted(multi, key=lambda name: name == REPLICATE))

    def described(self):
        """{option: [values]} with the replicates: what summary.setting_text writes on a figure."""
        return dict(self.options) | {"replicates": [self.replicates]}

    def params(self, executor, pack, max_work):
        """What the sweep run logs as params (and settings.json), as it ran: each option's value (an axis's
        values, and n_tasks's always, joined by commas), the link, the replicates, the executor that ran it
        (`executor`: its name and workers), the `pack` size chosen and the `max_work` limit that applied; a
        checkpoint at every evaluation said as its step; Ray's address instead of a worker count."""
        params = {"preset": self.preset}
        for name, values in self.options.items():
            if name != REPLICATE:
                params[name] = values[0] if len(values) == 1 and name != "n_tasks" else ",".join(map(as_text, values))
        if self.link:  # no linked axes: no param (an empty one would read as "unknown")
            params["link"] = ",".join(self.link)
        if params["checkpoint_every"] is None:
            params["checkpoint_every"] = params["eval_every"]
        params |= {
            "replicates": self.replicates,
            "seed_offset": self.seed_offset,
            "max_steps": self.execution.max_steps,
        }
        params |= {"max_points": self.execution.max_points, "max_work": max_work}
        params |= {"executor": executor.name, "pack": pack}
        if executor.name == "ray":  # Ray places chains by their needs: no worker count
            params["ray_address"] = self.execution.ray_address or "local"
        else:
            params["workers"] = executor.workers
        return params


def resolve(preset, overrides):
    """The SweepSettings of `preset` with `overrides` ({option: value or [values]}; None values are ignored)
    on DEFAULTS; a SINGLE option given several values, or a bad link, is refused."""
    if preset not in PRESETS:
        raise InputError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    given = {key: value for key, value in overrides.items() if value is not None}
    settings = {name: DEFAULTS[name] for name in SWEEP_OPTIONS} | PRESETS[preset] | given
    settings = {key: _values(value) for key, value in settings.items()}
    for name in SINGLE:
        if len(settings[name]) > 1:
            raise InputError(f"{name} takes one value, got {','.join(map(str, settings[name]))}")
    link = _link(settings)
    single = {name: settings.pop(name)[0] for name in (*EXECUTION, "link", "replicates", "seed_offset")}
    settings |= {name: tuple(seed + single["seed_offset"] for seed in settings[name]) for name in SEEDS}
    settings[REPLICATE] = tuple(range(single["replicates"]))
    # The preset's warm-up share, unless warmup_steps is given: a point warms up for that share of its steps.
    shares = settings if "warmup_steps" in given else DEFAULTS | PRESETS[preset]
    fraction = _values(shares["warmup_steps"])[0] / _values(shares["total_steps"])[0]
    return SweepSettings(
        preset,
        types.MappingProxyType(settings),
        link,
        single["replicates"],
        single["seed_offset"],
        fraction,
        Execution(**{name: single[name] for name in EXECUTION}),
    )


def _values(value):
    """An option's values as a tuple (a list or tuple given: several)."""
    return tuple(value) if isinstance(value, list | tuple) else (value,)


def _link(settings):
    """The linked axes as a tuple of option names (settings["link"] holds them as given: names or text),
    each checked to be an axis with as many values as the others."""
    names = tuple(n.strip() for value in settings["link"] for n in str(value).split(",") if n.strip())
    for name in names:
        if name not in settings or name in ("n_tasks", "link") or name in SINGLE:
            raise InputError(f"link: {name!r} is not an option that can be an axis of the sweep")
        if len(settings[name]) != len(settings[names[0]]) or len(settings[name]) < 2:
            counts = ", ".join(f"{n} has {len(settings[n])}" for n in names)
            raise InputError(f"link: linked axes need the same number of values, at least 2 ({counts})")
    return names if len(names) >= 2 else ()
