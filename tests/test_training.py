"""The training layer: hooks, checkpoints that say what they are, resume equal to an uninterrupted run,
divergence, and the house rules (imports point one way, small files)."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from models import (
    Checkpointing,
    DamagedCheckpoint,
    Hook,
    LoopState,
    ModelConfig,
    OptimSettings,
    TrainingDiverged,
    TrainingInterrupted,
    build_model,
    load_checkpoint,
    loop_state,
    make_optimizer,
    model_from_checkpoint,
    save_checkpoint,
    train,
)
from models.checkpoint import content_digest
from tasks import DataSettings, sample_batch

CONFIG = ModelConfig(n_dims=3, n_points=5, n_layer=1, n_embd=16, n_head=2)
OPTIM = OptimSettings(lr=3e-3, schedule="triangle", warmup_steps=20, total_steps=120, weight_decay=1e-3)
DATA = DataSettings(16, 5, 3, 0.5, 1.0, 101, 102, 103)


def batches(step):
    xs, _, ys = sample_batch(DATA, step, pool=None, task_scale=1.0)
    return xs, ys


def evaluate(model):
    xs, ys = batches(10**6)  # a fixed batch no training step draws
    with torch.no_grad():
        return {"true/pt/loss_noisy": ((model(xs, ys) - ys) ** 2).mean(dim=0).numpy()}


class Recorder(Hook):
    def __init__(self):
        self.calls = []

    def on_log(self, step, scalars):
        self.calls.append(("log", step, dict(scalars)))

    def on_eval(self, step, curves):
        self.calls.append(("eval", step, {key: curve.tolist() for key, curve in curves.items()}))

    def on_checkpoint(self, step, path):
        self.calls.append(("checkpoint", step, Path(path).name))

    def on_end(self, step, curves):
        self.calls.append(("end", step, {key: curve.tolist() for key, curve in curves.items()}))

    def keys(self):
        return [(kind, step, sorted(p) if isinstance(p, dict) else p) for kind, step, p in self.calls]


def fresh(optim=OPTIM):
    model = build_model(CONFIG, seed=7)
    return model, make_optimizer(model, lr=optim.lr, weight_decay=optim.weight_decay)


def resumed(path, evaluate=evaluate):
    """The training of OPTIM resumed from the checkpoint at `path` and run to its end: (model, its calls)."""
    state = load_checkpoint(path)
    model = model_from_checkpoint(state)
    optimizer = make_optimizer(model, lr=OPTIM.lr, weight_decay=OPTIM.weight_decay)
    optimizer.load_state_dict(state["optimizer"])
    recorder = Recorder()
    never = lambda step: pytest.fail(f"a training at its end drew the batch of step {step}")  # noqa: E731
    at_end = state["step"] == OPTIM.total_steps
    train(
        model,
        optimizer,
        OPTIM,
        batches=never if at_end else batches,
        evaluate=evaluate,
        eval_every=60,
        hooks=[recorder],
        start=loop_state(state),
    )
    return model, recorder.calls


def test_hooks_are_called_at_their_steps_in_order(tmp_path):
    model, optimizer = fresh()
    recorder = Recorder()
    checkpointing = Checkpointing(tmp_path, {"pool_sha256": "abc", "n_tasks": math.inf}, 70)
    curves = train(
        model,
        optimizer,
        OPTIM,
        batches=batches,
        evaluate=evaluate,
        eval_every=70,
        hooks=[recorder],
        checkpointing=checkpointing,
    )
    metric = ["true/pt/loss_noisy"]
    assert recorder.keys() == [
        ("log", 50, ["training/loss", "training/lr"]),
        ("eval", 70, metric),
        ("checkpoint", 70, "last.pt"),
        ("log", 100, ["training/loss", "training/lr"]),
        ("log", 120, ["training/loss", "training/lr"]),
        ("eval", 120, metric),
        ("checkpoint", 120, "last.pt"),
        ("end", 120, metric),
    ]
    assert list(curves) == metric and curves[metric[0]].shape == (5,)


def test_a_checkpoint_alone_rebuilds_the_model_and_says_what_it_is(tmp_path):
    model, optimizer = fresh()
    settings = {"pool_sha256": "abc", "n_tasks": math.inf, "lr": OPTIM.lr}
    train(
        model,
        optimizer,
        OPTIM,
        batches=batches,
        evaluate=evaluate,
        eval_every=60,
        checkpointing=Checkpointing(tmp_path, settings, 60),
    )
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["step"] == 120 and state["settings"] == settings
    assert state["model_config"] == {"n_dims": 3, "n_points": 5, "n_layer": 1, "n_embd": 16, "n_head": 2}
    rebuilt = model_from_checkpoint(state)
    for (name, a), b in zip(model.state_dict().items(), rebuilt.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert not list(tmp_path.glob("*.tmp"))  # written atomically: no temporary file left behind
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(DamagedCheckpoint, match="is not a readable training checkpoint"):
        load_checkpoint(tmp_path / "bad.pt")


def test_a_checkpoint_whose_contents_changed_fails_its_digest(tmp_path):
    """A weight changed in the file (as a flipped bit would change it) loads, but not past the digest; nor
    does a step changed without its tensors, nor half a file. The digest covers what a resume reads."""
    model, optimizer = fresh()
    save_checkpoint(tmp_path / "last.pt", model=model, optimizer=optimizer, loop=LoopState(7, None, 0), settings={})
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    assert state["sha256"] == content_digest({key: value for key, value in state.items() if key != "sha256"})
    for name, change in [
        ("weight", lambda s: s["model"]["read_in.weight"].view(-1)[3].add_(1e-6)),
        ("step", lambda s: s.update(step=8)),
    ]:
        changed = torch.load(tmp_path / "last.pt", weights_only=True)
        change(changed)
        torch.save(changed, tmp_path / f"{name}.pt")
        with pytest.raises(DamagedCheckpoint, match="do not match the digest"):
            load_checkpoint(tmp_path / f"{name}.pt")
    data = (tmp_path / "last.pt").read_bytes()
    (tmp_path / "half.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(DamagedCheckpoint, match="not a readable training checkpoint"):
        load_checkpoint(tmp_path / "half.pt")
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 7


def test_a_training_stopped_and_resumed_equals_the_uninterrupted_one(tmp_path):
    model, optimizer = fresh()
    whole = Recorder()
    train(model, optimizer, OPTIM, batches=batches, evaluate=evaluate, eval_every=60, hooks=[whole])

    # The same training asked to stop after step 73 (mid-way between two loss logs and two evaluations).
    first, first_optimizer = fresh()
    before, steps = Recorder(), iter(range(1, 10**6))
    with pytest.raises(TrainingInterrupted, match="after step 73"):
        train(
            first,
            first_optimizer,
            OPTIM,
            batches=batches,
            evaluate=evaluate,
            eval_every=60,
            hooks=[before],
            checkpointing=Checkpointing(tmp_path, {}, 60),
            should_stop=lambda: next(steps) == 73,
        )
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["step"] == 73 and state["loss_count"] == 23  # the loss summed since step 50 is kept
    again, after = resumed(tmp_path / "last.pt")
    for (name, a), b in zip(model.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    logged = [call for call in before.calls + after if call[0] != "checkpoint"]
    assert logged == whole.calls  # the same logs at the same steps with the same values


def test_a_training_stopped_during_an_evaluation_keeps_its_step_and_evaluates_it_again(tmp_path):
    """A signal during the evaluation of step 60 (its handler raising KeyboardInterrupt): the checkpoint of
    step 60 is written, and the training resumed from it evaluates step 60 first; together the two give
    the uninterrupted training's calls, evaluation of step 60 included."""
    model, optimizer = fresh()
    whole = Recorder()
    train(model, optimizer, OPTIM, batches=batches, evaluate=evaluate, eval_every=60, hooks=[whole])

    def stopped_at_60(model):  # the first evaluation, at step 60
        raise KeyboardInterrupt

    first, first_optimizer = fresh()
    before = Recorder()
    with pytest.raises(KeyboardInterrupt):
        train(
            first,
            first_optimizer,
            OPTIM,
            batches=batches,
            evaluate=stopped_at_60,
            eval_every=60,
            hooks=[before],
            checkpointing=Checkpointing(tmp_path, {}, 1000),
        )
    assert before.calls[-1] == ("checkpoint", 60, "last.pt")
    _, after = resumed(tmp_path / "last.pt")
    assert after[0][:2] == ("eval", 60)
    assert [call for call in before.calls + after if call[0] != "checkpoint"] == whole.calls


def test_a_training_resumed_from_its_final_checkpoint_only_evaluates(tmp_path):
    """Killed after its last checkpoint (during its final evaluation or its registration), a training resumes
    at total_steps: no step (a batch drawn fails), the final evaluation again, equal to the uninterrupted
    one's, and on_end."""
    model, optimizer = fresh()
    whole = Recorder()
    checkpointing = Checkpointing(tmp_path, {}, 60)
    train(
        model,
        optimizer,
        OPTIM,
        batches=batches,
        evaluate=evaluate,
        eval_every=60,
        hooks=[whole],
        checkpointing=checkpointing,
    )
    assert load_checkpoint(tmp_path / "last.pt")["step"] == OPTIM.total_steps
    _, after = resumed(tmp_path / "last.pt")
    assert after == [call for call in whole.calls if call[0] in ("eval", "end") and call[1] == 120]


def test_a_diverging_training_names_the_step_and_lr():
    optim = OptimSettings(lr=1e30, schedule="triangle", warmup_steps=1, total_steps=60, weight_decay=0.0)
    model, optimizer = fresh(optim)
    with pytest.raises(TrainingDiverged, match=r"training diverged at step 50: loss=(nan|inf); lower lr \(lr=1e\+30\)"):
        train(model, optimizer, optim, batches=batches, evaluate=evaluate, eval_every=60)


def test_optim_settings_refuse_bad_values():
    with pytest.raises(ValueError, match="schedule must be one of"):
        OptimSettings(lr=1e-3, schedule="linear", warmup_steps=1, total_steps=10, weight_decay=0.0)
    with pytest.raises(ValueError, match=r"warmup_steps=10 must be in \[0, total_steps=10\)"):
        OptimSettings(lr=1e-3, schedule="cosine", warmup_steps=10, total_steps=10, weight_decay=0.0)
    assert OPTIM.lr_at(20) == pytest.approx(3e-3) and OPTIM.lr_at(0) == 0.0


def test_training_is_deterministic_for_fixed_settings():
    runs = []
    for _ in range(2):
        model, optimizer = fresh()
        train(model, optimizer, OPTIM, batches=batches, evaluate=evaluate, eval_every=120)
        runs.append(np.concatenate([p.detach().numpy().ravel() for p in model.parameters()]))
    np.testing.assert_array_equal(*runs)
