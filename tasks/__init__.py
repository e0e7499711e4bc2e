"""What the data is: task pools, seeded training batches, fixed evaluation sets."""

from tasks.evalsets import EvalSet, EvalSettings, make_eval_set
from tasks.pool import PoolSettings, TaskPool, load_pool, make_pool, parse_n_tasks, pool_digest, save_pool
from tasks.sampling import DataSettings, sample_batch
from tasks.streams import STREAMS, stream_seed

__all__ = [
    "STREAMS",
    "DataSettings",
    "EvalSet",
    "EvalSettings",
    "PoolSettings",
    "TaskPool",
    "load_pool",
    "make_eval_set",
    "make_pool",
    "parse_n_tasks",
    "pool_digest",
    "sample_batch",
    "save_pool",
    "stream_seed",
]
