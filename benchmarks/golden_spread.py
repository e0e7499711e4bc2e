"""How far the smoke sweep's metrics move with the CPU's kernels: the measurement behind tests/test_golden.py's
tolerances.

Runs the golden test's sweep (smoke preset, M = 4 and inf) in fresh stores, once per setting below, each in a
fresh process, and prints for each the largest relative difference to the recorded file
(tests/data/smoke_metrics.json), for the transformer's numbers (float32: training/* and every pt metric) and
the estimators' (float64), then the largest over every pair of runs. The settings select torch's kernels
(ATEN_CPU_CAPABILITY), MKL's (MKL_ENABLE_INSTRUCTIONS) and numpy's BLAS's (OPENBLAS_CORETYPE) as another CPU
would, and the thread count.

    python -m benchmarks.golden_spread            # every setting (about 15 s each)
    python -m benchmarks.golden_spread --only native,aten_default
"""

import json
import os
import re
import subprocess
import sys
import tempfile
from itertools import combinations
from pathlib import Path

import click

PROJECT = Path(__file__).resolve().parents[1]
RECORDED = PROJECT / "tests" / "data" / "smoke_metrics.json"
AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "OPENBLAS_CORETYPE": "Haswell"}
SSE = {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "OPENBLAS_CORETYPE": "Nehalem"}
SETTINGS = {
    "native": ({}, ()),
    "aten_default": ({"ATEN_CPU_CAPABILITY": "default"}, ()),
    "aten_avx2": ({"ATEN_CPU_CAPABILITY": "avx2"}, ()),
    "aten_avx512": ({"ATEN_CPU_CAPABILITY": "avx512"}, ()),
    "avx2_machine": (AVX2, ()),
    "sse_machine": (SSE, ()),
    **{f"threads{n}": ({}, ("--threads", str(n))) for n in (1, 3, 4, 8)},
}
DUMP = """
import json, re, sys
from click.testing import CliRunner
from mlflow.tracking import MlflowClient
from pipeline import main
args = ["--preset", "smoke", "--n_tasks", "4,inf", "--model_name", "test-model", *sys.argv[2:]]
result = CliRunner().invoke(main.main, args, catch_exceptions=False)
assert result.exit_code == 0, result.output
client = MlflowClient()
experiment = client.get_experiment_by_name("golden")
parent = re.search(r"sweep run: runs:/(\\w+)", result.output).group(1)
out = {}
for run in client.search_runs([experiment.experiment_id], f"tags.mlflow.parentRunId = '{parent}'"):
    histories = {k: client.get_metric_history(run.info.run_id, k) for k in run.data.metrics}
    out[run.info.run_name] = {k: [[m.step, m.value] for m in sorted(h, key=lambda m: (m.step, m.timestamp))]
                              for k, h in histories.items()}
open(sys.argv[1], "w").write(json.dumps(out))
"""


def recorded_with(env, args, folder):
    """The smoke sweep's metrics ({run: {key: [[step, value]]}}) in a fresh process with `env` added."""
    path = Path(folder, "metrics.json")
    env = {**os.environ, **env, "MLFLOW_TRACKING_URI": f"sqlite:///{folder}/mlflow.db"}
    env |= {"MLFLOW_EXPERIMENT_NAME": "golden", "PYTHONPATH": str(PROJECT)}
    for key in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID"):
        env.pop(key, None)
    subprocess.run([sys.executable, "-c", DUMP, str(path), *args], cwd=folder, env=env, check=True, capture_output=True)
    return json.loads(path.read_text())


def float32(key):
    words = re.split("[/_]", key)
    return words[0] == "training" or "pt" in words


def spread(a, b):
    """Largest relative difference between two recordings: (float32 keys, float64 keys)."""
    worst = [0.0, 0.0]
    for run, metrics in a.items():
        for key, history in metrics.items():
            for (_, x), (_, y) in zip(history, b[run][key], strict=True):
                scale = max(abs(x), abs(y)) or 1.0
                worst[0 if float32(key) else 1] = max(worst[0 if float32(key) else 1], abs(x - y) / scale)
    return worst


@click.command(help=__doc__.split("\n\n")[0])
@click.option("--only", default="", help="comma list of settings to run (default: all)")
def main(only):
    names = [name for name in SETTINGS if not only or name in only.split(",")]
    recorded = json.loads(RECORDED.read_text())
    runs = {"recorded": recorded}
    print("| setting | float32 vs recorded | float64 vs recorded |\n|---|---|---|")
    for name in names:
        env, args = SETTINGS[name]
        with tempfile.TemporaryDirectory() as folder:
            runs[name] = recorded_with(env, args, folder)
        f32, f64 = spread(recorded, runs[name])
        print(f"| {name} | {f32:.2e} | {f64:.2e} |", flush=True)
    pairs = [spread(runs[a], runs[b]) for a, b in combinations(runs, 2)]
    print(f"largest over every pair: float32 {max(p[0] for p in pairs):.2e}, float64 {max(p[1] for p in pairs):.2e}")


if __name__ == "__main__":
    main()
