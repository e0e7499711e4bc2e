"""task_prior=laplace (paper Fig. 14) end to end: the pool, M = inf's fresh tasks and T_True's tasks are
Laplace of the Gaussian's variance, Gaussian draws are unchanged, and a sweep scores the transformer
against the Laplace prior's Bayes predictor beside ridge."""

import math
import re

import numpy as np
import pytest
import torch
from conftest import invoke, stage_name
from scipy import stats

from pipeline import analyze
from tasks import DataSettings, EvalSettings, make_eval_set, make_pool, sample_batch


def excess_kurtosis(values):
    return float(stats.kurtosis(np.asarray(values).ravel()))


def test_laplace_tasks_have_the_gaussian_variance_and_laplace_tails():
    pool = make_pool(50_000, 4, seed=1, task_scale=2.0, task_prior="laplace")
    assert pool.task_prior == "laplace" and pool.tasks.var() == pytest.approx(4.0, rel=0.02)
    assert excess_kurtosis(pool.tasks) == pytest.approx(3.0, abs=0.2)  # Laplace: 3, Gaussian: 0
    spec = DataSettings(20_000, 2, 4, 0.5, 1.0, 1, 2, 3)
    _, ws, _ = sample_batch(spec, 0, pool=None, task_scale=2.0, task_prior="laplace")
    assert float(ws.var()) == pytest.approx(4.0, rel=0.03) and excess_kurtosis(ws) == pytest.approx(3.0, abs=0.3)
    inf = make_pool(math.inf, 4, seed=0, task_scale=2.0, task_prior="laplace")
    true = make_eval_set("true", inf, EvalSettings(20_000, 2, 0.5, 1.0, 4, 5, 6))
    assert true.ws.var() == pytest.approx(4.0, rel=0.03) and excess_kurtosis(true.ws) == pytest.approx(3.0, abs=0.3)


def test_gaussian_draws_are_what_they_were_before_the_option():
    rng_pool = make_pool(64, 3, seed=9, task_scale=1.5)
    from tasks.streams import numpy_rng, torch_generator

    expected = (1.5 * numpy_rng(9, "pool").standard_normal((64, 3))).astype(np.float32)
    np.testing.assert_array_equal(rng_pool.tasks, expected)
    spec = DataSettings(8, 2, 3, 0.5, 1.0, 1, 2, 3)
    _, ws, _ = sample_batch(spec, 5, pool=None, task_scale=1.5)
    torch.testing.assert_close(
        ws, 1.5 * torch.randn(8, 3, generator=torch_generator(2, "task", 5, "cpu")), rtol=0, atol=0
    )


def test_a_laplace_sweep_scores_the_transformer_against_the_laplace_bayes_predictor(store, laplace_sweep):
    parent = laplace_sweep
    runs = store.client.search_runs(
        [store.client.get_experiment_by_name("tests").experiment_id], f"tags.mlflow.parentRunId = '{parent}'"
    )
    by_name = {stage_name(r): r for r in runs}
    assert by_name["pool-m4"].data.params["task_prior"] == "laplace"
    for name in ("baselines-m4", "baselines-minf"):
        metrics = by_name[name].data.metrics
        assert metrics["true/laplace/loss_noiseless"] <= metrics["true/ridge/loss_noiseless"] * 1.02
        assert "true/delta_laplace_ridge" in metrics
    train = by_name["train-minf"]
    assert train.data.params["task_prior"] == "laplace" and "true/delta_pt_laplace" in train.data.metrics
    assert len(store.client.get_metric_history(train.info.run_id, "true/delta_pt_laplace")) >= 2


def test_the_laplace_analysis_reads_the_tracked_deltas(store, laplace_sweep, sweep):
    result = invoke(analyze.main, "--kind", "laplace", "--sweep", f"runs:/{laplace_sweep}")
    assert result.exit_code == 0, result.output
    run = store.client.get_run(re.search(r"analysis run: runs:/(\w+)", result.output).group(1))
    data = store.client.load_table(run.info.experiment_id, "laplace/laplace.json", run_ids=[run.info.run_id])
    rows = data.to_dict("list")
    assert len(rows["n_tasks"]) == 2 and rows["n_tasks"][0] == 4  # M = 4 and inf
    for run_id, delta in zip(rows["train_run"], rows["true/delta_pt_laplace"], strict=True):
        assert delta == pytest.approx(store.client.get_run(run_id).data.metrics["true/delta_pt_laplace"], rel=1e-9)
    assert "laplace_over_ridge_delta/m4" in run.data.metrics
    gaussian = invoke(analyze.main, "--kind", "laplace", "--sweep", f"runs:/{sweep.parent.info.run_id}")
    assert gaussian.exit_code == 1 and "Error: laplace needs a sweep with task_prior=laplace" in gaussian.output
