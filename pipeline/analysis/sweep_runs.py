"""What an analysis reads: a sweep's summary table (one row per grid point, the run ids of its chain) and
the tracked histories of its train runs. Nothing is recomputed."""

import dataclasses
import json
import math
import tempfile
from pathlib import Path

from pipeline.sweep.summary import LOSSES, group_key, setting_text
from pipeline.types import InputError

SUMMARY = "summary/summary.json"


@dataclasses.dataclass
class Sweep:
    """A finished sweep run: its id, params, metrics, the summary's rows and the axes of its grid."""

    run_id: str
    params: dict
    metrics: dict
    rows: list
    axes: list

    def curve(self, row):
        """The row's values on every axis but M (one curve per value): '' when M is the only axis."""
        return ", ".join(f"{axis}={row[axis]}" for axis in self.axes[1:])

    @property
    def setting(self):
        """The sweep's setting in one line, printed on its analyses' figures (summary.setting_text); '' for a
        sweep without all of them (a test's stand-in, or one logged before an option existed)."""
        values = {name: str(value).split(",") for name, value in self.params.items()}
        try:
            return setting_text(values | {"noise_scale": [float(v) for v in values["noise_scale"]]})
        except KeyError:
            return ""

    def metric_key(self, row):
        """m<M> and, with other axes, their values as MLflow allows in a key: m4/weight_decay_0.1."""
        return f"m{row['n_tasks']}" + group_key([(axis, row[axis]) for axis in self.axes[1:]])


def open_sweep(client, uri):
    """The Sweep behind `uri` (runs:/<id> of a main run), read through MlflowClient `client`."""
    if not uri.startswith("runs:/"):
        raise InputError(f"sweep={uri!r} must be runs:/<id> of a sweep (main) run")
    run_id = uri.removeprefix("runs:/").strip("/").split("/")[0]
    try:
        run = client.get_run(run_id)
    except Exception as error:  # MLflow raises several types for a missing run
        raise InputError(f"sweep={uri!r} cannot be read: {str(error).splitlines()[0]}") from None
    if run.data.tags.get("stage") != "main" or run.info.status != "FINISHED":
        raise InputError(f"sweep={uri!r} is not a FINISHED sweep run (stage {run.data.tags.get('stage')!r})")
    columns, rows = read_table(client, run_id, SUMMARY)
    for row in rows:
        row["log2_n_tasks"] = math.log2(row["n_tasks"])
    axes = ["n_tasks", *columns[2 : columns.index(LOSSES[0])]]
    return Sweep(run_id, run.data.params, run.data.metrics, rows, axes)


def read_table(client, run_id, path):
    """(columns, rows as dicts) of the table logged at artifact `path` of run `run_id` (MLflow's log_table:
    JSON with columns and data). NaN and inf are null in that JSON, or text where the logger wrote them so:
    null reads back as NaN, except in the n_tasks column, where it can only have been M = inf."""
    with tempfile.TemporaryDirectory() as folder:
        table = json.loads(Path(client.download_artifacts(run_id, path, folder)).read_text())
    rows = [dict(zip(table["columns"], values, strict=True)) for values in table["data"]]
    for row in rows:
        row |= {key: math.nan for key, value in row.items() if value is None}
        row |= {key: math.inf for key, value in row.items() if value == "inf"}
        if "n_tasks" in row and row["n_tasks"] != row["n_tasks"]:
            row["n_tasks"] = math.inf
    return table["columns"], rows


def registered_model_uri(client, train_run):
    """models:/<name>/<version> of the model registered from `train_run` (its newest version)."""
    versions = client.search_model_versions(f"run_id = '{train_run}'")
    if not versions:
        raise InputError(f"train run {train_run} registered no model (it failed the sanity gate?)")
    version = max(versions, key=lambda v: int(v.version))
    return f"models:/{version.name}/{version.version}"


def history(client, run_id, key):
    """(steps, values) of metric `key` of run `run_id`, in step order."""
    points = sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))
    return [s for s, _ in points], [v for _, v in points]


@dataclasses.dataclass
class Analysis:
    """What an analysis logs: figures {artifact path: Figure}, tables {artifact path: columns -> lists},
    metrics {key: value}, the description's findings (markdown lines) and the runs it read."""

    figures: dict
    tables: dict
    metrics: dict
    findings: list
    runs: list
