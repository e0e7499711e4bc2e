"""A training assembled: the one place that builds a training's parts from its TrainSettings (the model and
optimiser, the batch stream, the evaluation against the estimators, the tracking hooks) and runs it, for a
single training, a rank of a data-parallel one (pipeline/distributed.py) and the members of a packed
ensemble (pipeline/packed.py) alike.

The loop is `models.train` (MLflow-free); this module wires in the data (from `tasks`, a pure function of
the step) and the estimators, and hooks tracking onto the loop: the training loss, and every `eval_every`
steps the transformer's loss/D, Delta_{PT,Ridge} and Delta_{PT,dMMSE} on T_Pretrain and T_True, on the
eval sets and estimator predictions of an evaluate_baselines run (`baselines`) or computed here (then
logged once, at step 0); checkpoints (pipeline/tracking/resume.py); the pool and eval sets as dataset
inputs; the per-position curves as a table and a figure; the final model, registered under its label's
alias once it passed the sanity gate. A failed run registers nothing; an interrupted one resumes by the
same command.
"""

import contextlib
import dataclasses
import functools
import tempfile
from pathlib import Path

import click
import torch

import models
from models import Checkpointing, Hook, TrainingDiverged, build_model, loop_state, make_optimizer
from models.progress import Progress
from pipeline import shutdown
from pipeline.bounds import check_training
from pipeline.cli import open_pool
from pipeline.devices import device_of, fixed_threads
from pipeline.distributed import follow, ranks
from pipeline.evaluation import (
    build_eval_sets,
    estimator_predictions,
    involves_transformer,
    sanity_error,
    score,
    transformer_predictions,
)
from pipeline.figures import per_position_figure
from pipeline.settings import TrainSettings, flat
from pipeline.tracking.curves import log_curves, log_pool_size, log_position_table
from pipeline.tracking.datasets import log_eval_datasets, pool_dataset
from pipeline.tracking.eval_cache import load_eval_sets
from pipeline.tracking.registry import alias, log_and_register
from pipeline.tracking.resume import CheckpointUpload, last_logged_steps, restored_checkpoint, resumable_run
from pipeline.tracking.runs import local_copy, tracked_run
from pipeline.types import InputError, pool_label
from tasks import batch_stream


class TrackingHook(Hook):
    """The loop's reports, logged on `run`: loss and lr, and the eval curves that involve the transformer
    (the estimators' do not change during training). A resumed run skips what it had logged before it
    stopped (`logged`: metric key -> last step), so histories continue without duplicate steps."""

    def __init__(self, run, logged):
        self.run, self.logged = run, logged

    def on_log(self, step, scalars):
        self.run.log_metrics(scalars, step, self.logged)

    def on_eval(self, step, curves):
        own = {key: curve for key, curve in curves.items() if involves_transformer(key)}
        log_curves(self.run, own, step=step, logged=self.logged)


def train(tracking, settings, *, parent=None, label=None, checkpoint_every=None, resume="auto", compile=False):
    """Train, evaluate and register the model of TrainSettings `settings`; returns the run id.

    `parent` nests the run under that run id; `label` names it (train-<label>), its registry alias and
    prefixes its progress lines (several trainings share a terminal). A checkpoint is uploaded every
    `checkpoint_every` steps (default: eval_every). `resume="auto"` continues an interrupted run with the
    same settings (pipeline/tracking/resume.py); "never" starts afresh. SIGTERM or SIGINT during a step checkpoint
    the training and end its run KILLED (models.TrainingInterrupted); at any other moment (estimators,
    evaluation, registration) they end it KILLED at once (pipeline/shutdown.py). `compile` compiles the
    training step (tag `compiled`). Under torchrun, the ranks share each batch (pipeline/distributed.py).
    """
    device = device_of(settings.device)
    with shutdown.handling(), fixed_threads(settings.threads), ranks(settings, device) as rank:
        check_training(settings, rank.device)
        if rank.index > 0:  # torchrun: this rank computes its share; rank 0 writes the run
            pool = open_pool(settings.pool, settings.data.n_dims)
            model, optimizer = learner(settings, rank.device)
            stream = batches(settings, pool, on_device(pool, rank.device), rank.device)
            with shutdown.deferred():
                follow(settings, rank, model, optimizer, stream, checkpoint_every, shutdown.requested, compile)
            return None
        with (
            opened(
                tracking, settings, rank.device, parent=parent, label=label, resume=resume, compile=compile
            ) as training,
            tempfile.TemporaryDirectory() as folder,
        ):
            start = rank.lead(training)
            try:
                with shutdown.deferred():  # a signal ends the step, checkpoints and stops
                    curves = models.train(
                        training.model,
                        training.optimizer,
                        settings.optim,
                        batches=rank.share(training.batches, settings.data.batch_size),
                        evaluate=shutdown.interruptible(training.evaluate),
                        eval_every=settings.eval_every,
                        eval_per_decade=settings.eval_per_decade,
                        hooks=training.hooks,
                        checkpointing=training.checkpointing(folder, checkpoint_every),
                        start=start,
                        should_stop=shutdown.requested,
                        compile=compile,
                        strategy=rank.strategy,
                    )
            except TrainingDiverged as error:  # the learning rate the user chose is too high for this model
                raise training.refused(error) from None
            training.finish(curves)
    return training.run.id


@dataclasses.dataclass
class Training:
    """One training's open run and what its loop needs (`opened`): the model and optimiser (restored when
    resumed, with the LoopState `start`), its data, its evaluation and its hooks (progress, tracking,
    checkpoint upload). The single loop drives one; pipeline/packed.py drives several as an ensemble."""

    run: object
    settings: TrainSettings
    pool: object
    label: str
    prefix: str
    device: torch.device
    evaluation: dict
    model: models.InContextRegressor
    optimizer: torch.optim.Optimizer
    start: object
    hooks: list
    record: dict
    tasks: object = None  # the pool's tasks on the device (None at M = inf)

    @functools.cached_property
    def batches(self):
        """step -> (xs, ys) of this training: a pure function of the step and the settings' seeds."""
        return batches(self.settings, self.pool, self.tasks, self.device)

    def evaluate(self, model):
        """{metric: per-position curve} of `model` on the eval sets, against the estimators."""
        curves = {}
        for dist, (eval_set, preds) in self.evaluation.items():
            pt = transformer_predictions(model, eval_set, device=self.device)
            curves |= score(dist, eval_set, {**preds, "pt": pt})
        return curves

    def checkpointing(self, folder, every=None):
        """Where and how often the loop writes this training's checkpoint (default: every evaluation)."""
        return Checkpointing(Path(folder), self.record, every or self.settings.eval_every)

    def refused(self, error):
        """The InputError that a TrainingDiverged or the sanity gate's refusal becomes (the lr is the user's);
        the run is not resumable (the same settings would train the same model again)."""
        self.run.set_tag("resumable", "false")
        return InputError(str(error))

    def finish(self, curves):
        """After the last step: the sanity gate (a model it refuses is never logged), the per-position
        table and figure, then the model, logged and registered under the alias of the label."""
        run, settings, evaluation = self.run, self.settings, self.evaluation
        if error := sanity_error(curves, evaluation, settings.optim.lr):
            raise self.refused(error)
        log_position_table(run, curves)
        figure = per_position_figure(curves, list(evaluation), f"M = {self.pool.n_tasks}")
        run.log_figure(figure, "figures/per_position.png")
        name = settings.model_name
        if not self.prefix:  # alone; in a sweep, the line below says it all
            click.echo(f"registering the model as {name} (alias {alias(self.label)}) ...")
        final = {key: float(curve.mean()) for key, curve in curves.items()}
        version = log_and_register(run, self.model, settings, self.pool, self.label, final)
        click.echo(f"{self.prefix}registered models:/{name}/{version}; reload it as models:/{name}@{alias(self.label)}")


@contextlib.contextmanager
def opened(tracking, settings, device, *, parent=None, label=None, resume="auto", compile=False):
    """The Training of TrainSettings `settings` on `device`, its run open (tracking.tracked_run: FINISHED
    when the block ends, FAILED or KILLED when it raises) and resumed from its checkpoint when `resume`
    is "auto" and an interrupted run with the same params has one. What the user named (the pool, the
    baselines run, a checkpoint to resume) is read before the run opens or reopens: a bad one is a
    one-line error that leaves no run behind. With a `parent` (a sweep: several trainings share the
    terminal), its progress is lines prefixed with the label. `compile`: whether its step will be
    compiled (the run's tag `compiled` says so)."""
    pool = open_pool(settings.pool, settings.data.n_dims)
    total = settings.optim.total_steps
    label = label or pool_label(pool.n_tasks)
    params = flat(settings)
    previous = resumable_run(tracking, params, total) if resume == "auto" else None
    state, checkpoint = restored_checkpoint(previous, device) if previous else (None, None)
    cached = _cached_evaluation(settings, pool) if settings.baselines else None
    with tracked_run(tracking, f"train-{label}", "train", parent, reopen=previous) as run:
        run.log_params(params | {"n_tasks": pool.n_tasks, "task_scale": pool.task_scale, "task_prior": pool.task_prior})
        run.set_tag("pool_sha256", pool.digest)
        if compile:
            run.set_tag("compiled", "true")
        evaluation = cached or _computed_evaluation(settings, pool)
        _log_inputs(run, settings, pool, evaluation, resumed=previous is not None)
        model, optimizer = learner(settings, device)
        start, logged = _restore(run, state, model, optimizer)
        n_params = sum(p.numel() for p in model.parameters())
        run.log_params({"n_params": n_params})
        prefix = f"[{label}] " if parent else ""
        click.echo(f"{prefix}training {n_params:,} parameters on {device} for {total} steps, M={pool.n_tasks}")
        record = params | {"n_tasks": pool.n_tasks, "task_scale": pool.task_scale, "pool_sha256": pool.digest}
        progress = Progress(total, prefix, start.step if start else 0)
        hooks = [progress, TrackingHook(run, logged), CheckpointUpload(run, checkpoint)]
        with contextlib.closing(progress):
            yield Training(
                run=run,
                settings=settings,
                pool=pool,
                label=label,
                prefix=prefix,
                device=device,
                evaluation=evaluation,
                model=model,
                optimizer=optimizer,
                start=start,
                hooks=hooks,
                record=record,
                tasks=on_device(pool, device),
            )


def _log_inputs(run, settings, pool, evaluation, *, resumed):
    """What the training read: log2_n_tasks, the pool and eval sets as dataset inputs, the runs that made
    them linked in the description, and, without a baselines run, the estimators' numbers once (step 0).
    A `resumed` run has them already."""
    if resumed:
        return
    log_pool_size(run, pool.n_tasks)
    run.log_dataset(pool_dataset(pool), context="training")
    log_eval_datasets(run, {dist: eval_set for dist, (eval_set, _) in evaluation.items()}, pool_label(pool.n_tasks))
    lines = [
        f"Transformer pretrained on M = {pool.n_tasks} tasks ({settings.optim.total_steps} steps of batch "
        f"{settings.data.batch_size}).",
        "",
        f"- pool: {run.link(settings.pool)}",
    ]
    if settings.baselines:
        lines.append(f"- estimators (ridge, dMMSE) on the same eval sets: {run.link(settings.baselines)}")
    else:
        estimators = {}
        for dist, (eval_set, preds) in evaluation.items():
            estimators |= score(dist, eval_set, preds)
        log_curves(run, estimators, step=0)
    run.set_description("\n".join(lines))


def _restore(run, state, model, optimizer):
    """(LoopState or None, {metric: last logged step}): where the reopened `run` continues from, its
    checkpoint's `state` (None: a new run) loaded into `model` and `optimizer`."""
    if state is None:
        return None, {}
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    name = run.client.get_run(run.id).info.run_name
    click.echo(f"resuming {name} ({run.id}) from its checkpoint of step {state['step']}")
    return loop_state(state), last_logged_steps(run)


def _computed_evaluation(settings, pool):
    """{dist: (eval set, estimator predictions)} computed here (no `baselines` run given)."""
    eval_sets = build_eval_sets(pool, settings.evaluation)
    noise = settings.evaluation.noise_scale
    return {d: (s, estimator_predictions(pool, s, noise)) for d, s in eval_sets.items()}


def _cached_evaluation(settings, pool):
    """{dist: (eval set, estimator predictions)} of the evaluate_baselines run `settings.baselines`."""
    uri = settings.baselines.rstrip("/")
    uri = uri if uri.endswith("/eval") else f"{uri}/eval"
    with local_copy(uri, name="baselines", given=settings.baselines) as folder:
        return load_eval_sets(folder, pool, settings.evaluation, settings.baselines)


def learner(settings, device):
    """The model of TrainSettings `settings` (its seed's initial weights) on `device`, and its optimiser."""
    model = build_model(settings.arch, seed=settings.model_seed, device=device)
    return model, make_optimizer(model, lr=settings.optim.lr, weight_decay=settings.optim.weight_decay)


def on_device(pool, device):
    """The pool's tasks as a tensor on `device` (None at M = inf: a fresh task per sequence)."""
    return None if pool.tasks is None else torch.from_numpy(pool.tasks).to(device)


def batches(settings, pool, tasks, device):
    """step -> (xs, ys) of a training of `settings` on `pool` (`tasks`: on_device): a pure function of the
    step and the settings' seeds."""
    prior = {"task_scale": pool.task_scale, "task_prior": pool.task_prior}
    return batch_stream(settings.data, pool=tasks, device=device, **prior)
