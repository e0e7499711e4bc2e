"""Every option, written once (name, type, default, help), and the typed settings built from them.

DEFAULTS are the paper's base setting (Raventos et al. 2023, Sec. 2: base transformer, D = 8, K = 16,
noise_scale 0.5, batch 256, 500k steps, triangle schedule with lr 1e-3 and 50% warm-up, the original
code's seeds), except the evaluation size: the original scores 2 x 2^20 sequences every 1000 steps;
the default here is 4096 per distribution. The click options of every entry point, `main`'s presets
and MLproject (`python -m pipeline.mlproject`) all derive from OPTIONS.

Below the entry points, settings travel as frozen dataclasses whose field names are option names
(`build`), and are logged flat under those same names (`flat`).
"""

import dataclasses
import os
import typing

import click

from models import ModelConfig, OptimSettings
from pipeline.types import DEVICE, POSITIVE, POSITIVE_FLOAT, SEED, InputError, NTasks, Unset, as_text
from tasks import PRIORS, DataSettings, EvalSettings


@dataclasses.dataclass(frozen=True)
class Option:
    type: click.ParamType
    default: object
    help: str


OPTIONS = {
    "n_tasks": Option(
        NTasks(),
        1024,
        "M, the task diversity: tasks in the pretraining pool (paper Sec. 2); inf draws a fresh task per sequence.",
    ),
    "n_dims": Option(POSITIVE, 8, "D, dimension of the inputs x and tasks w."),
    "n_points": Option(POSITIVE, 16, "K, in-context examples per sequence (the model reads 2K tokens)."),
    "noise_scale": Option(
        click.FloatRange(min=0), 0.5, "sigma, std of the observation noise (paper: 0.5, sigma^2 = 0.25)."
    ),
    "task_scale": Option(POSITIVE_FLOAT, 1.0, "tau, std of the task prior N(0, tau^2 I) (paper: 1)."),
    "task_prior": Option(
        click.Choice(PRIORS),
        "gaussian",
        "prior of the tasks (pool, M = inf, T_True): gaussian N(0, tau^2 I) (the paper's), or laplace with "
        "i.i.d. coordinates of the same variance (paper Fig. 14; scored against its Bayes predictor too).",
    ),
    "data_scale": Option(POSITIVE_FLOAT, 1.0, "std of the inputs x ~ N(0, data_scale^2 I) (paper: 1)."),
    "batch_size": Option(POSITIVE, 256, "sequences per training step (paper: 256; 512 and 1024 in Fig. 2)."),
    "n_layer": Option(POSITIVE, 8, "transformer blocks (paper base: 8, small: 4, large: 12)."),
    "n_embd": Option(POSITIVE, 128, "embedding width (paper base: 128, small: 64, large: 256)."),
    "n_head": Option(POSITIVE, 2, "attention heads (paper base: 2, large: 4)."),
    "lr": Option(POSITIVE_FLOAT, 1e-3, "peak learning rate of Adam (paper: 1e-3)."),
    "schedule": Option(
        click.Choice(["triangle", "cosine"]),
        "triangle",
        "learning-rate schedule: triangle (the paper's: linear warm-up then linear decay to 0) or cosine.",
    ),
    "warmup_steps": Option(click.IntRange(min=0), 250_000, "steps of linear warm-up (paper: half of total_steps)."),
    "total_steps": Option(POSITIVE, 500_000, "training steps (paper: 500k; 1M in Fig. 3)."),
    "weight_decay": Option(
        click.FloatRange(min=0), 0.0, "AdamW decay of the block weight matrices (paper Sec. 5; 0 = Adam)."
    ),
    "pool_seed": Option(SEED, 102, "seed of the task pool draw."),
    "data_seed": Option(SEED, 101, "seed of the training inputs x."),
    "task_seed": Option(SEED, 102, "seed of the training task choice (which pool task each sequence uses)."),
    "noise_seed": Option(SEED, 103, "seed of the training observation noise."),
    "model_seed": Option(SEED, 100, "seed of the transformer's initial weights."),
    "eval_data_seed": Option(SEED, 104, "seed of the evaluation inputs."),
    "eval_task_seed": Option(SEED, 105, "seed of the evaluation tasks (pool picks on T_Pretrain, fresh w on T_True)."),
    "eval_noise_seed": Option(SEED, 106, "seed of the evaluation noise."),
    "smoothed_held_out": Option(
        click.IntRange(min=0),
        0,
        "evaluate_baselines: also score smoothed dMMSE (paper Fig. 12), its smoothing s chosen on this many "
        "fresh-task sequences drawn with smoothed_seed (0: not scored; each try of s costs a dMMSE pass on them).",
    ),
    "smoothed_seed": Option(SEED, 108, "seed of smoothed dMMSE's held-out sequences (inputs, tasks and noise)."),
    "eval_every": Option(POSITIVE, 1000, "training steps between evaluations on the fixed eval sets."),
    "eval_per_decade": Option(click.IntRange(min=0), 0, "log-spaced evaluations per decade from step 1 (0: none)."),
    "n_eval": Option(POSITIVE, 4096, "sequences in each evaluation set (T_Pretrain and T_True)."),
    "device": Option(DEVICE, "auto", "torch device for training: auto, cpu, cuda or cuda:N."),
    "threads": Option(
        click.IntRange(min=0),
        0,
        "torch CPU threads of a training, fixed for the whole run and logged as the count used (the numbers "
        "depend on it): 0 = every core of this machine (in a sweep: cores / workers with executor=process, 1 "
        "with executor=ray).",
    ),
    "checkpoint_every": Option(
        Unset(POSITIVE), None, "training steps between checkpoints (uploaded to the run; empty: eval_every)."
    ),
    "resume": Option(
        click.Choice(["auto", "never"]),
        "auto",
        "auto: continue the newest interrupted train run with the same params from its checkpoint (same run "
        "id); never: start afresh.",
    ),
    "compile": Option(
        click.BOOL,
        False,
        "run the training step through torch.compile: faster on long runs once compiled (tens of seconds; "
        "`make bench` measures both), equal to the eager step to float32 round-off. Tagged `compiled` on the "
        "run, not a param: a finished run is reused whichever way it was computed.",
    ),
    "max_steps": Option(
        POSITIVE, 10_000_000, "limit on total_steps, eval_every and checkpoint_every (raise it on purpose)."
    ),
    "max_work": Option(
        Unset(POSITIVE_FLOAT),
        None,
        "limit on the estimated floating-point operations of a training (steps, evaluations) or sweep (and dMMSE); "
        "empty: 1e17 on a CPU (about two weeks of 2 cores), 1e21 on CUDA (raise it on purpose).",
    ),
    "max_points": Option(POSITIVE, 1000, "limit on the trainings (grid points) of a sweep (raise it on purpose)."),
    "replicates": Option(
        POSITIVE,
        1,
        "trainings of every grid point, each with seeds of its own (pool, data, tasks, noise, model; the eval "
        "sets' seeds are shared): the summary gives means with 95% intervals over them (pipeline/stats.py).",
    ),
    "seed_offset": Option(
        click.IntRange(min=0), 0, "added to every seed of a sweep, the eval sets' too: a rerun on seeds nobody chose."
    ),
    "model_name": Option(
        click.STRING,
        "icl-transformer",
        "registered model name; versions get an alias per training label (m1024, minf, m1024-B512).",
    ),
    "pool": Option(
        click.STRING,
        "",
        "task pool: a pool.npz path, or runs:/<run_id>/pool/pool.npz of a generate_pool run (predict: dMMSE's "
        "prior, and where prompts are sampled from if none are given).",
    ),
    "baselines": Option(
        click.STRING,
        "",
        "optional runs:/<run_id> of an evaluate_baselines run on this pool: its eval sets and cached "
        "ridge/dMMSE predictions are reused.",
    ),
    "model": Option(
        click.STRING,
        "",
        "a trained transformer: models:/<name>@<alias>, models:/<name>/<version> or runs:/<run_id>/model "
        "(required by predict; optional for evaluate_baselines, which then scores it too).",
    ),
    "prompts": Option(click.STRING, "", "optional .npz with xs (N, K, D), ys (N, K) [, ws (N, D)]."),
    "kind": Option(
        click.Choice(["true", "pretrain"]),
        "true",
        "which distribution to sample prompts from: true (fresh tasks, T_True) or pretrain (pool tasks).",
    ),
    "executor": Option(
        click.Choice(["auto", "inline", "process", "ray"]),
        "auto",
        "how a sweep runs its chains: inline (one after another here), process (`workers` worker processes), "
        "ray (Ray tasks on `ray_address`, retried and resumed if a worker dies) or auto: on a CPU one worker "
        "process per core (at most one per training) at cores / workers threads each; on CUDA, inline.",
    ),
    "ray_address": Option(
        click.STRING,
        "",
        "the Ray cluster of executor=ray: empty starts a local instance for the sweep; auto joins the one "
        "started on this machine with `ray start`; ray://host:10001 a remote one (then MLFLOW_TRACKING_URI "
        "must be a server its nodes reach).",
    ),
    "workers": Option(
        Unset(POSITIVE),
        None,
        "chains of a sweep run at once by executor=process or auto (empty: one per core, at most one per "
        "training; the demo's 2 suits 2 cores).",
    ),
    "link": Option(
        click.STRING,
        "",
        "axes of a sweep that vary together instead of crossing: a comma list of options given equally many "
        "values, paired in order (n_dims,n_points with n_dims=4,8 n_points=8,16: K = 2D at each D).",
    ),
    "pack": Option(
        Unset(POSITIVE),
        None,
        "trainings of a sweep packed into one ensemble, trained as one batched computation, each still its own "
        "train run (those that share architecture, batch size, total_steps, evaluations): 1 = one model per "
        "training; empty: 1 on a CPU (no faster there), on CUDA as many as fit in the device's free memory.",
    ),
}
DEFAULTS = {name: option.default for name, option in OPTIONS.items()}


@dataclasses.dataclass(frozen=True)
class BaselinesSettings:
    """evaluate_baselines: the pool (URI), its D, the eval sets, and optionally a model to score too."""

    pool: str
    n_dims: int
    evaluation: EvalSettings
    model: str
    smoothed_held_out: int
    smoothed_seed: int


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """train: everything that decides a training, plus where its model is registered."""

    pool: str
    baselines: str
    data: DataSettings
    arch: ModelConfig
    optim: OptimSettings
    evaluation: EvalSettings
    model_seed: int
    eval_every: int
    eval_per_decade: int
    device: str
    threads: int
    model_name: str


@dataclasses.dataclass(frozen=True)
class PredictSettings:
    """predict: the model, its prompts (a file, or sampled from a pool's distribution)."""

    model: str
    prompts: str
    pool: str
    kind: str
    evaluation: EvalSettings


def machine_cores():
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def build(cls, params):
    """`cls` (a settings dataclass, nested ones built recursively) from flat option values by field name.

    A value its dataclass refuses (n_embd not divisible by n_head, warmup_steps >= total_steps, ...) is
    the user's: it becomes a one-line InputError.
    """
    hints = typing.get_type_hints(cls)
    values = {}
    for field in dataclasses.fields(cls):
        kind = hints[field.name]
        values[field.name] = build(kind, params) if dataclasses.is_dataclass(kind) else params[field.name]
    try:
        return cls(**values)
    except ValueError as error:
        raise InputError(str(error)) from None


def option_names(cls):
    """The option names behind a settings dataclass, nested ones included, each once, in field order: the
    click options of the entry point that builds it."""
    names = {}
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        kind = hints[field.name]
        names |= dict.fromkeys(option_names(kind) if dataclasses.is_dataclass(kind) else [field.name])
    return list(names)


def flat(settings):
    """{option name: value} of a settings dataclass, nested ones merged (they share option names)."""
    values = {}
    for field in dataclasses.fields(settings):
        value = getattr(settings, field.name)
        values |= flat(value) if dataclasses.is_dataclass(value) else {field.name: value}
    return values


# Options added after runs were logged without them, which behaved as the option's default does (Gaussian
# tasks, no smoothed dMMSE, no log-spaced evaluations): a missing param counts as the default, so rerunning a
# sweep still reuses them.
ADDED_LATER = ("task_prior", "smoothed_held_out", "smoothed_seed", "eval_per_decade")


def same_params(logged, wanted):
    """Whether logged (text) params hold every wanted value, each compared as its option types it."""
    return all(
        same_value(name, logged[name], value)
        if name in logged
        else name in ADDED_LATER and same_value(name, OPTIONS[name].default, value)
        for name, value in wanted.items()
    )


def same_value(name, logged, wanted):
    """Whether a logged (text) param equals `wanted` once typed by the option: "1e-3" equals 0.001."""
    option = OPTIONS.get(name)
    if option is None:
        return str(logged) == as_text(wanted)
    try:
        return option.type.convert(logged, None, None) == option.type.convert(wanted, None, None)
    except click.BadParameter:
        return False
