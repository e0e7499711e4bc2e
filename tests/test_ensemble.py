"""An ensemble is S separate trainings: each member, with its own pool, seeds, lr, weight decay and
schedule, ends where training it alone ends (to 1e-10 in float64, where round-off cannot hide a wrong
formula; to float32 round-off in float32), and a member that diverges fails alone."""

import pytest
import torch

import models
from models import (
    Checkpointing,
    Hook,
    Member,
    ModelConfig,
    OptimSettings,
    TrainingInterrupted,
    build_model,
    load_checkpoint,
    loop_state,
    make_optimizer,
    train_members,
)
from models.ensemble import Ensemble
from models.training import TrainingDiverged
from tasks import DataSettings, sample_batch

# The smoke preset's model and data (pipeline/presets.py): 1 layer, width 32, batch 32, 60 steps.
CONFIG = ModelConfig(n_dims=4, n_points=8, n_layer=1, n_embd=32, n_head=2)
STEPS = 60
# Three members that differ in everything but the architecture and batch size.
OPTIMS = [
    OptimSettings(lr=3e-3, schedule="triangle", warmup_steps=30, total_steps=STEPS, weight_decay=0.0),
    OptimSettings(lr=1e-3, schedule="cosine", warmup_steps=0, total_steps=STEPS, weight_decay=1e-3),
    OptimSettings(lr=2e-3, schedule="triangle", warmup_steps=30, total_steps=STEPS, weight_decay=0.1),
]
DATA = [DataSettings(32, 8, 4, 0.5, 1.0, 101 + i, 102 + i, 103 + i) for i in range(3)]
POOLS = [torch.randn(m, 4, generator=torch.Generator().manual_seed(m)) for m in (4, 64)] + [None]  # M = 4, 64, inf


def batch(i, step, dtype):
    xs, _, ys = sample_batch(DATA[i], step, pool=POOLS[i], task_scale=1.0)
    return xs.to(dtype), ys.to(dtype)


def stacked(step, members, dtype):
    """The batches of `members` at `step`, stacked: xs (S, B, K, D), ys (S, B, K)."""
    xs, ys = zip(*(batch(i, step, dtype) for i in members), strict=True)
    return torch.stack(xs), torch.stack(ys)


def evaluate(i, model):
    """Per-position loss of member `i` on 64 fixed sequences (its own data distribution)."""
    xs, ys = batch(i, 10**6, next(model.parameters()).dtype)
    with torch.no_grad():
        return {"loss": ((model(xs, ys) - ys) ** 2).mean(0)}


class Record(Hook):
    def __init__(self):
        self.events = []

    def on_log(self, step, scalars):
        self.events.append(("log", step, scalars["training/loss"]))

    def on_eval(self, step, curves):
        self.events.append(("eval", step, curves["loss"].sum().item()))


def alone(i, dtype, optim=None):
    """Member `i` trained by itself with the single-model loop and optimiser: (model, curves, events)."""
    optim = optim or OPTIMS[i]
    model = build_model(CONFIG, seed=100 + i).to(dtype)
    optimizer = make_optimizer(model, lr=optim.lr, weight_decay=optim.weight_decay)
    hook = Record()
    curves = models.train(
        model,
        optimizer,
        optim,
        batches=lambda step: batch(i, step, dtype),
        evaluate=lambda m: evaluate(i, m),
        eval_every=30,
        hooks=[hook],
    )
    return model, curves, hook.events


def members_of(trained, hooks=None, checkpointing=None):
    """Member i of the loop for each (model, optimizer, start) in `trained`, with OPTIMS[i]."""
    hooks, checkpointing = hooks or [()] * len(trained), checkpointing or [None] * len(trained)
    return [
        Member(model, optimizer, OPTIMS[i], tuple(hooks[i]), checkpointing[i], start)
        for i, (model, optimizer, start) in enumerate(trained)
    ]


def fresh(dtype, count=3):
    """(model, optimizer, None) of members 0 .. count - 1 at step 0."""
    built = [build_model(CONFIG, seed=100 + i).to(dtype) for i in range(count)]
    return [
        (m, make_optimizer(m, lr=OPTIMS[i].lr, weight_decay=OPTIMS[i].weight_decay), None) for i, m in enumerate(built)
    ]


def together(dtype, poison=None, compile=False):
    """The members trained as one ensemble: (ensemble's members as models, results, events per member).
    Member `poison`, if given, gets NaN inputs from step 20 on (its loss then stops being finite)."""
    hooks = [[Record()] for _ in OPTIMS]
    trained = []

    def batches(step, members):
        xs, ys = zip(*(batch(i, step, dtype) for i in members), strict=True)
        xs = [x * float("nan") if i == poison and step >= 20 else x for i, x in zip(members, xs, strict=True)]
        return torch.stack(xs), torch.stack(ys)

    def evaluate_member(i, model):
        trained.append((i, model))
        return evaluate(i, model)

    results = train_members(
        members_of(fresh(dtype), hooks), batches=batches, evaluate=evaluate_member, eval_every=30, compile=compile
    )
    final = dict(trained)  # the last evaluation of each member holds its final weights
    return final, results, [h[0].events for h in hooks]


def max_difference(a, b):
    """(max abs, max abs relative to the largest entry) over every weight of two models."""
    a, b = a.state_dict(), b.state_dict()
    absolute = max((a[k] - b[k]).abs().max().item() for k in a)
    relative = max(((a[k] - b[k]).abs().max() / a[k].abs().max()).item() for k in a)
    return absolute, relative


def test_each_member_ends_where_training_it_alone_ends_exactly_in_float64():
    final, results, events = together(torch.float64)
    for i in range(3):
        model, curves, alone_events = alone(i, torch.float64)
        absolute, _ = max_difference(model, final[i])
        assert absolute < 1e-10, (i, absolute)  # measured: 5e-13 after 60 steps
        assert torch.allclose(results[i]["loss"], curves["loss"], rtol=1e-10, atol=0)
        assert [e[:2] for e in events[i]] == [e[:2] for e in alone_events]  # same reports at the same steps
        assert events[i][-1][2] == pytest.approx(alone_events[-1][2], rel=1e-10)


def test_in_float32_members_match_alone_to_round_off():
    """Batched kernels round differently, and Adam's normalised steps carry that through. Measured after
    60 steps: weights within 3.4e-4 absolute (9e-3 of the tensor's largest entry: the attention's key
    biases, whose gradient is round-off, softmax being blind to them, and Adam's step on it a sign), less
    than the same training alone moves between torch's fused and loop AdamW (6.6e-4); evaluations equal."""
    final, results, _ = together(torch.float32)
    for i in range(3):
        model, curves, _ = alone(i, torch.float32)
        absolute, relative = max_difference(model, final[i])
        assert absolute < 1e-3 and relative < 3e-2, (i, absolute, relative)
        assert torch.allclose(results[i]["loss"].mean(), curves["loss"].mean(), rtol=1e-5, atol=0), i


def test_a_member_that_diverges_fails_alone():
    final, results, events = together(torch.float64, poison=2)
    assert isinstance(results[2], TrainingDiverged) and str(results[2]).startswith("training diverged at step 50")
    assert [kind for kind, *_ in events[2]] == ["eval"]  # step 30's evaluation; nothing after it diverged
    for i in range(2):  # the others finish as if trained alone
        model, _, _ = alone(i, torch.float64)
        assert max_difference(model, final[i])[0] < 1e-10


class StopAt:
    """should_stop: yes once `step` steps are done (asked after every step)."""

    def __init__(self, step):
        self.step, self.done = step, 0

    def __call__(self):
        self.done += 1
        return self.done >= self.step


def interrupted_together(folder, dtype, stop_at):
    """The members trained as one ensemble, checkpointing every 30 steps, stopped after `stop_at` steps:
    the Checkpointing of each member."""
    checkpointing = [Checkpointing(folder / str(i), {"member": i}, 30) for i in range(3)]
    with pytest.raises(TrainingInterrupted, match=f"after step {stop_at}"):
        train_members(
            members_of(fresh(dtype), checkpointing=checkpointing),
            batches=lambda step, members: stacked(step, members, dtype),
            evaluate=evaluate,
            eval_every=30,
            should_stop=StopAt(stop_at),
        )
    return checkpointing


def restored(path, i):
    """Member `i`'s model and torch AdamW from its checkpoint at `path`, and the loaded state."""
    state = load_checkpoint(path)
    model = build_model(CONFIG, seed=0).to(torch.float64)  # then the checkpoint's float64 weights
    model.load_state_dict(state["model"])
    optimizer = make_optimizer(model, lr=OPTIMS[i].lr, weight_decay=OPTIMS[i].weight_decay)
    optimizer.load_state_dict(state["optimizer"])
    return model, optimizer, state


def assert_same_reports(resumed, full, after):
    """A resumed training's reports are the uninterrupted one's after step `after` (values to 1e-10)."""
    full = [event for event in full if event[1] > after]
    assert [e[:2] for e in resumed] == [e[:2] for e in full]
    assert [e[2] for e in resumed] == pytest.approx([e[2] for e in full], rel=1e-10)


@pytest.mark.e2e  # minutes (inductor's compile; trainings resumed from checkpoints): make test-all
def test_an_ensembles_checkpoints_are_single_trainings_that_resume_alone_or_packed(tmp_path):
    """Stopped at step 20 (between logs: the running loss sums are in the checkpoints too), each member's
    checkpoint resumes by the single loop, and all three resume as an ensemble again; both end where the
    uninterrupted single training ends, with the same reports from step 21 on."""
    checkpointing = interrupted_together(tmp_path, torch.float64, 20)
    resumed = []
    for i in range(3):
        model, optimizer, state = restored(checkpointing[i].path, i)
        assert state["settings"] == {"member": i} and state["step"] == 20 and state["loss_count"] == 20
        hook = Record()
        models.train(
            model,
            optimizer,
            OPTIMS[i],
            batches=lambda step, i=i: batch(i, step, torch.float64),
            evaluate=lambda m, i=i: evaluate(i, m),
            eval_every=30,
            hooks=[hook],
            start=loop_state(state),
        )
        reference, _, events = alone(i, torch.float64)
        assert max_difference(reference, model)[0] < 1e-10, i
        assert_same_reports(hook.events, events, after=20)
        model, optimizer, state = restored(checkpointing[i].path, i)
        resumed.append((model, optimizer, loop_state(state)))
    hooks = [[Record()] for _ in range(3)]
    finals = [model for model, _, _ in resumed]
    train_members(
        members_of(resumed, hooks),
        batches=lambda step, members: stacked(step, members, torch.float64),
        evaluate=evaluate,
        eval_every=30,
    )
    for i in range(3):
        reference, _, events = alone(i, torch.float64)
        assert max_difference(reference, finals[i])[0] < 1e-10, i
        assert_same_reports(hooks[i][0].events, events, after=20)


def test_members_at_different_steps_are_refused(tmp_path):
    first = interrupted_together(tmp_path / "a", torch.float64, 20)
    second = interrupted_together(tmp_path / "b", torch.float64, 10)
    resumed = [restored(first[0].path, 0), restored(second[1].path, 1)]
    resumed = [(model, optimizer, loop_state(state)) for model, optimizer, state in resumed]
    with pytest.raises(ValueError, match=r"continue from one step, got \(step, count\) \[\(10, 10\), \(20, 20\)\]"):
        train_members(members_of(resumed), batches=None, evaluate=None, eval_every=30)


def test_bad_shapes_and_lengths_are_refused():
    ensemble = Ensemble([build_model(CONFIG, seed=s) for s in (1, 2)])
    with pytest.raises(ValueError, match=r"expected xs \(2, B, K, 4\)"):
        ensemble(torch.zeros(3, 1, 8, 4), torch.zeros(3, 1, 8))
    with pytest.raises(ValueError, match="one architecture"):
        Ensemble([build_model(CONFIG, seed=1), build_model(ModelConfig(4, 8, 2, 32, 2), seed=1)])
    short = OptimSettings(lr=1e-3, schedule="triangle", warmup_steps=0, total_steps=10, weight_decay=0)
    members = members_of(fresh(torch.float32, 2))
    members[1].optim = short
    with pytest.raises(ValueError, match=r"one length, got \[60, 10\]"):
        train_members(members, batches=None, evaluate=None, eval_every=1)


@pytest.mark.e2e  # minutes (inductor's compile; trainings resumed from checkpoints): make test-all
def test_the_compiled_step_equals_the_eager_one_to_round_off_alone_and_packed():
    """torch.compile (inductor) of the training step, single and ensemble: measured after 60 steps, weights
    within 3.6e-4 of the eager training (as packing moves them) and the evaluation within 2e-7."""
    model = build_model(CONFIG, seed=100).to(torch.float32)
    optimizer = make_optimizer(model, lr=OPTIMS[0].lr, weight_decay=OPTIMS[0].weight_decay)
    batches, scores = (lambda step: batch(0, step, torch.float32)), (lambda m: evaluate(0, m))
    curves = models.train(model, optimizer, OPTIMS[0], batches=batches, evaluate=scores, eval_every=30, compile=True)
    eager, eager_curves, _ = alone(0, torch.float32)
    absolute, relative = max_difference(eager, model)
    assert absolute < 1e-3 and relative < 3e-2, (absolute, relative)
    assert torch.allclose(curves["loss"].mean(), eager_curves["loss"].mean(), rtol=1e-5, atol=0)
    final, results, _ = together(torch.float32, compile=True)
    for i in range(3):
        eager, eager_curves, _ = alone(i, torch.float32)
        absolute, relative = max_difference(eager, final[i])
        assert absolute < 1e-3 and relative < 3e-2, (i, absolute, relative)
        assert torch.allclose(results[i]["loss"].mean(), eager_curves["loss"].mean(), rtol=1e-5, atol=0), i
