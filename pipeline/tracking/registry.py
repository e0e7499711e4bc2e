"""The trained transformer in the MLflow registry: logging, registering, aliasing and reloading.

Versions of one registered model carry tags (n_tasks, n_dims, n_points, total_steps, seeds, pool
digest, and the final T_True Deltas to ridge and dMMSE) and a description (what was trained on what,
how close it ended to each estimator); each pool size has an alias, m<M> or minf, on the newest version
trained on it, so `models:/<name>@m1024` reloads in any fresh process.
"""

import contextlib
import io
import logging
import re
import sys
import tempfile
from pathlib import Path

import mlflow
import numpy as np
import torch
from mlflow.models import Model, ModelSignature
from mlflow.types import Schema, TensorSpec

import models
from models import load_model_files, save_model_files
from models.files import CONFIG_FILE, WEIGHTS_FILE
from pipeline import shutdown
from pipeline.settings import flat
from pipeline.tracking.runs import local_copy
from pipeline.types import InputError, as_text

PYFUNC_FILE = Path(__file__).with_name("pyfunc_model.py")
# Settings that say nothing about the model itself are left out of its version's description.
UNDESCRIBED = ("pool", "baselines", "device", "model_name")


def signature():
    """xs (B, K, D) and ys (B, K), float32, every size free: MLflow's own shape check would refuse a wrong D
    before the model sees it, with a message that never says D; the model's check says it plainly
    (pipeline/tracking/pyfunc_model.py), and the version's tags and description give D."""
    inputs = Schema(
        [TensorSpec(np.dtype(np.float32), (-1, -1, -1), "xs"), TensorSpec(np.dtype(np.float32), (-1, -1), "ys")]
    )
    return ModelSignature(inputs=inputs, outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, -1))]))


def alias(label):
    """The registry alias of a training labelled `label` (m1024, m1024-weight_decay=0.001): MLflow allows
    letters, digits, _ and - only, so m1024-weight_decay_0_001."""
    return re.sub(r"[^\w-]", "_", label)


# The final numbers a version is tagged with: {tag: metric of the train run}.
FINAL_TAGS = {"true_delta_pt_ridge": "true/delta_pt_ridge", "true_delta_pt_dmmse": "true/delta_pt_dmmse"}
MODEL_DESCRIPTION = (
    "GPT-2 style transformers pretrained for in-context linear regression on a pool of M tasks "
    "(Raventós et al. 2023). Alias m<M> (minf: a fresh task per sequence) points at the newest version "
    "trained on that pool size. Input: xs float32 (B, K, D), ys float32 (B, K); output: the prediction of "
    "each y_k from x_1, y_1, ..., x_k. Reload one in Python: "
    "`mlflow.pyfunc.load_model('models:/<name>@m<M>').predict({'xs': xs, 'ys': ys})`, or as the torch module: "
    "`pipeline.tracking.registry.load_registered('models:/<name>@m<M>')`. Each version's tags say M, D, K, "
    "the sweep and run that made it; its description lists every setting."
)


def log_and_register(run, model, settings, pool, label, final, name="model"):
    """Log `model` as a pyfunc on `run`, register it with its tags (every setting that shapes it, and the
    `final` T_True Deltas: {metric: value}) and a description, and point the alias of `label` (its pool
    size, and its other sweep axes) at it. Called last in a run; if registering fails or is interrupted
    half-way, the new version is deleted, and versions left by an earlier attempt of the run (killed
    during its registration) are deleted first."""
    n_points, n_dims = model.config.n_points, model.config.n_dims
    example = {"xs": np.zeros((1, n_points, n_dims), np.float32), "ys": np.zeros((1, n_points), np.float32)}
    with tempfile.TemporaryDirectory() as folder:
        config_path, weights_path = save_model_files(model, folder)
        # Model.log with an explicit run id: no fluent active run is needed (trainings may share a process).
        with shutdown.atomic(), quiet():  # MLflow's store writes: a signal waits for them (pipeline/shutdown.py)
            info = Model.log(
                artifact_path=None,
                name=name,
                flavor=mlflow.pyfunc,
                run_id=run.id,
                python_model=str(PYFUNC_FILE),
                artifacts={"config": str(config_path), "state_dict": str(weights_path)},
                code_paths=[str(Path(models.__file__).parent)],
                signature=signature(),
                input_example=example,
                pip_requirements=[
                    f"torch=={torch.__version__.split('+')[0]}",
                    f"mlflow=={mlflow.__version__}",
                    "numpy",
                ],
            )
    tags = version_tags(run, settings, pool, final)
    model_name = settings.model_name
    _drop_unfinished(run, model_name)
    registered = None
    try:
        with shutdown.atomic(), quiet():
            registered = mlflow.register_model(
                info.model_uri, model_name, tags={k: as_text(v) for k, v in tags.items()}
            )
        run.client.update_registered_model(model_name, MODEL_DESCRIPTION)
        description = version_description(settings, pool, final, run.id)
        run.client.update_model_version(model_name, registered.version, description)
        run.client.set_registered_model_alias(model_name, alias(label), registered.version)
        run.completed = True  # an interrupt from here on ends the run FINISHED: its model is in place
    except BaseException:  # an error or an interrupt: no version of a run that did not finish
        if registered is not None:
            with shutdown.masked():
                run.client.delete_model_version(model_name, registered.version)
        raise
    return registered.version


CHATTER = ("Successfully registered model", "Registered model", "Created version")


@contextlib.contextmanager
def quiet():
    """MLflow's chatter while logging and registering a model ("Validating input example...", "Successfully
    registered model...", "Created version..."; printed to stderr or logged at INFO) left out: the training
    says what it registered in one line of its own. Warnings and errors still show."""
    logger, printed = logging.getLogger("mlflow"), io.StringIO()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with contextlib.redirect_stderr(printed):
            yield
    finally:
        logger.setLevel(level)
        for line in printed.getvalue().splitlines():  # what else went to stderr (a warning) goes on there
            if not line.startswith(CHATTER):
                print(line, file=sys.stderr)


def _drop_unfinished(run, model_name):
    """Delete the versions an earlier attempt of `run` registered (a run killed during its registration,
    now resumed into it): a finished run has exactly one version."""
    for version in run.client.search_model_versions(f"name = '{model_name}' and run_id = '{run.id}'"):
        run.client.delete_model_version(model_name, version.version)


def version_tags(run, settings, pool, final):
    """The version's tags: what one filters versions on (MLflow's registry shows every tag in the versions
    table, so at most 8): M, D, K, the sweep and run that made it, the sanity gate it passed (a model
    that fails it is never registered) and its final Deltas on fresh tasks. Every setting is in the
    description (version_description)."""
    sweep = run.client.get_run(run.id).data.tags.get("mlflow.parentRunId", "")
    tags = {"n_tasks": pool.n_tasks, "n_dims": settings.arch.n_dims, "n_points": settings.arch.n_points}
    tags |= {"sweep": sweep, "run_id": run.id, "sanity": "passed"}
    return tags | {tag: final[key] for tag, key in FINAL_TAGS.items() if key in final}


def version_description(settings, pool, final, run_id=""):
    """What one version was trained on, how close it ended to each estimator, and every setting of its
    training (the tags hold only what one filters on: version_tags)."""
    arch, optim = settings.arch, settings.optim
    text = (
        f"Trained on M = {as_text(pool.n_tasks)} tasks (D = {arch.n_dims}, K = {arch.n_points}, pool sha256 "
        f"{pool.digest[:12]}), n_layer {arch.n_layer}, n_embd {arch.n_embd}, {optim.total_steps} steps of batch "
        f"{settings.data.batch_size}, lr {optim.lr}, weight decay {optim.weight_decay}."
    )
    numbers = [f"{name} {final[key]:.4f}" for name, key in FINAL_TAGS.items() if key in final]
    text += " Final Delta on fresh tasks (T_True): " + ", ".join(numbers) + "." if numbers else ""
    every = {key: value for key, value in flat(settings).items() if key not in UNDESCRIBED}
    every |= {"pool_seed": pool.seed, "pool_sha256": pool.digest, "run_id": run_id}
    return text + "\n\nSettings: " + ", ".join(f"{key}={as_text(value)}" for key, value in every.items() if value != "")


def load_registered(uri, device="cpu"):
    """The transformer behind a `models:/` or `runs:/` model URI, as a torch module on `device`."""
    with local_copy(uri, name="model") as folder:
        artifacts = Path(folder, "artifacts")
        if not artifacts.is_dir():
            raise InputError(f"model={uri!r} is not a model logged by this project (no artifacts/ folder)")
        return load_model_files(artifacts / CONFIG_FILE, artifacts / WEIGHTS_FILE, device)
