"""The MLflow UI as a person sees it: headless Chromium (Debian's `chromium`, driven over its DevTools pipe by
docs/ui_screenshot.py) on `mlflow server` over the smoke sweep's store. The sweep's Overview shows the
summary figure full size in its description, and its Model metrics tab among its charts; two sweeps of the
same preset and axes differ in their names' first 20 characters; the children's names carry their sweep's
id. Screenshots of the pages go to the test's folder, and to the folder ICL_UI_SHOTS names (`make ui-shots`
writes docs/'s). End-to-end (about a minute): make test-all.
"""

import base64
import contextlib
import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from conftest import MODEL_NAME, invoke

from pipeline import main

pytestmark = pytest.mark.e2e
SCRIPT = Path(__file__).resolve().parent.parent / "docs" / "ui_screenshot.py"


def browser():
    """The path of chromium, installed with apt-get where it is missing and this process may (root on Debian);
    the test is skipped, saying why, where neither."""
    found = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    if found is None and shutil.which("apt-get") and os.geteuid() == 0:
        command = "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium"
        subprocess.run(["bash", "-c", command], capture_output=True, timeout=900, check=False)
        found = shutil.which("chromium")
    if found is None:
        pytest.skip("no chromium to drive the UI, and none can be installed here (Debian: apt-get install chromium)")
    return found


@pytest.fixture(scope="module")
def ui(store, sweep):
    """(shots module, base URL the browser opens, REST base URL, [the smoke sweep's run id, its rerun's]) of
    `mlflow server` on the test store, with a rerun of the smoke sweep in it (the same preset and axes: only
    the id tells the two apart)."""
    shots = importlib.util.module_from_spec(spec := importlib.util.spec_from_file_location("ui_screenshot", SCRIPT))
    spec.loader.exec_module(shots)
    result = invoke(main.main, "--preset", "smoke", "--n_tasks", "4,inf", "--model_name", MODEL_NAME)
    assert result.exit_code == 0, result.output
    both = [sweep.parent.info.run_id, re.search(r"sweep run: runs:/(\w+)", result.output).group(1)]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base, shown = f"http://127.0.0.1:{port}", f"http://{shots.HOST}:{port}"
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store.uri, "--port", str(port)]
    command += ["--host", "127.0.0.1", "--workers", "1", "--allowed-hosts", f"{shots.HOST}:{port},127.0.0.1:{port}"]
    command += ["--cors-allowed-origins", shown]
    env = os.environ | {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
    server = subprocess.Popen(command, env=env, start_new_session=True, **{"stdout": subprocess.DEVNULL})
    try:
        deadline = time.monotonic() + 120
        while not shots.up(base):
            assert server.poll() is None and time.monotonic() < deadline, "mlflow server did not come up"
            time.sleep(0.5)
        yield shots, shown, base, both
    finally:
        shots.stop(server)


@contextlib.contextmanager
def chromium(shots):
    chrome = shots.Chrome(browser(), 1600, 1000)
    try:
        yield chrome
    finally:
        chrome.close()


def save(chrome, name, folder):
    """The page as `name` in `folder` and, when ICL_UI_SHOTS names a folder, there too; returns the path."""
    data = base64.b64decode(chrome.call("Page.captureScreenshot", format="png")["data"])
    for target in filter(None, (folder, os.environ.get("ICL_UI_SHOTS"))):
        Path(target).mkdir(parents=True, exist_ok=True)
        Path(target, name).write_bytes(data)
    return Path(folder, name)


def run_info(base, run_id):
    """A run's info over the REST API (GET runs/get)."""
    with urllib.request.urlopen(f"{base}/api/2.0/mlflow/runs/get?run_id={run_id}", timeout=30) as answer:
        return json.load(answer)["run"]["info"]


def test_the_sweeps_overview_and_model_metrics_tab_show_the_summary_figure(ui, tmp_path):
    shots, shown, base, (_, rerun) = ui
    run = run_info(base, rerun)
    url = f"{shown}/#/experiments/{run['experiment_id']}/runs/{run['run_id']}"
    with chromium(shots) as chrome:
        chrome.open(url + "?workflowType=machine_learning")  # the Overview: the description, figure first
        chrome.js("[...document.querySelectorAll('button, a, span')].find(e => e.innerText === 'Show more')?.click()")
        time.sleep(3)
        found = chrome.js("[...document.querySelectorAll('img')].map(i => [decodeURIComponent(i.src), i.naturalWidth])")
        save(chrome, "ui_sweep_overview.png", tmp_path)
    assert any("path=summary/sweep.png" in src and width >= 1000 for src, width in found), found  # full size
    url += "/model-metrics"
    with chromium(shots) as chrome:
        chrome.open(url + "?workflowType=machine_learning")
        chrome.js(shots.SEARCH_JS % json.dumps("summary"))  # the chart search box, typed into as a person would
        time.sleep(8)
        images = "[...document.querySelectorAll('[data-testid=experiment-view-compare-runs-card] img')]"
        found = chrome.js(images + ".map(i => [decodeURIComponent(i.src), i.naturalWidth])")
        save(chrome, "ui_summary_chart.png", tmp_path)
    # The chart shows the newest summary image, loaded (MLflow's 256-px copy: the full figure is a click away).
    assert any("images/summary+step+0+" in src and width > 0 for src, width in found), found


def test_sweeps_and_children_are_told_apart_by_name(ui, tmp_path):
    shots, shown, base, both = ui
    first, again = (run_info(base, run_id) for run_id in both)
    names = [first["run_name"], again["run_name"]]
    assert names[0][:20] != names[1][:20], names  # the same preset and axes: the id comes early
    experiment = first["experiment_id"]
    runs = f"{shown}/#/experiments/{experiment}/runs?workflowType=machine_learning&searchFilter="
    # The session's store holds hundreds of runs by now (the table shows the newest 100): filter as a user would.
    found = {}
    for what, where in (("sweeps", "tags.stage = 'main'"), ("children", f"tags.mlflow.parentRunId = '{both[0]}'")):
        with chromium(shots) as chrome:
            chrome.open(f"{shown}/health", quiet=0.5)  # the UI's origin: expand the first sweep's children
            key = json.dumps(f'MLflowLocalStorage-1.1-ExperimentPage-["{experiment}"]-ReactComponentState')
            expanded = json.dumps({"runsExpanded": {first["run_id"]: True}})
            chrome.js(f"localStorage.setItem({key}, {json.dumps(expanded)})")
            chrome.open(runs + urllib.parse.quote(where))
            found[what] = chrome.js("document.body.innerText")
            if what == "children":
                save(chrome, "ui_runs_named.png", tmp_path)
    for name in names:
        assert name in found["sweeps"], (name, found["sweeps"][:3000])
    child = f"train-m4 [{first['run_id'][:6]}]"  # a child names the sweep it belongs to
    assert names[0] in found["children"] and child in found["children"], found["children"][:3000]


def test_the_comparison_recipe_draws_every_training_of_the_sweep(ui, tmp_path):
    """docs/mlflow_ui.md's recipe, clicked through (docs/ui_screenshot.py's compare): the chart view filtered to
    the sweep's trainings, every sweep row expanded, all runs shown, a scatter of true/delta_pt_ridge against
    log2_n_tasks: one point per training, M = inf included (at 22)."""
    shots, shown, base, (first, _) = ui
    run = run_info(base, first)
    query = {"experiment_ids": [run["experiment_id"]], "filter": shots.recipe_filter(first), "max_results": 100}
    trainings = shots.api(base, "runs/search", query)["runs"]
    url = f"{shown}/#/experiments/{run['experiment_id']}/runs?workflowType=machine_learning&compareRunsMode=CHART"
    url += f"&searchFilter={urllib.parse.quote(shots.recipe_filter(first))}"
    with chromium(shots) as chrome:
        points = shots.compare(chrome, url, "log2_n_tasks", "true/delta_pt_ridge")
        Path(tmp_path, "ui_compare.png").write_bytes(
            base64.b64decode(chrome.call("Page.captureScreenshot", format="png")["data"])
        )
    assert len(trainings) == 2 and points == len(trainings), (points, [t["info"]["run_name"] for t in trainings])
