"""The sweep: summary structure on the smoke preset, reuse of finished children, parallel chains,
and the threshold rules on worked examples."""

import csv
import io
import math

import mlflow
import pytest
from conftest import MODEL_NAME, invoke

from pipeline import main
from pipeline.main import data_scales, warmup_fraction
from pipeline.presets import resolve
from pipeline.summary import COLUMNS, summary_row, threshold
from pipeline.sweep import same_params


def runs_of_stage(store, stage):
    experiment = store.client.get_experiment_by_name("tests")
    return store.client.search_runs([experiment.experiment_id], f"tags.stage = '{stage}'")


def test_summary_on_the_parent_run(store, sweep):
    run_id = sweep.parent.info.run_id
    paths = {a.path for a in store.client.list_artifacts(run_id, "summary")}
    assert paths == {"summary/summary.csv", "summary/summary.json", "summary/sweep.png"}
    text = open(mlflow.artifacts.download_artifacts(f"runs:/{run_id}/summary/summary.csv")).read()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == COLUMNS and [r["n_tasks"] for r in rows] == ["4", "inf"]
    for row in rows:
        for key in ("pretrain/pt/loss_noiseless", "true/ridge/loss_noiseless", "true/delta_pt_ridge"):
            assert float(row[key]) > 0, key
    assert rows[1]["true/dmmse/loss_noiseless"] == "nan"  # no dMMSE at M = inf
    assert float(rows[0]["pretrain/dmmse/loss_noiseless"]) < float(rows[0]["pretrain/ridge/loss_noiseless"])
    assert sweep.parent.data.tags["threshold_rule"] == "PT closer to ridge than to dMMSE on T_True"


def test_rerunning_a_sweep_reuses_its_finished_children(store, sweep):
    trained = len(runs_of_stage(store, "train"))
    # 0.003 is the smoke preset's 3e-3 written differently: params compare by type, not as text.
    result = invoke(main.main, "--preset", "smoke", "--n_tasks", "4,inf", "--model_name", MODEL_NAME, "--lr", "0.003")
    assert result.exit_code == 0, result.output
    assert result.output.count("reusing") == 6
    assert len(runs_of_stage(store, "train")) == trained
    result = invoke(main.main, "--preset", "smoke", "--n_tasks", "4,16", "--model_name", MODEL_NAME)
    assert result.output.count("reusing") == 3  # M = 4 again; M = 16 is new
    assert len(runs_of_stage(store, "train")) == trained + 1


def test_two_data_scales_in_two_worker_processes(store):
    result = invoke(
        main.main,
        "--preset",
        "smoke",
        "--n_tasks",
        "8,32",
        "--batch_size",
        "16,32",
        "--workers",
        2,
        "--total_steps",
        40,
        "--warmup_steps",
        10,
        "--eval_every",
        20,
        "--model_name",
        MODEL_NAME,
    )
    assert result.exit_code == 0, result.output
    experiment = store.client.get_experiment_by_name("tests")
    parent = store.client.search_runs([experiment.experiment_id], "params.batch_size = '16,32'")[0]
    children = store.client.search_runs(
        [experiment.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}' and tags.stage = 'train'"
    )
    assert sorted(r.data.params["batch_size"] for r in children) == ["16", "16", "32", "32"]
    assert all(r.info.status == "FINISHED" for r in children)
    assert parent.data.tags["threshold_rule"] == "crossing of Delta^True_PT,Ridge for B16 and B32"


def row(m, scale, pt_ridge, pt_dmmse):
    return summary_row(m, scale, {}, {"true/delta_pt_ridge": pt_ridge, "true/delta_pt_dmmse": pt_dmmse})


def test_threshold_with_one_scale_is_where_pt_turns_ridge_like():
    rows = [row(4, "", 0.5, 0.1), row(16, "", 0.3, 0.2), row(64, "", 0.1, 0.4), row(math.inf, "", 0.01, math.nan)]
    log2_m, rule = threshold(rows)
    assert rule == "PT closer to ridge than to dMMSE on T_True"
    assert log2_m == pytest.approx(4 + 2 * 0.1 / 0.4)  # gap +0.1 at 2^4, -0.3 at 2^6: zero at 2^4.5


def test_threshold_with_two_scales_is_where_their_curves_cross():
    rows = [row(4, "B1", 0.5, 0), row(16, "B1", 0.2, 0), row(4, "B2", 0.4, 0), row(16, "B2", 0.3, 0)]
    log2_m, rule = threshold(rows)
    assert rule == "crossing of Delta^True_PT,Ridge for B1 and B2"
    assert log2_m == pytest.approx(2 + 2 * 0.1 / 0.2)
    assert math.isnan(threshold(rows[:1] + rows[2:3])[0])  # one point each: no crossing to find


def test_two_scales_of_both_kinds_are_refused(store):
    result = invoke(main.main, "--preset", "smoke", "--batch_size", "16,32", "--total_steps", "40,80")
    assert result.exit_code != 0
    assert "give two values for batch_size or for total_steps, not both" in result.output


def test_params_compare_by_type_not_text():
    logged = {"lr": "1e-3", "n_tasks": "1e3", "n_layer": "4", "schedule": "triangle", "pool": "runs:/a/pool/pool.npz"}
    wanted = {"lr": 0.001, "n_tasks": 1000, "n_layer": 4, "schedule": "triangle", "pool": "runs:/a/pool/pool.npz"}
    assert same_params("generate_pool", logged, {"n_tasks": 1000})
    assert same_params("train", logged, {k: v for k, v in wanted.items() if k != "n_tasks"})
    assert not same_params("train", logged, {"lr": 0.002})
    assert not same_params("train", logged, {"batch_size": 64})  # not logged: not the same run
    assert same_params("generate_pool", {"n_tasks": "inf"}, {"n_tasks": math.inf})


def test_warmup_follows_total_steps_unless_given():
    smoke = resolve("smoke", {})  # 30 of 60 steps
    settings = smoke | {"batch_size": [16], "total_steps": [20, 40]}
    scales = data_scales(settings, warmup_fraction("smoke", {"total_steps": [20, 40]}, settings))
    assert [(name, s["total_steps"], s["warmup_steps"]) for name, s in scales] == [("T20", 20, 10), ("T40", 40, 20)]
    settings = smoke | {"batch_size": [16], "total_steps": [20], "warmup_steps": 30}
    with pytest.raises(ValueError, match="warmup_steps=30 must be below total_steps=20"):
        data_scales(settings, warmup_fraction("smoke", {"warmup_steps": 30}, settings))
