"""Heartbeats: a run in progress says, in its tag `heartbeat`, which process on which host runs it and when
it last said so; `is_alive` reads that tag to tell a run whose process is gone (pipeline/tracking/resume.py
marks those KILLED)."""

import contextlib
import json
import os
import socket
import threading
import time
from pathlib import Path

HEARTBEAT_S = 30  # seconds between heartbeats of a run in progress
STALE_S = 600  # a heartbeat older than this means the run's process is gone (even if its pid is in use)
# Set by an executor (ray) to the id of the task a process runs, and the address of its node; in the heartbeat
# of the runs it opens, so that a retry of the task knows the runs its dead attempt left RUNNING, on any host.
TASK_ENV, NODE_ENV = "ICL_EXECUTOR_TASK", "ICL_EXECUTOR_NODE"


def heartbeat():
    beat = {"host": socket.gethostname(), "pid": os.getpid(), "time": time.time(), "limit": STALE_S}
    started = process_start(os.getpid())
    if started is not None:
        beat["started"] = started
    beat |= {key: os.environ[name] for key, name in (("task", TASK_ENV), ("node", NODE_ENV)) if os.environ.get(name)}
    return json.dumps(beat)


def process_start(pid):
    """When process `pid` started (clock ticks since boot, /proc/<pid>/stat), or None (no such process, or
    no /proc): with the pid, it names one process, where a pid alone is reused."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def is_alive(run, task=None):
    """Whether the process that runs `run` (an MLflow Run) is still there, judged by its heartbeat tag: not
    when the heartbeat is older than its limit (whatever holds its pid now; a process stopped for longer,
    as by Ctrl-Z, counts as gone too), nor on this host when no process has its pid, or the one that has it
    started at another time (pids are reused, after a container restart at once); a run of executor task
    `task` is not when that task runs again (its earlier attempt died)."""
    beat = run.data.tags.get("heartbeat")
    if beat is None:
        return True  # not ours to judge (a run started by other code)
    beat = json.loads(beat)
    if task is not None and beat.get("task") == task:
        return False
    if time.time() - beat["time"] > beat.get("limit", STALE_S):
        return False
    if beat["host"] == socket.gethostname():
        try:
            os.kill(beat["pid"], 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        started = process_start(beat["pid"])
        return "started" not in beat or started is None or started == beat["started"]
    return True


def ago(beat):
    """A heartbeat tag's text, said for people: its age, host and pid."""
    beat = json.loads(beat)
    minutes = (time.time() - beat["time"]) / 60
    return f"last heartbeat {minutes:.1f} min ago, from pid {beat['pid']} on {beat['host']}"


@contextlib.contextmanager
def heartbeats(run):
    """Refresh the tag `heartbeat` of `run` (a tracking.Run) every HEARTBEAT_S seconds while inside."""
    done = threading.Event()

    def beat():
        while True:
            # A store briefly out of reach must not end the heartbeats of a run that goes on.
            with contextlib.suppress(Exception):
                run.set_tag("heartbeat", heartbeat())
            if done.wait(HEARTBEAT_S):
                return

    thread = threading.Thread(target=beat, name=f"heartbeat-{run.id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
