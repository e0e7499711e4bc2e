"""Log-spaced evaluations (eval_per_decade, for the transition time of paper Fig. 4): at which steps, alone and
packed, and a resume from one of them evaluates it again."""

import math

import pytest
import torch
from test_ensemble import CONFIG, OPTIMS, Record, batch, members_of, stacked
from test_ensemble import evaluate as ensemble_evaluate
from test_ensemble import fresh as fresh_members
from test_training import OPTIM, batches, evaluate, fresh

from models import (
    Checkpointing,
    Hook,
    TrainingInterrupted,
    build_model,
    load_checkpoint,
    loop_state,
    make_optimizer,
    model_from_checkpoint,
    train,
    train_members,
)
from models.training import log_spaced


def test_log_spaced_evaluations_add_early_steps_and_a_resume_from_one_evaluates_it_again(tmp_path):
    """eval_per_decade=3: round(10^(k/3)) = 1, 2, 5, 10, 22, 46 and 100 within 120 steps, besides every 60th;
    a checkpoint written at step 46 resumes by evaluating step 46 again, as one of eval_every's would."""
    assert log_spaced(1000, 3) == {1, 2, 5, 10, 22, 46, 100, 215, 464, 1000}
    assert log_spaced(10**7, 0) == frozenset()
    model, optimizer = fresh()
    checkpointing = Checkpointing(tmp_path, {"pool_sha256": "abc", "n_tasks": math.inf}, 1000)
    steps = []

    def stop():
        return steps[-1:] == [46]

    class Steps(Hook):
        def on_eval(self, step, curves):
            steps.append(step)

    common = dict(batches=batches, evaluate=evaluate, eval_every=60, eval_per_decade=3, checkpointing=checkpointing)
    with pytest.raises(TrainingInterrupted):
        train(model, optimizer, OPTIM, hooks=[Steps()], should_stop=stop, **common)
    assert steps == [1, 2, 5, 10, 22, 46]
    state = load_checkpoint(tmp_path / "last.pt")
    model = model_from_checkpoint(state)
    optimizer = make_optimizer(model, lr=OPTIM.lr, weight_decay=OPTIM.weight_decay)
    optimizer.load_state_dict(state["optimizer"])
    steps.clear()
    train(model, optimizer, OPTIM, hooks=[Steps()], start=loop_state(state), **common)
    assert steps == [46, 60, 100, 120]


def test_log_spaced_evaluations_come_at_the_same_steps_packed_and_alone():
    """eval_per_decade=2: steps 1, 3, 10 and 32 besides every 30th and the last (60), in either loop."""
    hooks = [[Record()] for _ in OPTIMS]
    packed = lambda step, members: stacked(step, members, torch.float32)  # noqa: E731
    common = dict(evaluate=ensemble_evaluate, eval_every=30, eval_per_decade=2)
    train_members(members_of(fresh_members(torch.float32), hooks), batches=packed, **common)
    model = build_model(CONFIG, seed=100)
    alone = Record()
    optimizer = make_optimizer(model, lr=OPTIMS[0].lr, weight_decay=OPTIMS[0].weight_decay)
    common["evaluate"] = lambda m: ensemble_evaluate(0, m)
    train(model, optimizer, OPTIMS[0], batches=lambda step: batch(0, step, torch.float32), hooks=[alone], **common)
    for events in [alone.events] + [h[0].events for h in hooks]:
        assert [step for kind, step, _ in events if kind == "eval"] == [1, 3, 10, 30, 32, 60]
