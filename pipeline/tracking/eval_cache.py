"""The eval sets an evaluate_baselines run draws, with the estimators' predictions on them, as the artifact
folder eval/ that the trainings reusing the run read back (and check against their own pool and settings)."""

import dataclasses
import json
from pathlib import Path

import numpy as np

from pipeline.evaluation import ESTIMATORS
from pipeline.types import InputError
from tasks import EvalSet


def save_eval_sets(folder, eval_sets, preds, settings, pool):
    """Write eval sets with cached predictions (eval/{dist}.npz) and how they were made (settings.json:
    the EvalSettings `settings` and the pool digest)."""
    folder = Path(folder)
    for dist, eval_set in eval_sets.items():
        arrays = {"xs": eval_set.xs, "ws": eval_set.ws, "ys": eval_set.ys, **preds[dist]}
        np.savez(folder / f"{dist}.npz", **arrays)
    record = dataclasses.asdict(settings) | {"pool_sha256": pool.digest, "task_prior": pool.task_prior}
    (folder / "settings.json").write_text(json.dumps(record, indent=2))


def load_eval_sets(folder, pool, settings, uri):
    """{dist: (eval set, cached predictions)} from an evaluate_baselines run's eval/ `folder` (save_eval_sets),
    checked to be drawn for `pool` with EvalSettings `settings`; `uri` (the run the user named) in errors."""
    try:
        record = json.loads(Path(folder, "settings.json").read_text())
    except (OSError, ValueError):
        raise InputError(f"baselines={uri!r} is not an evaluate_baselines run (no eval/settings.json)") from None
    check_drawn_for(record, pool, uri)
    for key, value in dataclasses.asdict(settings).items():
        if record[key] != value:
            raise InputError(f"baselines={uri!r} used {key}={record[key]} but {key}={value}")
    evaluation = {}
    for path in sorted(Path(folder).glob("*.npz")):
        with np.load(path) as data:
            preds = {name: data[name] for name in ESTIMATORS if name in data}
            evaluation[path.stem] = (EvalSet(data["xs"], data["ws"], data["ys"]), preds)
    return evaluation


def check_drawn_for(record, pool, uri):
    """A baselines run's eval sets (`record`: its eval/settings.json) were drawn for this pool: its tasks
    (the digest) and its task prior (M = inf pools of both priors are empty: one digest)."""
    if record["pool_sha256"] != pool.digest:
        raise InputError(
            f"baselines={uri!r} was computed on another pool "
            f"(sha256 {record['pool_sha256'][:12]}... != {pool.digest[:12]}...)"
        )
    drawn = record.get("task_prior", "gaussian")  # runs from before the Laplace prior
    if drawn != pool.task_prior:
        raise InputError(f"baselines={uri!r} drew task_prior={drawn} tasks but the pool's prior is {pool.task_prior}")
