"""Screenshots of the MLflow UI for docs/mlflow_ui.md (run overview, model-metric charts, runs table, chart view,
and the comparison recipe: a sweep's trainings as a scatter of true/delta_pt_ridge against log2_n_tasks).

Starts `mlflow server` (from this Python's bin dir) on a free port against an existing SQLite store, finds the run
over REST, renders the page in headless Chromium (Linux; `apt-get install chromium`) driven over its DevTools pipe,
waits until the app has settled, writes the PNG, and always stops browser and server. Pages open in the "Model
training" workflow (`?workflowType=machine_learning`) with the run's children expanded in the runs table.
Chromium is driven over its DevTools pipe with the standard library, not Playwright or Selenium: their
browsers are downloaded from the internet, which these machines cannot reach, while Debian's chromium installs.

    python docs/ui_screenshot.py --store mlflow.db --view model-metrics --out docs/img/model_metrics.png"""

import argparse
import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

HOST = "mlflow-ui"  # mapped to 127.0.0.1 inside Chromium; not "localhost", so the MLflow Assistant panel stays shut
VIEWS = {"overview": "/runs/{}", "model-metrics": "/runs/{}/model-metrics", "runs": "/runs", "charts": "/runs"}
VIEWS["compare"] = "/runs"  # the chart view, filtered to the sweep's trainings, after compare()'s clicks
BUSY_JS = """[document.readyState, performance.getEntriesByType('resource').length, document.all.length,
  [...document.querySelectorAll('[class*=spin-spinning], [class*=skeleton]')].filter(e => {
  const r = e.getBoundingClientRect(); return r.width > 0 && r.bottom > 0 && r.top < innerHeight; }).length].join()"""
SEARCH_JS = """(() => { const box = document.querySelector('input[placeholder^="Search metric"]');
  Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').set.call(box, %s);
  box.dispatchEvent(new Event('input', {bubbles: true})); })()"""
QUIET = {"start_new_session": True, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
# The visible innermost element whose whole text is %s (the last one: a dropdown's, not the field's), scrolled
# into view.
LEAF_JS = """(t => { const e = [...document.querySelectorAll('body *')].filter(e => e.textContent.trim() === t
  && ![...e.children].some(c => c.textContent.trim() === t) && e.tagName !== 'INPUT'
  && e.getBoundingClientRect().width > 0).pop();
  if (!e) return null; e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();
  return [r.x + Math.min(10, r.width / 2), r.y + r.height / 2]; })(%s)"""
# The centres of the runs table's expand toggles (a parent run's, next to its name), lowest first.
TOGGLES_JS = """[...document.querySelectorAll('[role=row] button[data-component-id*=runnamecellrenderer]')]
  .map(b => { const r = b.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })
  .sort((a, b) => b[1] - a[1])"""


def api(base, path, body):
    url, headers = f"{base}/api/2.0/mlflow/{path}", {"Content-Type": "application/json"}
    with urllib.request.urlopen(urllib.request.Request(url, json.dumps(body).encode(), headers), timeout=30) as resp:
        return json.load(resp)


def up(base):
    with contextlib.suppress(OSError), urllib.request.urlopen(f"{base}/health", timeout=2):
        return True
    return False


def stop(proc):
    for sig in (signal.SIGTERM, signal.SIGKILL):  # the whole process group: mlflow server has a uvicorn child
        with contextlib.suppress(ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, sig)
            proc.wait(20)
    proc.wait()


class Chrome:
    """Headless Chromium over --remote-debugging-pipe: it reads commands on fd 3 and answers on fd 4."""

    def __init__(self, exe, width, height):
        (cmd_r, self.cmd_w), (self.out_r, out_w) = os.pipe(), os.pipe()
        ends = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (cmd_r, out_w)]  # out of the way of fds 3, 4
        self.profile, self.buf, self.n, self.session = tempfile.mkdtemp(prefix="ui-screenshot-"), b"", 0, None
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--remote-debugging-pipe"]
        flags += [f"--user-data-dir={self.profile}", f"--host-resolver-rules=MAP {HOST} 127.0.0.1"]
        flags += [f"--window-size={width},{height}"]
        dup = lambda: (os.dup2(ends[0], 3), os.dup2(ends[1], 4))  # noqa: E731
        self.proc = subprocess.Popen([exe, *flags], preexec_fn=dup, close_fds=False, **QUIET)
        for fd in (cmd_r, out_w, *ends):
            os.close(fd)
        try:
            page = next(t for t in self.call("Target.getTargets")["targetInfos"] if t["type"] == "page")
            self.session = self.call("Target.attachToTarget", targetId=page["targetId"], flatten=True)["sessionId"]
            self.call(
                "Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False
            )
        except BaseException:
            self.close()
            raise

    def call(self, method, **params):
        self.n += 1
        msg = {"id": self.n, "method": method, "params": params} | ({"sessionId": self.session} if self.session else {})
        os.write(self.cmd_w, json.dumps(msg).encode() + b"\0")
        while True:
            while b"\0" not in self.buf:
                if not select.select([self.out_r], [], [], 60)[0] or not (chunk := os.read(self.out_r, 1 << 20)):
                    raise RuntimeError(f"chromium stopped answering ({method})")
                self.buf += chunk
            raw, self.buf = self.buf.split(b"\0", 1)
            if (reply := json.loads(raw)).get("id") == self.n:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def js(self, expr):
        return self.call("Runtime.evaluate", expression=expr, returnByValue=True)["result"].get("value")

    def open(self, url, timeout=90, quiet=2.5):
        """Navigate; return once no spinner shows and no request or DOM node was added for `quiet` seconds."""
        self.call("Page.navigate", url=url)
        last, since, end = None, time.time(), time.time() + timeout
        while time.time() < end:
            time.sleep(0.5)
            if (state := self.js(BUSY_JS)) != last:
                last, since = state, time.time()
            elif state.startswith("complete") and state.endswith(",0") and time.time() - since >= quiet:
                return
        print(f"warning: page still busy after {timeout} s, taking the screenshot anyway", file=sys.stderr)

    def click(self, x, y):
        """A mouse click at (x, y) of the viewport, as a person's (React sees pointer events)."""
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)
        time.sleep(1.5)

    def click_on(self, selector, index=0, text=""):
        """Click the `index`-th element that matches the CSS `selector` (and whose text contains `text`)."""
        found = self.js(f"""(e => {{ if (!e) return null; e.scrollIntoView({{block: 'center'}});
          const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; }})(
          [...document.querySelectorAll({json.dumps(selector)})].filter(e => e.innerText.includes(
          {json.dumps(text)})).at({index}))""")
        if found is None:
            raise RuntimeError(f"nothing on the page matches {selector!r} with {text!r}")
        self.click(*found)

    def click_text(self, text):
        """Click the visible element whose whole text is `text` (a button, a menu item, a dropdown option)."""
        if (found := self.js(LEAF_JS % json.dumps(text))) is None:
            raise RuntimeError(f"nothing on the page reads {text!r}")
        self.click(*found)

    def close(self):
        stop(self.proc)
        shutil.rmtree(self.profile, ignore_errors=True)


def recipe_filter(sweep_id):
    """The runs table's filter of docs/mlflow_ui.md's recipe: the trainings a sweep used (made or reused)."""
    return f"tags.stage = 'train' and tags.sweeps LIKE '%{sweep_id[:6]}%'"


def compare(chrome, url, x, y):
    """The comparison recipe of docs/mlflow_ui.md, clicked as a person would on the chart view at `url` (runs
    filtered to a sweep's trainings): expand every sweep row (parents start collapsed, and only the runs in
    the table are drawn), show all runs (10 by default), add a scatter chart of metric `y` against `x`, open
    it full size. Returns the number of points it draws."""
    chrome.open(url)
    for toggle in chrome.js(TOGGLES_JS):  # from the lowest up: opening one moves the rows below it
        chrome.click(*toggle)
    chrome.click_on('button[aria-label="Toggle visibility of runs"]')
    chrome.click_text("Show all runs")
    chrome.click_on("button", text="Add chart")
    chrome.click_text("Scatter chart")
    for field, metric in enumerate((x, y)):  # the dialog's X and Y axis fields: type, then pick the option
        chrome.click_on("[role=dialog] input[role=combobox]", field)
        chrome.call("Input.insertText", text=metric)
        time.sleep(1.5)
        chrome.click_text(metric)
    chrome.click_on("[role=dialog] button", text="Add chart")
    chrome.js(SEARCH_JS % json.dumps(x))  # the charts of `x` alone (the others are drawn only when scrolled to)
    time.sleep(3)
    chrome.js(f"""[...document.querySelectorAll('[data-testid=experiment-view-compare-runs-card]')].find(c =>
      c.innerText.includes({json.dumps(f"{x} vs. {y}")})).setAttribute('data-recipe', 'scatter')""")
    chrome.click_on("[data-recipe=scatter] button[data-component-id=fullscreen_button_chartcard]")
    chrome.js("document.head.insertAdjacentHTML('beforeend', '<style>.modebar-container{display:none}</style>')")
    return chrome.js("document.querySelectorAll('[role=dialog] .scatterlayer .point').length")


def screenshot(args, exe, base, ui, server, log):
    deadline = time.time() + 120  # the server needs about 10 s
    while not up(base):
        if server.poll() is not None or time.time() > deadline:
            log.seek(0)
            raise SystemExit(f"mlflow server did not come up:\n{log.read().decode(errors='replace')[-3000:]}")
        time.sleep(0.5)
    exps = [e["experiment_id"] for e in api(base, "experiments/search", {"max_results": 1000})["experiments"]]
    flt = f"attributes.run_name = '{args.run_name}'" if args.run_name else "tags.stage = 'main'"
    query = {"experiment_ids": exps, "filter": flt, "order_by": ["attributes.start_time DESC"], "max_results": 1}
    if not (runs := api(base, "runs/search", query).get("runs")):
        raise SystemExit(f"no run matches {flt}")
    exp, run_id, run_name = (runs[0]["info"][k] for k in ("experiment_id", "run_id", "run_name"))
    url = f"{ui}/#/experiments/{exp}{VIEWS[args.view].format(run_id)}?workflowType=machine_learning"
    url += "&compareRunsMode=CHART" if args.view in ("charts", "compare") else ""
    url += f"&searchFilter={urllib.parse.quote(recipe_filter(run_id))}" if args.view == "compare" else ""
    chrome = Chrome(exe, *map(int, args.size.lower().split("x")))
    try:
        if args.view == "compare":  # the runs table as a person finds it: every sweep collapsed
            print(f"the recipe's scatter draws {compare(chrome, url, 'log2_n_tasks', 'true/delta_pt_ridge')} points")
        else:
            chrome.open(f"{ui}/health", quiet=0.5)  # the UI's origin: seed the runs table state before the app starts
            key = json.dumps(f'MLflowLocalStorage-1.1-ExperimentPage-["{exp}"]-ReactComponentState')
            chrome.js(f"localStorage.setItem({key}, {json.dumps(json.dumps({'runsExpanded': {run_id: True}}))})")
            chrome.open(url)
        chrome.js("document.head.insertAdjacentHTML('beforeend', '<style>.modebar-container{display:none}</style>')")
        if args.search:  # type into the chart search box as a user would (React listens for input events)
            chrome.js(SEARCH_JS % json.dumps(args.search))
            time.sleep(3)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_bytes(base64.b64decode(chrome.call("Page.captureScreenshot", format="png")["data"]))
        print(f"wrote {args.out}: {args.view} of run {run_name} ({run_id})\n  {url}")
    finally:
        chrome.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", required=True, type=Path, help="SQLite tracking store (mlflow.db)")
    ap.add_argument("--run-name", help="run to show (default: the newest run tagged stage = 'main')")
    ap.add_argument("--out", required=True, type=Path, help="PNG file to write")
    ap.add_argument("--view", choices=VIEWS, default="model-metrics", help="page to capture (default: %(default)s)")
    ap.add_argument("--search", help="text typed into the model-metrics chart search (e.g. by_M/true/)")
    ap.add_argument("--size", default="1600x1000", help="viewport WIDTHxHEIGHT (default: %(default)s)")
    args = ap.parse_args()
    exe = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    if not args.store.is_file() or not exe:
        ap.error(f"no store at {args.store}" if exe else "chromium not found (Debian: apt-get install chromium)")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base, ui, store = f"http://127.0.0.1:{port}", f"http://{HOST}:{port}", f"sqlite:///{args.store.resolve()}"
    cmd = [Path(sys.executable).parent / "mlflow", "server", "--backend-store-uri", store, "--port", str(port)]
    cmd += ["--host", "127.0.0.1", "--workers", "1", "--allowed-hosts", f"{HOST}:{port},127.0.0.1:{port}"]
    env = os.environ | {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen(
            [*cmd, "--cors-allowed-origins", ui], env=env, **QUIET | {"stdout": log, "stderr": log}
        )
        try:
            screenshot(args, exe, base, ui, server, log)
        finally:
            stop(server)


if __name__ == "__main__":
    main()
