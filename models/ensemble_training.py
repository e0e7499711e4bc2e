"""The training loop of an ensemble (models/ensemble.py): S members, one batched step, each member's own
data, schedule and reports.

It mirrors models.train: batches are a pure function of the step (and of which members are left), and
every member reports through its own hooks exactly what a single training would (on_log, on_eval,
on_end), so each member can be tracked as a training of its own. A member whose loss stops being finite is
dropped from the batch and fails alone (its TrainingDiverged is returned in its place); the others go on.
Each member's checkpoint is a single training's (its weights, its optimiser as torch's AdamW), so a
member resumes alone or packed with any others that stopped at the same step.
"""

import math

import torch

from models.checkpoint import LoopState, save_checkpoint
from models.ensemble import ensemble_step
from models.training import LOG_EVERY, TrainingDiverged, TrainingInterrupted, compiled, evaluates


def train_ensemble(
    ensemble,
    optimizer,
    optims,
    *,
    batches,
    evaluate,
    eval_every,
    hooks,
    eval_per_decade=0,
    start=None,
    checkpointing=None,
    should_stop=None,
    compile=False,
):
    """Train every member of `ensemble` from `start` to the common total_steps of `optims` (one
    OptimSettings each); returns, per member, its final evaluation's curves or the TrainingDiverged that
    dropped it.

    `batches(step, members)` returns xs (S', B, K, D) and ys (S', B, K) for the members still training
    (their original indices, in order); `evaluate(index, model)` scores member `index` as a stand-alone
    model; `hooks[index]` are member `index`'s hooks. `start` is a LoopState whose loss_sum, if any, holds
    one running sum per member (S,). `checkpointing[index]` (a models.Checkpointing each, one `every`)
    is where member `index`'s checkpoints go, each a single training's checkpoint (models/checkpoint.py):
    it resumes alone or in any ensemble. `should_stop()` is asked after every step and `compile` compiles
    the batched step (models.training.compiled), as in models.train.
    """
    total = optims[0].total_steps
    if any(o.total_steps != total for o in optims):
        raise ValueError(f"an ensemble trains its members for one length, got {[o.total_steps for o in optims]}")
    start = start or LoopState(0, None, 0)
    if not 0 <= start.step <= total:
        raise ValueError(f"start step {start.step} must be in [0, total_steps={total}]")
    every = None
    if checkpointing:
        intervals = {c.every for c in checkpointing}
        if len(intervals) > 1:
            raise ValueError(f"an ensemble checkpoints its members together, got every={sorted(intervals)}")
        (every,) = intervals
    members, results = list(range(len(optims))), {}
    running, count = start.loss_sum, start.loss_count
    like = ensemble.read_in.weight
    stepped = compiled(ensemble) if compile else ensemble

    def evaluation(done):
        """Each member evaluated as a stand-alone model (built once, returned for the checkpoints); a
        KeyboardInterrupt writes the step's checkpoints first, as models.train does."""
        models = [ensemble.member(k) for k in range(len(members))]
        try:
            for i, model in zip(members, models, strict=True):
                results[i] = evaluate(i, model)
                for hook in hooks[i]:
                    hook.on_eval(done, results[i])
        except KeyboardInterrupt:
            if checkpointing:
                _save_members(models, optimizer, optims, members, LoopState(done, running, count), checkpointing, hooks)
            raise
        return models

    if start.step and evaluates(start.step, total, eval_every, eval_per_decade):
        evaluation(start.step)  # a stop may have cut this evaluation short (models.train)
    for step in range(start.step, total):
        # The members' learning rates, made a device tensor once per logging window: a host-to-device
        # copy every step would make the host wait for the device every step.
        if step == start.step or step % LOG_EVERY == 0:
            window = range(step, min(step - step % LOG_EVERY + LOG_EVERY, total))
            rates = torch.tensor([[optims[i].lr_at(s) for i in members] for s in window], dtype=like.dtype)
            rates = rates.to(like.device)
        xs, ys = batches(step, members)
        losses = ensemble_step(stepped, optimizer, xs, ys, rates[step - window.start])
        running, count = (losses if running is None else running + losses), count + 1
        done = step + 1
        # ---- training loss per member, every LOG_EVERY steps (one device sync for all)
        if done % LOG_EVERY == 0 or done == total:
            means = (running / count).tolist()
            running, count = None, 0
            keep = []
            for k, (i, mean) in enumerate(zip(members, means, strict=True)):
                if not math.isfinite(mean):
                    results[i] = TrainingDiverged.at(done, mean, optims[i].lr)
                    continue
                keep.append(k)
                for hook in hooks[i]:
                    hook.on_log(done, {"training/loss": mean, "training/lr": optims[i].lr_at(step)})
            if len(keep) < len(members):
                members = [members[k] for k in keep]
                if not members:
                    break
                chosen = ensemble.select(keep)
                optimizer, ensemble = optimizer.select(chosen, keep), chosen
                stepped = compiled(ensemble) if compile else ensemble
                rates = rates[:, keep]
        # ---- evaluation, member by member
        models = evaluation(done) if evaluates(done, total, eval_every, eval_per_decade) else None
        # ---- checkpoints, one single-training file per member: on schedule, at the end, before stopping
        stop = should_stop is not None and bool(should_stop()) and done < total
        if checkpointing and (done % every == 0 or done == total or stop):
            models = models or [ensemble.member(k) for k in range(len(members))]
            _save_members(models, optimizer, optims, members, LoopState(done, running, count), checkpointing, hooks)
        if stop:
            raise TrainingInterrupted(done)
    for i in members:
        for hook in hooks[i]:
            hook.on_end(total, results[i])
    return [results[i] for i in range(len(optims))]


def _save_members(models, optimizer, optims, members, loop, checkpointing, hooks):
    """Each member's checkpoint at `loop` (LoopState with the ensemble's running sums), as a single
    training's: `models[k]` holds the weights of member `members[k]`."""
    for k, (i, model) in enumerate(zip(members, models, strict=True)):
        state = LoopState(loop.step, None if loop.loss_sum is None else loop.loss_sum[k], loop.loss_count)
        own = optimizer.member_optimizer(k, model, optims[i].lr)
        save_checkpoint(
            checkpointing[i].path, model=model, optimizer=own, loop=state, settings=checkpointing[i].settings
        )
        for hook in hooks[i]:
            hook.on_checkpoint(loop.step, checkpointing[i].path)
