"""Bounds and one-line errors (pipeline/bounds.py, pipeline/cli.py): limits on length and work checked before any
run starts, bad URIs and prompts that leave no run behind, an unwritable artifact store that ends the run
FAILED with one line naming the path, and the reason of every FAILED run in a tag."""

import numpy as np
import pytest
from conftest import MODEL_NAME, invoke
from mlflow.tracking import MlflowClient

from pipeline import evaluate_baselines, generate_pool, main, predict, train
from pipeline.bounds import training_flops
from pipeline.settings import DEFAULTS, TrainSettings, build
from pipeline.tracking.runs import REASON_TAG

SMALL = ("--n_dims", 4, "--n_points", 8, "--n_layer", 1, "--n_embd", 32, "--n_eval", 64, "--threads", 1)


def runs(store):
    experiment = store.client.get_experiment_by_name("tests")
    return store.client.search_runs([experiment.experiment_id]) if experiment else []


@pytest.fixture(scope="module")
def pool(store):
    result = invoke(generate_pool.main, "--n_tasks", 8, "--n_dims", 4, "--pool_seed", 9)
    assert result.exit_code == 0, result.output
    experiment = store.client.get_experiment_by_name("tests")
    [run] = store.client.search_runs([experiment.experiment_id], "params.pool_seed = '9'")
    return f"runs:/{run.info.run_id}/pool/pool.npz"


def one_line_and_no_run(store, command, *args):
    """Run `command`; assert it fails with one line and no new run; return that line."""
    before = len(runs(store))
    result = invoke(command, *args)
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert len(runs(store)) == before
    return lines[0]


@pytest.mark.parametrize(
    "args, says",
    [
        (
            ("--total_steps", 2**80, "--warmup_steps", 1),
            "total_steps=1,208,925,819,614,629,174,706,176 is above max_steps",
        ),
        (
            ("--eval_every", 10**9, "--total_steps", 100, "--warmup_steps", 1),
            "eval_every=1,000,000,000 is above max_steps",
        ),
        (("--checkpoint_every", 10**8, "--total_steps", 100, "--warmup_steps", 1), "checkpoint_every=100,000,000 is"),
        # The paper's base model for 5M steps: far more than a CPU's limit (or a GPU's for a while).
        (("--n_layer", 8, "--n_embd", 128, "--total_steps", 5 * 10**6, "--warmup_steps", 1), "above max_work=1e+17"),
        (("--baselines", "runs:/0123456789abcdef/nothing"), "baselines='runs:/0123456789abcdef/nothing' cannot be"),
        (("--pool", "runs:/0123456789abcdef/pool/pool.npz"), "pool='runs:/0123456789abcdef/pool/pool.npz' cannot be"),
    ],
)
def test_train_refuses_in_one_line_before_any_run(store, pool, args, says):
    line = one_line_and_no_run(store, train.main, "--pool", pool, *SMALL, *args)
    assert says in line, line


def test_evaluate_baselines_with_a_bad_model_uri_creates_no_run(store, pool):
    line = one_line_and_no_run(
        store, evaluate_baselines.main, "--pool", pool, "--n_dims", 4, "--model", "models:/no@m4"
    )
    assert "model='models:/no@m4' cannot be downloaded" in line


def test_a_limit_raised_on_purpose_lets_the_training_through(store, pool):
    args = ("--pool", pool, *SMALL, "--total_steps", 20, "--warmup_steps", 2, "--eval_every", 20)
    assert "above max_steps=10" in one_line_and_no_run(store, train.main, *args, "--max_steps", 10)
    assert "above max_work=1e+06" in one_line_and_no_run(store, train.main, *args, "--max_work", 1e6)
    result = invoke(train.main, *args, "--max_steps", 20, "--model_name", "limits")
    assert result.exit_code == 0, result.output


def test_main_refuses_a_huge_grid_before_building_it(store):
    n_tasks = ",".join(str(m) for m in range(1, 801))
    seeds = ",".join(str(s) for s in range(600))
    line = one_line_and_no_run(store, main.main, "--preset", "smoke", "--n_tasks", n_tasks, "--data_seed", seeds)
    assert "the sweep's grid has 480,000 points (trainings), above max_points=1,000" in line
    line = one_line_and_no_run(store, main.main, "--preset", "smoke", "--n_tasks", "2,4", "--max_points", 1)
    assert "--max_points 2" in line


def test_the_paper_preset_fails_on_a_cpu_in_one_line(store):
    """At n_eval 4096 (its 2^20 eval sets would fail the memory check first on most machines)."""
    line = one_line_and_no_run(store, main.main, "--preset", "paper", "--device", "cpu", "--n_eval", 4096)
    assert "this sweep of 21 trainings would take about" in line and "(the limit on cpu)" in line


def test_training_flops_follow_the_settings():
    """6 per parameter and token for each step, 2 per parameter and token for each evaluation of both sets."""
    base = DEFAULTS | {"n_dims": 4, "n_points": 8, "batch_size": 64, "n_layer": 2, "n_embd": 32, "n_eval": 128}
    base |= {"warmup_steps": 10, "total_steps": 100, "eval_every": 10}
    params, tokens = (4 + 1 + 16 + 1) * 32 + 2 * 12 * 32 * 32, 16
    for steps, every, evaluations in ((100, 10, 10), (200, 20, 10), (201, 20, 11)):
        settings = build(TrainSettings, base | {"total_steps": steps, "eval_every": every})
        expected = 6 * params * tokens * 64 * steps + evaluations * 2 * 128 * 2 * params * tokens
        assert training_flops(settings) == expected


@pytest.mark.parametrize(
    "xs, ys, says",
    [
        (np.zeros((0, 8, 4)), np.zeros((0, 8)), "hold no sequence to predict: xs has shape (0, 8, 4)"),
        (np.zeros((3, 0, 4)), np.zeros((3, 0)), "hold no sequence to predict"),
        (np.zeros((8, 4)), np.zeros((8,)), "need xs (N, K, 4) and ys (N, K), got (8, 4) and (8,)"),
        (np.zeros((2, 8, 4, 1)), np.zeros((2, 8)), "need xs (N, K, 4) and ys (N, K)"),
    ],
)
def test_predict_on_empty_or_wrong_rank_prompts_is_one_line(store, sweep, tmp_path, xs, ys, says):
    path = tmp_path / "prompts.npz"
    np.savez(path, xs=xs, ys=ys)
    line = one_line_and_no_run(store, predict.main, "--model", f"models:/{MODEL_NAME}@m4", "--prompts", path)
    assert line.startswith("Error: prompts=") and says in line, line


def test_an_unwritable_artifact_store_fails_the_run_in_one_line_naming_the_path(store, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("artifacts cannot go under a file")
    client = MlflowClient(store.uri)
    client.create_experiment("unwritable", artifact_location=(blocker / "artifacts").as_uri())
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "unwritable")
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)  # mlflow.set_experiment leaves it for subprocesses
    result = invoke(generate_pool.main, "--n_tasks", 4, "--n_dims", 2)
    [line] = result.output.strip().splitlines()[-1:]
    assert result.exit_code == 1 and line.startswith(f"Error: cannot use {blocker}") and "Not a directory" in line
    [run] = client.search_runs([client.get_experiment_by_name("unwritable").experiment_id])
    assert run.info.status == "FAILED" and run.data.tags[REASON_TAG].startswith("NotADirectoryError: ")
