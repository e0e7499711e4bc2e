"""The sweep's run as its dashboard in the MLflow UI: the transition without opening an artifact.

- Metrics `by_M/<dist>/<name>[/<curve>]` hold the summary as histories whose step is the pool size on the
  paper's x-axis (log2 M, M = inf at INF_LOG2_N_TASKS), so the run's Model metrics tab draws loss/D and
  each Delta against M: one point per pool size, one metric per curve (data scale, other axes). Names:
  `delta_pt_ridge` ... as on the train runs, `loss_pt`, `loss_dmmse`, `loss_ridge` for their
  `<predictor>/loss_noiseless`, so that each distribution's charts form one section of the tab.
  `log2_n_tasks` holds the same x-axis, so it can also be picked as a chart's x-axis.
- Metrics `<point>/<dist>/<name>` (m256/true/delta_pt_ridge) hold the same numbers as scalars named by
  their grid point, so the Overview's metrics table says which M (and other axes) each value belongs to.
- The description (markdown on the run's Overview page): the summary figure (full size, from the run's
  artifact), the summary table, the threshold and how to
  read the charts, and a link to every run of every chain.
- The chains' runs are nested under this run; those reused from an earlier sweep stay under that one, and
  the table marks and links them (pipeline/sweep/chain.py).
"""

import math
import re

from pipeline.sweep.summary import DELTAS, LOSSES, curve_label, group_label
from pipeline.types import INF_LOG2_N_TASKS, log2_n_tasks, pool_label

PREFIX = "by_M"
# The description's table: (header, row key) in this order.
TABLE = [
    ("loss/D PT (True)", "true/pt/loss_noiseless"),
    ("dMMSE (True)", "true/dmmse/loss_noiseless"),
    ("ridge (True)", "true/ridge/loss_noiseless"),
    ("Δ PT,dMMSE (Pre / True)", ("pretrain/delta_pt_dmmse", "true/delta_pt_dmmse")),
    ("Δ PT,Ridge (Pre / True)", ("pretrain/delta_pt_ridge", "true/delta_pt_ridge")),
]


def chart_scale(rows):
    """Steps per unit of log2 M: 1 when every finite M of the sweep is a power of two (the step is then
    log2 M itself), else the smallest of 10, 100, ... that keeps the pool sizes on distinct integer steps."""
    finite = sorted({r["log2_n_tasks"] for r in rows if math.isfinite(r["log2_n_tasks"])})
    if all(x == round(x) for x in finite):
        return 1
    return next((scale for scale in (10, 100, 1000) if len({round(scale * x) for x in finite}) == len(finite)), 10_000)


def chart_x(row):
    """log2 M of a summary row, placed as the runs' log2_n_tasks metric places it (M = inf too)."""
    return log2_n_tasks(math.inf if row["n_tasks"] == "inf" else row["n_tasks"])


def metric_key(text):
    """`text` as an MLflow metric name: characters it refuses ("=", ",", ...) as "_"."""
    return re.sub(r"[^\w.\- /]", "_", text)


def metric_suffix(row, axes):
    """'' for a sweep over M alone, else /B512-weight_decay_0.001 (MLflow's allowed characters only)."""
    label = curve_label(row, axes).replace(", ", "-")
    return "/" + metric_key(label) if label else ""


def dashboard_key(key):
    """true/pt/loss_noiseless -> by_M/true/loss_pt; true/delta_pt_ridge -> by_M/true/delta_pt_ridge."""
    parts = key.split("/")
    return f"{PREFIX}/{parts[0]}/loss_{parts[1]}" if len(parts) == 3 else f"{PREFIX}/{key}"


def point_prefix(row, axes):
    """m256, minf, m256-B512-weight_decay_0.001: the grid point a per-point scalar belongs to."""
    return pool_label(math.inf if row["n_tasks"] == "inf" else row["n_tasks"]) + metric_suffix(row, axes).replace(
        "/", "-"
    )


def log_curves_by_pool_size(run, rows, axes):
    """The summary's losses and Deltas as histories over M (see the module docstring), and each as a scalar
    named by its point (`m256/true/delta_pt_ridge`: the Overview's metrics table says which M each value is
    of, and the Model metrics tab has a section per point); returns the scale of the steps (chart_scale)."""
    scale = chart_scale(rows)
    for row in rows:
        suffix, finite = metric_suffix(row, axes), [key for key in LOSSES + DELTAS if math.isfinite(row[key])]
        run.log_metrics({f"{dashboard_key(key)}{suffix}": row[key] for key in finite}, round(scale * chart_x(row)))
        run.log_metrics({f"{point_prefix(row, axes)}/{key}": row[key] for key in finite})
    for x in sorted({chart_x(row) for row in rows}):  # the x-axis itself, once per pool size
        run.log_metrics({"log2_n_tasks": x}, round(scale * x))
    return scale


# MLflow keeps at most this many characters of a tag (the description is one), and cuts the rest silently.
TAG_LIMIT = 8000


def description(preset, rows, axes, found, scale, chains, experiment_id, reused=(), figure=""):
    """The sweep run's markdown description, below the markdown `figure` (the summary figure, shown full size);
    `chains` ({stage: run id} per row) are linked, in `experiment_id`, those `reused` from earlier sweeps
    (which keep them nested) marked, unless the table would then not fit in a tag (the paper's grid): the
    runs table nests the sweep's own anyway."""
    head = figure + "\n\n" if figure else ""
    text = head + _description(preset, rows, axes, found, scale, _table(rows, axes, chains, experiment_id, reused))
    if len(text) > TAG_LIMIT:
        text = head + _description(preset, rows, axes, found, scale, _table(rows, axes, None, experiment_id))
    if len(text) > TAG_LIMIT:
        cut = "\n\n(table cut here: `summary/summary.csv` has every row)"
        text = text[: TAG_LIMIT - len(cut)].rsplit("\n", 1)[0] + cut
    return text


def _description(preset, rows, axes, found, scale, table):
    lines = [
        f"**Task-diversity sweep `{preset}`**: {len(rows)} trainings over {', '.join(axes)}.",
        "",
        *(
            f"- **Threshold{' for ' + group_label(t.group) if t.group else ''}**: {t.finding} (rule: {t.rule})"
            for t in found
        ),
        "",
        "**How to read it.** In *Model metrics*, the charts `by_M/...` draw the summary against the number of "
        f"pretraining tasks: the step is {'' if scale == 1 else f'{scale} x '}log2 M, with M = inf at "
        f"{scale * INF_LOG2_N_TASKS:g}. `by_M/true/delta_pt_ridge` (how far the transformer is from ridge on "
        "fresh tasks) falls to near 0 above the threshold; `by_M/pretrain/delta_pt_dmmse` (how far it is from "
        "dMMSE on the pool's tasks) is near 0 below it. The figure `summary/sweep.png` (Artifacts) draws all "
        "panels; `summary/summary.csv` holds every number.",
        "",
        table,
    ]
    return "\n".join(lines)


def _for(group):
    return f" for {group_label(group)}" if group else ""


def _table(rows, axes, chains, experiment_id, reused=()):
    headers = ["M", *axes[1:], *(header for header, _ in TABLE), *(["runs"] if chains else [])]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for row, chain in zip(rows, chains or [None] * len(rows), strict=True):
        cells = [str(row["n_tasks"]), *(str(row[axis]) for axis in axes[1:])]
        for _, keys in TABLE:
            keys = keys if isinstance(keys, tuple) else (keys,)
            cells.append(" / ".join(_number(row[key]) for key in keys))
        if chain:
            runs = f"#/experiments/{experiment_id}/runs"
            links = (f"[{stage.split('_')[-1]}{'*' * (i in reused)}]({runs}/{i})" for stage, i in chain.items())
            cells.append(" ".join(links))
        lines.append("| " + " | ".join(cells) + " |")
    if chains and reused:
        lines += ["", "\\* reused from an earlier sweep, under which it stays nested (its tag `sweeps` lists both)"]
    return "\n".join(lines)


def _number(value):
    return "–" if not math.isfinite(value) else f"{value:.3f}"
