"""What a run read, as MLflow dataset inputs (the run's Overview lists them): the task pool and the eval sets."""

import hashlib

import mlflow
import numpy as np

from pipeline.types import pool_label


def pool_dataset(pool):
    """The pool as an `mlflow.data` dataset (M = inf: no tasks, an empty one), named after its size."""
    tasks = pool.tasks if pool.tasks is not None else np.zeros((0, pool.n_dims), np.float32)
    return mlflow.data.from_numpy(tasks, name=f"task-pool-{pool_label(pool.n_tasks)}", digest=pool.digest[:16])


def log_eval_datasets(run, eval_sets, label):
    """The eval sets ({dist: EvalSet}) as dataset inputs of `run` (context eval)."""
    for dist, eval_set in eval_sets.items():
        digest = hashlib.sha256()
        for array in (eval_set.xs, eval_set.ys):  # hashed in place: a paper-size set is GiBs
            digest.update(np.ascontiguousarray(array).data)
        dataset = mlflow.data.from_numpy(
            eval_set.xs, targets=eval_set.ys, name=f"eval-{dist}-{label}", digest=digest.hexdigest()[:16]
        )
        run.log_dataset(dataset, "eval")
