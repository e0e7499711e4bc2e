"""What the data is: task pools, seeded training batches, fixed evaluation sets."""

from tasks.evalsets import EvalSet, EvalSettings, make_eval_set
from tasks.paths import interpolation_path, path_sequences
from tasks.pool import PoolSettings, TaskPool, load_pool, make_pool, parse_n_tasks, pool_digest, save_pool
from tasks.priors import PRIORS
from tasks.sampling import DataSettings, batch_stream, sample_batch
from tasks.streams import STREAMS, stream_seed

__all__ = [
    "PRIORS",
    "STREAMS",
    "DataSettings",
    "EvalSet",
    "EvalSettings",
    "PoolSettings",
    "TaskPool",
    "batch_stream",
    "load_pool",
    "interpolation_path",
    "make_eval_set",
    "make_pool",
    "parse_n_tasks",
    "path_sequences",
    "pool_digest",
    "sample_batch",
    "save_pool",
    "stream_seed",
]
