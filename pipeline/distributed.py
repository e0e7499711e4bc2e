"""Data parallelism for one training under torchrun: `torchrun --standalone --nproc_per_node=N -m
pipeline.train ...` trains one model on N ranks (DDP: gloo on CPU, NCCL on CUDA, one GPU per rank).

Every rank draws the step's whole batch, the same function of (seed, step) as a single process, and
trains on its 1/N share of the rows, so the ranks together take the global batch's gradient (to float32
round-off: the sum over ranks is in another order). Rank 0 is the training of `pipeline.train`: it opens
the run, resumes it, evaluates, writes checkpoints, logs and registers; the other ranks only compute
(`follow`), starting from the state rank 0 sends them. A checkpoint holds the one model and its optimiser,
so it resumes under any N, one included. Outside torchrun (WORLD_SIZE unset) nothing here applies.
"""

import contextlib
import dataclasses
import datetime
import os
import tempfile

import torch

import models
from models import Checkpointing, LoopState, TrainingDiverged
from pipeline.devices import rank, world_size
from pipeline.types import InputError

# The longest the other ranks wait for rank 0 in one collective: while it opens the run (computing the
# estimators when no `baselines` run is given: hours for dMMSE at the paper's M = 2^20 and n_eval) and
# while it evaluates.
TIMEOUT = datetime.timedelta(hours=6)


@dataclasses.dataclass(frozen=True)
class Rank:
    """This process's place in the group: `index` of `size` ranks, on `device`."""

    index: int
    size: int
    device: torch.device

    def share(self, batches, batch_size):
        """`batches(step) -> (xs, ys)` cut to this rank's rows of each batch."""
        if self.size == 1:
            return batches
        rows = slice(self.index * batch_size // self.size, (self.index + 1) * batch_size // self.size)

        def shared(step):
            xs, ys = batches(step)
            return xs[rows], ys[rows]

        return shared

    @property
    def strategy(self):
        """How models.train shares the work among the ranks: alone, or data parallel."""
        return models.DataParallel() if self.size > 1 else models.ALONE

    def lead(self, training):
        """Rank 0 of an opened pipeline.training Training: its run tagged `data_parallel` (a run resumed on
        another rank count says from which step), its optimiser state and start sent to the other ranks;
        returns its start (LoopState or None)."""
        start, run = training.start, training.run
        batch = training.settings.data.batch_size
        now = f"{self.size} ranks, {batch // self.size} of each batch of {batch}" if self.size > 1 else "1 process"
        before = run.client.get_run(run.id).data.tags.get("data_parallel") if start is not None else None
        if before is not None and not before.endswith(now):
            run.set_tag("data_parallel", f"{before}; from step {start.step}: {now}")
        elif self.size > 1 and before is None:
            run.set_tag("data_parallel", now if start is None else f"from step {start.step}: {now}")
        return self.broadcast_start(training.optimizer, start)

    def broadcast_start(self, optimizer, start):
        """Rank 0's optimiser state and LoopState `start`, given to every rank (as CPU tensors: each rank
        moves them to its own device); returns the LoopState. The weights need no sending: wrapping the
        model in DistributedDataParallel (models.train) copies rank 0's to every rank."""
        if self.size == 1:
            return start
        state = [None]
        if self.index == 0:
            loss = None if start is None or start.loss_sum is None else start.loss_sum.cpu()
            loop = None if start is None else (start.step, loss, start.loss_count)
            state = [(_on_cpu(optimizer.state_dict()), loop)]
        torch.distributed.broadcast_object_list(
            state, src=0, device=self.device if self.device.type == "cuda" else None
        )
        moments, loop = state[0]
        if self.index > 0:
            optimizer.load_state_dict(moments)  # moved to the parameters' device
        if loop is None:
            return None
        step, loss, count = loop
        return LoopState(step, None if loss is None else loss.to(self.device), count)


def _on_cpu(value):
    """A state dict with every tensor copied to the CPU (nested dicts and lists followed)."""
    if isinstance(value, torch.Tensor):
        return value.cpu()
    if isinstance(value, dict):
        return {key: _on_cpu(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_on_cpu(item) for item in value)
    return value


@contextlib.contextmanager
def ranks(settings, device):
    """The Rank of this process for TrainSettings `settings` on `device`: under torchrun, with the process
    group initialised (gloo on CPU, NCCL on CUDA: cuda:LOCAL_RANK) until the block ends; else rank 0 of 1."""
    size = world_size()
    if size == 1:
        yield Rank(0, 1, device)
        return
    batch = settings.data.batch_size
    if batch % size:
        raise InputError(f"batch_size={batch} does not split evenly over {size} ranks (torchrun --nproc_per_node)")
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=TIMEOUT)
    try:
        yield Rank(rank(), size, device)
    finally:
        torch.distributed.destroy_process_group()


def follow(settings, rank, model, optimizer, batches, checkpoint_every, stop, compile):
    """Rank `rank` (> 0) of a data-parallel training of TrainSettings `settings`: `model` and `optimizer`
    built as rank 0 builds them (pipeline/training.py), given rank 0's optimiser state and start (its
    weights come with DDP), trained on this rank's share of every batch of `batches`. It logs, evaluates and
    writes nothing: rank 0 does."""
    start = rank.broadcast_start(optimizer, None)
    with tempfile.TemporaryDirectory() as folder:
        try:
            models.train(
                model,
                optimizer,
                settings.optim,
                batches=rank.share(batches, settings.data.batch_size),
                evaluate=lambda model: {},
                eval_every=settings.eval_every,
                eval_per_decade=settings.eval_per_decade,
                checkpointing=Checkpointing(folder, {}, checkpoint_every or settings.eval_every),
                start=start,
                should_stop=stop,
                compile=compile,
                strategy=rank.strategy,
            )
        except TrainingDiverged:  # rank 0 says so in one line, and ends the run
            raise SystemExit(1) from None
