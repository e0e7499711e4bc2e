"""The boundary's types: click parameter types for the options, the error a user's bad value raises, and how
a pool size M is named (m16, minf) and placed on the paper's log2 axis."""

import math

import click

from tasks import parse_n_tasks


class InputError(click.ClickException):
    """A value the user gave is wrong: shown as one line `Error: ...` (exit status 1), no traceback.

    Anything else raised below an entry point is a bug or a numerical failure and keeps its traceback.
    """


class NTasks(click.ParamType):
    """M: a positive integer, or inf for a fresh task per sequence (parsed here, once)."""

    name = "n_tasks"

    def convert(self, value, param, ctx):
        if value == math.inf or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            return value
        try:
            return parse_n_tasks(value)
        except ValueError as error:
            self.fail(str(error), param, ctx)


class CommaList(click.ParamType):
    """Comma-separated values of another type: a sweep axis (n_tasks=2,8,32,inf; weight_decay=0,1e-4)."""

    def __init__(self, inner):
        self.inner = inner
        self.name = f"{inner.name} list"

    def convert(self, value, param, ctx):
        if isinstance(value, list):
            return value
        return [self.inner.convert(item.strip(), param, ctx) for item in str(value).split(",")]


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
        self.name = inner.name

    def convert(self, value, param, ctx):
        if value is None or value == "":
            return None
        return self.inner.convert(value, param, ctx)


POSITIVE = click.IntRange(min=1)
SEED = click.IntRange(min=0, max=2**63 - 1)
POSITIVE_FLOAT = click.FloatRange(min=0, min_open=True)
DEVICE = Device()


# Where M = inf sits on the paper's x-axis (log2 M) in the MLflow UI: two units right of the paper's
# largest pool, 2^20, as the sweep figure leaves two units after the largest M of its grid.
INF_LOG2_N_TASKS = 22.0


def log2_n_tasks(n_tasks):
    """log2 M, with M = inf at INF_LOG2_N_TASKS: a numeric task diversity the UI can order and space."""
    return INF_LOG2_N_TASKS if n_tasks == math.inf else math.log2(n_tasks)


def pool_label(n_tasks):
    """m1024, minf: used in run names and registry aliases."""
    return "minf" if n_tasks == float("inf") else f"m{n_tasks}"


def as_text(value):
    """A setting as MLflow stores it (params, tags): inf as "inf", None as ""."""
    if value is None:
        return ""
    return "inf" if value == float("inf") else str(value)
