"""The benchmarks run: the GPU one in its dry mode on this CPU (the same code path as on CUDA, the smoke model),
and without CUDA it says so in one line; the estimators one in its quick mode."""

import subprocess
import sys

import pytest
import torch
from conftest import PROJECT


def benchmark(*args):
    command = [sys.executable, "-m", "benchmarks.gpu", *args]
    return subprocess.run(command, cwd=PROJECT, capture_output=True, text=True, timeout=300)


def test_gpu_benchmark_dry_run_prints_its_table():
    result = benchmark("--dry", "--compile")
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [row.split(" | ")[0] for row in rows] == ["| 1", "| 2"]
    assert all(float(row.split(" | ")[1]) > 0 and row.endswith("packs) |") for row in rows)
    assert all(float(row.split(" | ")[2].split(" (")[0]) > 0 for row in rows)  # the compiled step's rate


def test_gpu_benchmark_without_cuda_says_so():
    if torch.cuda.is_available():
        return
    result = benchmark()
    assert result.returncode == 1 and result.stderr.strip().splitlines() == [
        "Error: no CUDA device here: run with --dry to check the script on a CPU"
    ]


def test_estimator_benchmark_quick_run_agrees_with_the_loop_for_every_backend():
    command = [sys.executable, "-m", "benchmarks.estimators", "--quick", "--n-seqs", "16"]
    result = subprocess.run(command, cwd=PROJECT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    rows = [line.split(" | ") for line in result.stdout.splitlines() if line.startswith("| dMMSE |")]
    backends = ["numpy", "torch"] + (["torch (cuda)"] if torch.cuda.is_available() else [])
    assert [row[4] for row in rows] == backends * 2  # D = 8 and D = 32
    assert all(float(row[9]) <= 1e-10 for row in rows), rows  # agreement with the per-prefix loop, relative


def test_laplace_gap_measures_two_predictors_on_the_same_sequences():
    """The Laplace predictor is the Bayes one for these tasks: on 512 sequences it is not worse than ridge
    beyond the interval, and the two predict differently (Delta_L,R > 0)."""
    from benchmarks.laplace_gap import measure

    ridge, laplace, (gap, low, high), apart = measure(4, 8, 0.35, 512, 300)
    assert 0.2 < laplace < ridge < 0.6 and gap == pytest.approx(1 - laplace / ridge) and high > 0 and apart > 0


def test_cpu_setting_report_reads_each_m_inf_training_against_ridge(store, sweep):
    """On the session's smoke sweep: its M = inf training, its gap to ridge, and the mean (one replicate: no
    interval)."""
    from click.testing import CliRunner

    from benchmarks.cpu_setting import main

    result = CliRunner().invoke(main, ["report", "--store", str(store.folder / "mlflow.db"), "--experiment", "tests"])
    assert result.exit_code == 0, result.output
    [line] = [line for line in result.output.splitlines() if line.startswith("test-model: gap")]
    pt = sweep.runs["train-minf"].data.metrics["true/pt/loss_noiseless"]
    ridge = sweep.runs["baselines-minf"].data.metrics["true/ridge/loss_noiseless"]
    assert line == f"test-model: gap {pt / ridge - 1:+.2%} (95% t interval +nan% to +nan%) over 1 replicates"
