"""Packed sweeps (pipeline/packed.py): trainings packed into one ensemble are each a full train run (params,
histories, checkpoints, registered model and alias) with the numbers of one model per training; a
member that diverges fails alone; an interrupted pack resumes member by member."""

import signal

import pytest
from conftest import invoke
from test_resume import runs, start, wait_for_checkpoint

from pipeline import main
from pipeline.packed import train_packed
from pipeline.settings import DEFAULTS, TrainSettings, build
from pipeline.types import InputError

pytestmark = pytest.mark.e2e  # trainings through the entry points: make test-all

# Five pool sizes of the smoke preset. Not M = 2: 60 steps there are chaotic enough that float32
# round-off grows to 1e-3 of the final loss (measured: the same training at 1 and 2 threads ends at
# pretrain/pt/loss_noiseless 1.0753 and 1.0743; packed, 1.0767), where at these M packed and alone agree
# to 1e-6 or better.
# Their own pool seed: the pools of other tests' sweeps in the session store stay unused by these.
SWEEP = ("--preset", "smoke", "--n_tasks", "4,16,64,256,inf", "--pool_seed", 4242)


def trained(store, model_name):
    """The train runs of `model_name`, by M (their n_tasks param)."""
    return {
        r.data.params["n_tasks"]: r for r in runs(store, f"params.model_name = '{model_name}' and tags.stage = 'train'")
    }


def test_a_sweep_packed_five_to_an_ensemble_equals_one_model_per_training(store):
    alone = invoke(main.main, *SWEEP, "--pack", 1, "--model_name", "pack-1")
    assert alone.exit_code == 0, alone.output
    packed = invoke(main.main, *SWEEP, "--pack", 5, "--model_name", "pack-5")
    assert packed.exit_code == 0, packed.output
    assert "packed up to 5 per ensemble" in packed.output and "packed" not in alone.output
    reference, members = trained(store, "pack-1"), trained(store, "pack-5")
    assert sorted(members) == sorted(reference) == ["16", "256", "4", "64", "inf"]
    for m, run in members.items():
        assert run.info.status == "FINISHED" and run.data.tags["packed"].endswith("of 5 trained as one ensemble")
        assert run.data.tags["checkpoint"].endswith("@60")
        assert store.client.get_model_version_by_alias("pack-5", f"m{m}").run_id == run.info.run_id
        # The same params (reuse finds either), and every metric within 1e-4 relative of training alone.
        params = {k: v for k, v in run.data.params.items() if k != "model_name"}
        assert params == {k: v for k, v in reference[m].data.params.items() if k != "model_name"}
        assert run.data.metrics.keys() == reference[m].data.metrics.keys()
        for key, value in run.data.metrics.items():
            assert value == pytest.approx(reference[m].data.metrics[key], rel=1e-4, abs=1e-7), (m, key)
        steps = [x.step for x in store.client.get_metric_history(run.info.run_id, "true/delta_pt_ridge")]
        assert steps == [30, 60]


def test_a_member_that_diverges_fails_alone_and_the_others_are_registered(store):
    result = invoke(
        main.main,
        "--preset",
        "smoke",
        "--pool_seed",
        4242,
        "--n_tasks",
        4,
        "--lr",
        "3e-3,1e6",
        "--pack",
        2,
        "--model_name",
        "pack-nan",
    )
    assert (
        result.exit_code == 1
        and "Error: training diverged at step 50: loss=nan; lower lr (lr=1000000.0)" in result.output
    )
    by_lr = {
        float(r.data.params["lr"]): r for r in runs(store, "params.model_name = 'pack-nan' and tags.stage = 'train'")
    }
    assert by_lr[1e6].info.status == "FAILED" and by_lr[1e6].data.tags["resumable"] == "false"
    assert by_lr[3e-3].info.status == "FINISHED"
    versions = store.client.search_model_versions("name = 'pack-nan'")
    assert [v.run_id for v in versions] == [by_lr[3e-3].info.run_id]  # nothing registered for the failed one


def test_an_interrupted_pack_resumes_member_by_member_as_if_never_stopped(store):
    """Killed (kill -9) after a checkpoint, the rerun resumes both members from their own checkpoints (one
    ensemble again) and ends with histories equal, value for value, to the uninterrupted pack's."""
    args = (
        "--preset",
        "smoke",
        "--pool_seed",
        4242,
        "--n_tasks",
        "4,inf",
        "--pack",
        2,
        "--total_steps",
        600,
        "--warmup_steps",
        50,
    )
    args = (*args, "--eval_every", 100, "--checkpoint_every", 50, "--threads", 1)
    whole = invoke(main.main, *args, "--model_name", "pack-whole")
    assert whole.exit_code == 0, whole.output
    process = start(store, "main", *args, "--model_name", "pack-kill")
    wait_for_checkpoint(store, "params.model_name = 'pack-kill' and tags.stage = 'train'", 200, process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    again = invoke(main.main, *args, "--model_name", "pack-kill")
    assert again.exit_code == 0, again.output
    assert again.output.count("from its checkpoint of step") == 2
    reference, resumed = trained(store, "pack-whole"), trained(store, "pack-kill")
    for m in ("4", "inf"):
        assert resumed[m].info.status == "FINISHED"
        for key in ("training/loss", "true/delta_pt_ridge", "pretrain/pt/loss_noiseless"):
            history = sorted(store.client.get_metric_history(resumed[m].info.run_id, key), key=lambda x: x.step)
            expected = sorted(store.client.get_metric_history(reference[m].info.run_id, key), key=lambda x: x.step)
            assert [(x.step, x.value) for x in history] == [(x.step, x.value) for x in expected], (m, key)


def test_trainings_that_cannot_share_an_ensemble_are_refused():
    values = DEFAULTS | {"pool": "p.npz", "threads": 1}
    settings = [build(TrainSettings, values), build(TrainSettings, values | {"batch_size": 512})]
    with pytest.raises(InputError, match="packed trainings must share arch, data.batch_size"):
        train_packed(None, settings)
