"""Task pools: M linear-regression tasks w ~ N(0, task_scale^2 I_D) drawn once (paper Sec. 2), or from
the Laplace prior of the same variance (task_prior, paper Fig. 14; tasks/priors.py).

M = infinity is the limit of unbounded diversity: there is no pool and every sequence gets a fresh
task, so its `tasks` array is None. A pool is saved as one `.npz` file holding the tasks and a JSON
header with its shape, its parameters and the SHA-256 digest of the tasks, which `load_pool` checks.
"""

import dataclasses
import functools
import hashlib
import json
import math
import os
import tempfile
import zipfile

import numpy as np

from tasks.priors import check_prior, numpy_tasks
from tasks.streams import numpy_rng

FORMAT = "icl-task-pool/1"


@dataclasses.dataclass(frozen=True)
class TaskPool:
    """A task pool and how it was drawn. Shapes: tasks (M, D) float32, or None when M = inf."""

    tasks: np.ndarray | None
    n_tasks: float  # an int, or math.inf
    n_dims: int
    seed: int
    task_scale: float
    task_prior: str = "gaussian"  # also that of M = inf's fresh tasks and of T_True

    @functools.cached_property
    def digest(self):
        """SHA-256 of the tasks, computed once (a run reads it for its tag, datasets, checks and registry)."""
        return pool_digest(self.tasks, self.n_dims)


def parse_n_tasks(value):
    """M from user input: a positive integer (1024, 1e3), or the literal inf for an unbounded pool."""
    text = str(value).strip().lower()
    if text == "inf" or value == math.inf:
        return math.inf
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"n_tasks must be a positive integer or inf, got {value!r}") from None
    if not math.isfinite(number) or not number.is_integer() or number < 1:
        raise ValueError(f"n_tasks must be a positive integer or inf, got {value!r}")
    return int(number)


@dataclasses.dataclass(frozen=True)
class PoolSettings:
    """How a pool is drawn: M (an int, or math.inf), D, the prior's scale and the seed (no defaults here)."""

    n_tasks: int | float
    n_dims: int
    task_scale: float
    task_prior: str
    pool_seed: int

    def __post_init__(self):
        _check_pool(self.n_tasks, self.n_dims, self.task_scale)
        check_prior(self.task_prior)


def make_pool(n_tasks, n_dims, *, seed, task_scale, task_prior="gaussian"):
    """Draw M tasks from the prior (N(0, task_scale^2 I_D), or Laplace of that variance) with the pool
    stream of `seed`; `n_tasks` is a positive int or math.inf (text is parsed once, at the boundary, by
    `parse_n_tasks`)."""
    _check_pool(n_tasks, n_dims, task_scale)
    check_prior(task_prior)
    tasks = None
    if n_tasks != math.inf:
        rng = numpy_rng(seed, "pool")
        draws = numpy_tasks(rng, (n_tasks, int(n_dims)), task_prior=task_prior, task_scale=task_scale)
        tasks = draws.astype(np.float32)
    return TaskPool(tasks, n_tasks, int(n_dims), int(seed), float(task_scale), task_prior)


def _check_pool(n_tasks, n_dims, task_scale):
    if n_tasks != math.inf and (isinstance(n_tasks, bool) or not isinstance(n_tasks, int) or n_tasks < 1):
        raise ValueError(f"n_tasks must be a positive integer or inf, got {n_tasks!r}")
    if isinstance(n_dims, bool) or int(n_dims) != n_dims or n_dims < 1:
        raise ValueError(f"n_dims must be a positive integer, got {n_dims!r}")
    if not math.isfinite(task_scale) or task_scale <= 0:
        raise ValueError(f"task_scale must be a positive finite number, got {task_scale!r}")


def pool_digest(tasks, n_dims):
    """SHA-256 of the pool's shape and float32 little-endian bytes (an empty pool when M = inf)."""
    data = np.zeros((0, n_dims), "<f4") if tasks is None else np.ascontiguousarray(tasks, "<f4")
    return hashlib.sha256(f"{data.shape}".encode() + data.tobytes()).hexdigest()


def save_pool(pool, path):
    """Write `pool` to `path` atomically: readers never see a half-written file."""
    header = {
        "format": FORMAT,
        "n_tasks": "inf" if pool.n_tasks == math.inf else pool.n_tasks,
        "n_dims": pool.n_dims,
        "shape": [0 if pool.tasks is None else len(pool.tasks), pool.n_dims],
        "seed": pool.seed,
        "task_scale": pool.task_scale,
        "task_prior": pool.task_prior,
        "sha256": pool.digest,
    }
    tasks = np.zeros((0, pool.n_dims), np.float32) if pool.tasks is None else pool.tasks
    folder = os.path.dirname(os.path.abspath(path))
    with tempfile.NamedTemporaryFile(dir=folder, suffix=".tmp", delete=False) as f:
        np.savez(f, tasks=tasks, header=np.array(json.dumps(header)))
    os.replace(f.name, path)


def load_pool(path):
    """Read a pool file, checking its format, shape and digest; a bad file raises ValueError."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"pool file {path!r} does not exist")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"pool file {path!r} is not a readable task pool (not an .npz archive)")
    try:
        with np.load(path, allow_pickle=False) as data:
            header = json.loads(str(data["header"]))
            tasks = data["tasks"]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, json.JSONDecodeError) as error:
        raise ValueError(f"pool file {path!r} is not a readable task pool ({error})") from None
    if header.get("format") != FORMAT:
        raise ValueError(f"pool file {path!r} has format {header.get('format')!r}, expected {FORMAT!r}")
    if list(tasks.shape) != header["shape"]:
        raise ValueError(f"pool file {path!r} holds shape {list(tasks.shape)} but records {header['shape']}")
    n_tasks = parse_n_tasks(header["n_tasks"])
    if len(tasks) != (0 if n_tasks == math.inf else n_tasks):
        raise ValueError(f"pool file {path!r} records n_tasks={header['n_tasks']} but holds {len(tasks)} tasks")
    pool = TaskPool(
        None if n_tasks == math.inf else tasks,
        n_tasks,
        header["n_dims"],
        header["seed"],
        header["task_scale"],
        header.get("task_prior", "gaussian"),  # files from before the Laplace prior
    )
    if pool.digest != header["sha256"]:
        raise ValueError(f"pool file {path!r} is corrupted: sha256 {pool.digest} != recorded {header['sha256']}")
    return pool
