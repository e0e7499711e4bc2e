"""The training loop of an ensemble (models/ensemble.py): S members, one batched step, each member's own
data, schedule and reports.

It mirrors models.train: batches are a pure function of the step (and of which members are left), and
every member reports through its own hooks exactly what a single training would (on_log, on_eval,
on_end), so each member can be tracked as a training of its own. A member whose loss stops being finite is
dropped from the batch and fails alone (its TrainingDiverged is returned in its place); the others go on.
"""

import math

import torch

from models.ensemble import ensemble_step
from models.training import LOG_EVERY, TrainingDiverged


def train_ensemble(ensemble, optimizer, optims, *, batches, evaluate, eval_every, hooks):
    """Train every member of `ensemble` to the common total_steps of `optims` (one OptimSettings each);
    returns, per member, its final evaluation's curves or the TrainingDiverged that dropped it.

    `batches(step, members)` returns xs (S', B, K, D) and ys (S', B, K) for the members still training
    (their original indices, in order); `evaluate(index, model)` scores member `index` as a stand-alone
    model; `hooks[index]` are member `index`'s hooks.
    """
    total = optims[0].total_steps
    if any(o.total_steps != total for o in optims):
        raise ValueError(f"an ensemble trains its members for one length, got {[o.total_steps for o in optims]}")
    members, results = list(range(len(optims))), {}
    running, count = None, 0
    like = ensemble.read_in.weight
    for step in range(total):
        # The members' learning rates, made a device tensor once per logging window: a host-to-device
        # copy every step would make the host wait for the device every step.
        if step % LOG_EVERY == 0:
            window = range(step, min(step + LOG_EVERY, total))
            rates = torch.tensor([[optims[i].lr_at(s) for i in members] for s in window], dtype=like.dtype)
            rates = rates.to(like.device)
        xs, ys = batches(step, members)
        losses = ensemble_step(ensemble, optimizer, xs, ys, rates[step % LOG_EVERY])
        running, count = (losses if running is None else running + losses), count + 1
        done = step + 1
        # ---- training loss per member, every LOG_EVERY steps (one device sync for all)
        if done % LOG_EVERY == 0 or done == total:
            means = (running / count).tolist()
            running, count = None, 0
            keep = [k for k, mean in enumerate(means) if math.isfinite(mean)]
            for i, mean in zip(members, means, strict=True):
                if not math.isfinite(mean):
                    results[i] = TrainingDiverged.at(done, mean, optims[i].lr)
                    continue
                for hook in hooks[i]:
                    hook.on_log(done, {"training/loss": mean, "training/lr": optims[i].lr_at(step)})
            if len(keep) < len(members):
                members = [members[k] for k in keep]
                if not members:
                    break
                chosen = ensemble.select(keep)
                optimizer, ensemble = optimizer.select(chosen, keep), chosen
                rates = rates[:, keep]
        # ---- evaluation, member by member
        if done % eval_every == 0 or done == total:
            for k, i in enumerate(members):
                results[i] = evaluate(i, ensemble.member(k))
                for hook in hooks[i]:
                    hook.on_eval(done, results[i])
    for i in members:
        for hook in hooks[i]:
            hook.on_end(total, results[i])
    return [results[i] for i in range(len(optims))]
