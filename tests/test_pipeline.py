"""End to end: every entry point on the smoke config against a temporary SQLite store."""

import json
import math
import sys

import mlflow
import numpy as np
import pytest
from conftest import MODEL_NAME, invoke, mlflow_run, run_cli

from models import load_checkpoint
from pipeline import evaluate_baselines, generate_pool, main, predict, train
from pipeline.tracking.registry import load_registered
from tasks import load_pool

pytestmark = pytest.mark.e2e  # trainings through the entry points: make test-all


def test_sweep_leaves_a_finished_parent_with_finished_children(sweep):
    assert sweep.parent.info.status == "FINISHED"
    expected = {f"{stage}-{m}" for stage in ("pool", "baselines", "train") for m in ("m4", "minf")}
    assert set(sweep.runs) == expected
    assert all(run.info.status == "FINISHED" for run in sweep.runs.values())
    assert sweep.parent.data.params["n_tasks"] == "4,inf" and sweep.parent.data.params["preset"] == "smoke"


def test_generate_pool_logs_the_file_its_digest_and_a_dataset(sweep):
    run = sweep.runs["pool-m4"]
    path = mlflow.artifacts.download_artifacts(f"runs:/{run.info.run_id}/pool/pool.npz")
    pool = load_pool(path)
    assert pool.tasks.shape == (4, 4) and run.data.tags["pool_sha256"] == pool.digest
    assert len(run.inputs.dataset_inputs) == 1
    assert run.data.params == {
        "n_tasks": "4",
        "n_dims": "4",
        "task_scale": "1.0",
        "task_prior": "gaussian",
        "pool_seed": "102",
    }


def test_evaluate_baselines_logs_eval_sets_predictions_metrics_and_figure(store, sweep):
    run = sweep.runs["baselines-m4"]
    folder = mlflow.artifacts.download_artifacts(f"runs:/{run.info.run_id}/eval")
    with np.load(f"{folder}/pretrain.npz") as data:
        assert data["xs"].shape == (128, 8, 4) and data["ridge"].shape == data["dmmse"].shape == (128, 8)
    metrics = run.data.metrics
    for dist in ("pretrain", "true"):
        for key in ("dmmse/loss_noiseless", "dmmse/loss_noisy", "ridge/loss_noiseless", "delta_dmmse_ridge"):
            assert f"{dist}/{key}" in metrics
    # dMMSE is the Bayes predictor on the pool's distribution, ridge on fresh tasks.
    assert metrics["pretrain/dmmse/loss_noiseless"] < metrics["pretrain/ridge/loss_noiseless"]
    assert metrics["true/ridge/loss_noiseless"] < metrics["true/dmmse/loss_noiseless"]
    # Per-position curves are a table (position k is not a step), whose mean is the logged metric.
    table = mlflow.load_table("curves/by_position.json", run_ids=[run.info.run_id])
    assert list(table["k"]) == list(range(1, 9)) and not any("_by_k" in key for key in metrics)
    assert table["true/ridge/loss_noiseless"].mean() == pytest.approx(metrics["true/ridge/loss_noiseless"], rel=1e-9)
    assert {d.dataset.name for d in run.inputs.dataset_inputs} == {"eval-pretrain-m4", "eval-true-m4"}
    assert run.data.metrics["log2_n_tasks"] == 2.0
    artifacts = [a.path for a in store.client.list_artifacts(run.info.run_id, "figures")]
    assert artifacts == ["figures/per_position.png"]
    assert "pretrain/delta_dmmse_ridge" not in sweep.runs["baselines-minf"].data.metrics  # no dMMSE at M = inf


def test_train_logs_learning_curves_checkpoint_and_registers(store, sweep):
    run = sweep.runs["train-m4"]
    steps = {
        key: [m.step for m in store.client.get_metric_history(run.info.run_id, key)]
        for key in ("true/delta_pt_ridge", "pretrain/delta_pt_dmmse", "training/loss")
    }
    assert steps["true/delta_pt_ridge"] == [30, 60] and steps["pretrain/delta_pt_dmmse"] == [30, 60]
    assert steps["training/loss"] == [50, 60]
    assert int(run.data.params["n_params"]) == sum(
        p.numel() for p in load_registered(f"models:/{MODEL_NAME}@m4").parameters()
    )
    assert run.data.tags["checkpoint"] == "checkpoints/b/last.pt@60"  # slots a (step 30) and b (step 60)
    state = load_checkpoint(mlflow.artifacts.download_artifacts(f"runs:/{run.info.run_id}/checkpoints/b/last.pt"))
    assert state["step"] == 60 and state["settings"]["pool_sha256"] == run.data.tags["pool_sha256"]
    assert state["model_config"]["n_embd"] == 32 and state["settings"]["lr"] == 3e-3
    version = store.client.get_model_version_by_alias(MODEL_NAME, "m4")
    assert version.run_id == run.info.run_id
    # At most 8 tags, what one filters versions on; every setting in the description.
    assert {k: version.tags[k] for k in ("n_tasks", "n_dims", "n_points", "sanity")} == {
        "n_tasks": "4",
        "n_dims": "4",
        "n_points": "8",
        "sanity": "passed",
    }
    assert len(version.tags) <= 8 and version.tags["sweep"] == sweep.parent.info.run_id
    assert "total_steps=60" in version.description and "model_seed=100" in version.description
    assert store.client.get_model_version_by_alias(MODEL_NAME, "minf").tags["n_tasks"] == "inf"
    assert "step 30/60" in sweep.output  # not a terminal: one line per evaluation


def test_registered_model_reloads_in_a_fresh_process_in_another_directory(store, sweep, tmp_path):
    rng = np.random.default_rng(0)
    xs, ys = rng.standard_normal((5, 8, 4)).astype(np.float32), rng.standard_normal((5, 8)).astype(np.float32)
    np.savez(tmp_path / "prompts.npz", xs=xs, ys=ys)
    code = (
        "import sys, numpy as np, mlflow;"
        f"m = mlflow.pyfunc.load_model('models:/{MODEL_NAME}@m4');"
        "d = np.load('prompts.npz'); out = m.predict({'xs': d['xs'], 'ys': d['ys']});"
        "np.save('out.npy', out); print(type(out).__name__, out.dtype, out.shape)"
    )
    result = run_cli(sys.executable, "-c", code, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["ndarray", "float32", "(5,", "8)"]
    import torch

    with torch.no_grad():
        expected = load_registered(f"models:/{MODEL_NAME}@m4")(torch.from_numpy(xs), torch.from_numpy(ys)).numpy()
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), expected)


def test_evaluate_baselines_scores_a_registered_model(store, sweep):
    pool_uri = f"runs:/{sweep.runs['pool-m4'].info.run_id}/pool/pool.npz"
    result = invoke(
        evaluate_baselines.main,
        "--pool",
        pool_uri,
        "--n_dims",
        4,
        "--n_points",
        8,
        "--n_eval",
        64,
        "--model",
        f"models:/{MODEL_NAME}@m4",
    )
    assert result.exit_code == 0, result.output
    [run] = mlflow.search_runs(
        search_all_experiments=True, filter_string=f"params.model = 'models:/{MODEL_NAME}@m4'", output_format="list"
    )
    assert {"pretrain/pt/loss_noiseless", "true/delta_pt_ridge", "pretrain/delta_pt_dmmse"} <= set(run.data.metrics)


def test_predict_scores_against_ridge_and_dmmse(sweep, tmp_path):
    pool_uri = f"runs:/{sweep.runs['pool-m4'].info.run_id}/pool/pool.npz"
    result = invoke(
        predict.main,
        "--model",
        f"models:/{MODEL_NAME}@m4",
        "--pool",
        pool_uri,
        "--kind",
        "pretrain",
        "--n_points",
        8,
        "--n_eval",
        64,
    )
    assert result.exit_code == 0, result.output
    assert "pretrain/delta_pt_dmmse" in result.output and "pretrain/pt/loss_noiseless" in result.output
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "p.npz", xs=rng.standard_normal((3, 6, 4)), ys=rng.standard_normal((3, 6)))
    result = invoke(predict.main, "--model", f"models:/{MODEL_NAME}@minf", "--prompts", tmp_path / "p.npz")
    assert result.exit_code == 0, result.output
    assert "true/delta_pt_ridge" in result.output and "dmmse" not in result.output


def test_entry_points_run_through_mlflow_run(store, tmp_path):
    ok = mlflow_run("generate_pool", "n_tasks=8", "n_dims=3", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    run = mlflow.search_runs(search_all_experiments=True, filter_string="params.n_dims = '3'", output_format="list")[0]
    assert run.info.status == "FINISHED" and run.data.tags["pool_sha256"]
    bad = mlflow_run("generate_pool", "n_tasks=-3", cwd=tmp_path)
    assert bad.returncode != 0
    assert "Error: Invalid value for '--n_tasks': n_tasks must be a positive integer or inf, got '-3'" in bad.stderr
    failed = mlflow.search_runs(
        search_all_experiments=True, filter_string="params.n_tasks = '-3'", output_format="list"
    )
    assert [r.info.status for r in failed] == ["FAILED"]


def registered_versions(store):
    return len(store.client.search_model_versions(f"name = '{MODEL_NAME}'"))


def bad_inputs(sweep, tmp_path):
    pool_uri = f"runs:/{sweep.runs['pool-m4'].info.run_id}/pool/pool.npz"
    corrupted = tmp_path / "corrupted.npz"
    corrupted.write_bytes(b"not a zip file")
    train_args = (
        "--n_points",
        8,
        "--batch_size",
        8,
        "--n_layer",
        1,
        "--n_embd",
        16,
        "--warmup_steps",
        1,
        "--total_steps",
        4,
        "--eval_every",
        2,
        "--n_eval",
        16,
        "--model_name",
        MODEL_NAME,
    )
    return [
        (
            generate_pool.main,
            ("--n_tasks", "0"),
            "Invalid value for '--n_tasks': n_tasks must be a positive integer or inf, got '0'",
        ),
        (train.main, ("--pool", pool_uri, "--n_dims", 5, *train_args), "pool has D=4 but n_dims=5"),
        (train.main, ("--pool", tmp_path / "missing.npz", "--n_dims", 4, *train_args), "missing.npz' does not exist"),
        (train.main, ("--pool", corrupted, "--n_dims", 4, *train_args), "is not a readable task pool"),
        (
            train.main,
            ("--pool", pool_uri, "--n_dims", 4, "--lr", "abc", *train_args),
            "Invalid value for '--lr': 'abc'",
        ),
        (
            train.main,
            ("--pool", pool_uri, "--n_dims", 4, "--lr", "1e30", *train_args[:-2], "--model_name", MODEL_NAME),
            "training diverged at step",
        ),
        (
            evaluate_baselines.main,
            ("--pool", pool_uri, "--n_dims", 4, "--n_points", 9, "--model", f"models:/{MODEL_NAME}@m4"),
            "n_points=9 exceeds the model's context of 8 points",
        ),
        (
            predict.main,
            ("--model", "models:/no-such-model@m1", "--pool", pool_uri),
            "model='models:/no-such-model@m1' cannot be downloaded",
        ),
        (main.main, ("--preset", "nope"), "Invalid value for '--preset': 'nope' is not one of"),
    ]


def test_bad_input_fails_in_one_line_and_registers_nothing(store, sweep, tmp_path):
    before = registered_versions(store)
    for command, args, message in bad_inputs(sweep, tmp_path):
        result = invoke(command, *args)
        assert result.exit_code != 0, (args, result.output)
        last = result.output.strip().splitlines()[-1]
        assert last.startswith("Error: ") and message in last, (args, result.output)
    assert registered_versions(store) == before
    diverged = mlflow.search_runs(
        search_all_experiments=True, filter_string="params.lr = '1e+30'", output_format="list"
    )
    assert [r.info.status for r in diverged] == ["FAILED"]


def test_every_option_explains_itself():
    for command in (generate_pool.main, evaluate_baselines.main, train.main, main.main, predict.main):
        for param in command.params:
            assert len(param.help or "") > 15, (command.name, param.name)


def test_infinite_pool_label_and_settings_artifact(sweep):
    settings = json.loads(
        open(mlflow.artifacts.download_artifacts(f"runs:/{sweep.parent.info.run_id}/settings.json")).read()
    )
    assert settings["n_tasks"] == "4,inf" and settings["n_layer"] == 1
    assert math.isinf(
        load_pool(
            mlflow.artifacts.download_artifacts(f"runs:/{sweep.runs['pool-minf'].info.run_id}/pool/pool.npz")
        ).n_tasks
    )


def test_main_through_mlflow_run_nests_its_children_under_the_launcher_run(store, tmp_path):
    # A pool seed of its own: nothing to reuse (a reused run stays under the sweep that made it).
    result = mlflow_run("main", "preset=smoke", "n_tasks=8", "pool_seed=4242", "model_name=launched", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    parent = mlflow.search_runs(
        search_all_experiments=True, filter_string="params.model_name = 'launched'", output_format="list"
    )
    parent = [r for r in parent if r.data.tags.get("stage") == "main"][0]
    assert parent.info.status == "FINISHED"
    children = mlflow.search_runs(
        search_all_experiments=True,
        output_format="list",
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
    )
    assert sorted(r.data.tags["stage"] for r in children) == ["evaluate_baselines", "generate_pool", "train"]
    assert all(r.info.status == "FINISHED" for r in children)
    assert {r.info.experiment_id for r in children} == {parent.info.experiment_id}
    # Only preset is declared in MLproject, so the launcher logs the options given and main the resolved rest.
    assert "" not in parent.data.params.values() and parent.data.params["n_layer"] == "1"
    assert parent.data.params["n_tasks"] == "8" and parent.data.params["preset"] == "smoke"
    assert store.client.get_model_version_by_alias("launched", "m8").run_id in {r.info.run_id for r in children}
