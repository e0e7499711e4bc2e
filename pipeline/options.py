"""Click options shared by the entry points: one name, type, default and meaning per parameter.

Names are spelled as in MLproject and in the logged params (the original code's vocabulary).
"""

import click

from pipeline.presets import DEFAULTS
from tasks import parse_n_tasks


class NTasks(click.ParamType):
    """M: a positive integer, or inf for a fresh task per sequence."""

    name = "n_tasks"

    def convert(self, value, param, ctx):
        try:
            return parse_n_tasks(value)
        except ValueError as error:
            self.fail(str(error), param, ctx)


class CommaList(click.ParamType):
    """Comma-separated values of another type: a grid of pool sizes (2,8,32,inf), two data scales."""

    def __init__(self, inner):
        self.inner = inner
        self.name = f"{inner.name} list"

    def convert(self, value, param, ctx):
        if isinstance(value, list):
            return value
        return [self.inner.convert(item, param, ctx) for item in str(value).split(",")]


class Device(click.ParamType):
    """auto (CUDA when available, else CPU), cpu, cuda or cuda:N."""

    name = "device"

    def convert(self, value, param, ctx):
        text = str(value)
        if text in ("auto", "cpu", "cuda") or (text.startswith("cuda:") and text[5:].isdigit()):
            return text
        self.fail(f"device must be auto, cpu, cuda or cuda:N, got {text!r}", param, ctx)


class Unset(click.ParamType):
    """Wraps a type so that an empty string means 'not given' (MLproject can only pass strings)."""

    def __init__(self, inner):
        self.inner = inner
        self.name = getattr(inner, "name", "value")

    def convert(self, value, param, ctx):
        if value is None or value == "":
            return None
        return self.inner.convert(value, param, ctx) if isinstance(self.inner, click.ParamType) else value


POSITIVE = click.IntRange(min=1)
SEED = click.IntRange(min=0, max=2**63 - 1)
POSITIVE_FLOAT = click.FloatRange(min=0, min_open=True)

SPECS = {
    "n_tasks": (
        NTasks(),
        "M, the task diversity: tasks in the pretraining pool (paper Sec. 2); inf draws a fresh task per sequence.",
    ),
    "n_dims": (POSITIVE, "D, dimension of the inputs x and tasks w."),
    "n_points": (POSITIVE, "K, in-context examples per sequence (the model reads 2K tokens)."),
    "noise_scale": (click.FloatRange(min=0), "sigma, std of the observation noise (paper: 0.5, sigma^2 = 0.25)."),
    "task_scale": (POSITIVE_FLOAT, "tau, std of the task prior N(0, tau^2 I) (paper: 1)."),
    "data_scale": (POSITIVE_FLOAT, "std of the inputs x ~ N(0, data_scale^2 I) (paper: 1)."),
    "batch_size": (POSITIVE, "sequences per training step (paper: 256; 512 and 1024 in Fig. 2)."),
    "n_layer": (POSITIVE, "transformer blocks (paper base: 8, small: 4, large: 12)."),
    "n_embd": (POSITIVE, "embedding width (paper base: 128, small: 64, large: 256)."),
    "n_head": (POSITIVE, "attention heads (paper base: 2, large: 4)."),
    "lr": (POSITIVE_FLOAT, "peak learning rate of Adam (paper: 1e-3)."),
    "schedule": (
        click.Choice(["triangle", "cosine"]),
        "learning-rate schedule: triangle (the paper's: linear warm-up then linear decay to 0) or cosine.",
    ),
    "warmup_steps": (click.IntRange(min=0), "steps of linear warm-up (paper: half of total_steps)."),
    "total_steps": (POSITIVE, "training steps (paper: 500k; 1M in Fig. 3)."),
    "weight_decay": (click.FloatRange(min=0), "AdamW decay of the block weight matrices (paper Sec. 5; 0 = Adam)."),
    "pool_seed": (SEED, "seed of the task pool draw."),
    "data_seed": (SEED, "seed of the training inputs x."),
    "task_seed": (SEED, "seed of the training task choice (which pool task each sequence uses)."),
    "noise_seed": (SEED, "seed of the training observation noise."),
    "model_seed": (SEED, "seed of the transformer's initial weights."),
    "eval_data_seed": (SEED, "seed of the evaluation inputs."),
    "eval_task_seed": (SEED, "seed of the evaluation tasks (pool picks on T_Pretrain, fresh w on T_True)."),
    "eval_noise_seed": (SEED, "seed of the evaluation noise."),
    "eval_every": (POSITIVE, "training steps between evaluations on the fixed eval sets."),
    "n_eval": (POSITIVE, "sequences in each evaluation set (T_Pretrain and T_True)."),
    "device": (Device(), "torch device for training: auto, cpu, cuda or cuda:N."),
    "workers": (POSITIVE, "chains of a sweep run at once, each in its own process (2 suits 2 cores for small models)."),
    "pool": (click.STRING, "task pool: a pool.npz path, or runs:/<run_id>/pool/pool.npz of a generate_pool run."),
    "model_name": (click.STRING, "registered model name; versions get an alias per pool size (m1024, minf)."),
}


def option(name, *, default=..., unset=False, help=None, type=None):
    """The click option `--name` with its shared type and help; `unset` makes it optional (for presets)."""
    param_type, text = SPECS.get(name, (type, help))
    param_type = type or param_type
    if unset:
        return click.option(f"--{name}", type=Unset(param_type), default=None, help=help or text)
    default = DEFAULTS.get(name, "") if default is ... else default
    return click.option(f"--{name}", type=param_type, default=default, show_default=True, help=help or text)


def options(*names, **kwargs):
    """Decorator applying `option` for each name, in order."""

    def apply(command):
        for name in reversed(names):
            command = option(name, **kwargs)(command)
        return command

    return apply
