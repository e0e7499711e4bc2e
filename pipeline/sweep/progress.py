"""The progress of a sweep over its points: a live tqdm bar on a terminal, a line per finished point elsewhere
(a pipe, a log file, CI), as a training's progress is (models/progress.py)."""

import sys
import time

import click
from tqdm import tqdm

LINE_FORMAT = "{n}/{total} points done ({elapsed} elapsed, ETA {remaining})"


class SweepProgress:
    """`update(n)` after each finished point (n points done in all); `say(text)` prints a line without
    breaking the bar; `close()` ends it (idempotent). The ETA counts from the first call, so points reused
    from earlier sweeps, which finish at once, make it optimistic until trainings finish."""

    def __init__(self, total, label):
        self.total, self.label, self.start = total, label, time.monotonic()
        self.bar = None
        if sys.stdout.isatty():
            self.bar = tqdm(total=total, desc=label, unit="point", file=sys.stdout, dynamic_ncols=True)

    def update(self, done):
        if self.bar is not None:
            self.bar.update(done - self.bar.n)
            return
        meter = tqdm.format_meter(done, self.total, time.monotonic() - self.start, bar_format=LINE_FORMAT)
        click.echo(f"{self.label} {meter}")

    def say(self, text):
        (self.bar.write if self.bar is not None else click.echo)(text)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
