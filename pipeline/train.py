"""Entry point: pretrain the transformer on a task pool, evaluating along the way, and register it.

What a training is (its parts, its run, its registration) is pipeline/training.py; this checks the
options against the machine's limits and runs it.
"""

import click

from pipeline.bounds import check_steps, check_training, check_work, training_flops
from pipeline.cli import EntryCommand, entry_point, options
from pipeline.devices import cores_per_rank, device_of
from pipeline.settings import TrainSettings, build, machine_cores, option_names
from pipeline.training import train


@click.command(
    cls=EntryCommand,
    help="Pretrain the in-context regression transformer on a task pool (paper Sec. 2) and register it.",
)
@options(*option_names(TrainSettings), "checkpoint_every", "resume", "compile", "max_steps", "max_work")
@entry_point
def main(tracking, checkpoint_every, resume, compile, max_steps, max_work, **params):
    settings = build(TrainSettings, params | {"threads": params["threads"] or cores_per_rank(machine_cores())})
    check_steps(settings, max_steps, checkpoint_every)
    device = device_of(settings.device)
    check_training(settings, device)  # memory first: the more telling message for a typo in n_points
    check_work(training_flops(settings), "this training", device, max_work)
    train(tracking, settings, checkpoint_every=checkpoint_every, resume=resume, compile=compile)


if __name__ == "__main__":
    main()
