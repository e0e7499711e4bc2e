"""The criteria that decide a claim (pipeline/claims/__init__.py says how) and the claim that groups them."""

import dataclasses
import functools
import math
import time
from collections.abc import Callable
from typing import NamedTuple

from pipeline.presets import REPLICATE
from pipeline.stats import t_interval
from pipeline.sweep.summary import thresholds

HOLDS, FAILS, OPEN = "holds", "does not hold", "inconclusive"


class Context(NamedTuple):
    """What a replicate's quantity may read besides its own summary rows: the sweep's axes, `threshold()` (the
    sweep's M*, computed once for all replicates: sweep_threshold) and the replicate's rows of the analysis
    table the criterion names (None: it names none)."""

    axes: list
    threshold: Callable
    table: list | None


def sweep_threshold(rows, axes):
    """The sweep's M* (2^log2 M*, from its mean curves; nan where the grid shows no crossing): one group only."""
    found = thresholds(rows, axes)
    if len(found) != 1:
        raise ValueError("the claim reads one threshold; the sweep has other axes too")
    return 2 ** found[0].log2_m


@dataclasses.dataclass(frozen=True)
class Paired:
    """`quantity(rows, context)` of one replicate's summary rows (and `context`: Context), below 0 when the
    claim holds; `table`: the artifact path of the analysis table it reads, if any."""

    text: str
    quantity: Callable
    table: str | None = dataclasses.field(default=None, kw_only=True)

    def measure(self, rows, axes, tables=None):
        if self.table is not None and self.table not in (tables or {}):
            raise ValueError(f"the criterion {self.text!r} reads the analysis table {self.table}, not given")
        values, threshold = [], functools.cache(lambda: sweep_threshold(rows, axes))
        for members in replicates(rows):
            own = None
            if self.table is not None:
                runs = {row["train_run"] for row in members}
                own = [row for row in tables[self.table] if row["train_run"] in runs]
            values.append(self.quantity(members, Context(axes, threshold, own)))
        finite = [v for v in values if math.isfinite(v)]
        mean, low, high = t_interval(finite) if len(finite) == len(values) else (math.nan,) * 3
        verdict = OPEN if not math.isfinite(low) else HOLDS if high < 0 else FAILS if low > 0 else OPEN
        return {"value": mean, "low": low, "high": high, "replicates": len(values), "verdict": verdict}


@dataclasses.dataclass(frozen=True)
class Within(Paired):
    """`quantity` of one replicate's rows within +-`margin` when the claim (that two things match) holds:
    holds when the whole interval is inside, does not hold when it is all outside on one side."""

    margin: float = dataclasses.field(default=0.05, kw_only=True)

    def measure(self, rows, axes, tables=None):
        found = super().measure(rows, axes, tables)
        low, high, m = found["low"], found["high"], self.margin
        verdict = OPEN
        if math.isfinite(low):
            verdict = HOLDS if -m < low and high < m else FAILS if low > m or high < -m else OPEN
        return found | {"margin": m, "verdict": verdict}


@dataclasses.dataclass(frozen=True)
class Ordered:
    """The thresholds of two groups ({axis: value} each, by `pick(values)` of the axis' values): the
    first's below the second's when the claim holds."""

    text: str
    axis: str
    first: Callable
    second: Callable

    def measure(self, rows, axes, tables=None):
        found = {}
        for threshold in thresholds(rows, axes):
            found.setdefault(dict(threshold.group)[self.axis], []).append(threshold)
        if any(len(group) > 1 for group in found.values()):
            raise ValueError(f"the claim compares one threshold per {self.axis}; the sweep has other axes too")
        [a], [b] = found[self.first(sorted(found))], found[self.second(sorted(found))]
        verdict = OPEN  # an interval may be one-sided (a threshold beyond the grid: summary.threshold)
        if not any(math.isnan(v) for v in (a.low, a.high, b.low, b.high)):
            verdict = HOLDS if a.high < b.low else FAILS if a.low > b.high else OPEN
        difference = a.log2_m - b.log2_m
        return {"value": difference, "first": _threshold(a), "second": _threshold(b), "verdict": verdict}


@dataclasses.dataclass(frozen=True)
class Claim:
    figure: str  # the paper's figure: the gallery entry's name (pipeline/gallery.py) unless `entry` says
    claim: str  # the paper's claim, in words
    criteria: tuple
    entry: str | None = None  # the gallery entry whose sweep and analysis decide it (None: `figure`)

    @property
    def tables(self):
        """The analysis tables its criteria read (artifact paths of the entry's analysis run)."""
        return sorted({c.table for c in self.criteria if getattr(c, "table", None)})

    def evaluate(self, rows, axes, tables=None):
        """{figure, claim, criteria: [{criterion, value, interval..., verdict}], verdict} from a sweep's summary
        `rows` (one per training) over `axes` and the analysis `tables` ({artifact path: rows}) it reads."""
        measured = [{"criterion": c.text} | c.measure(rows, axes, tables) for c in self.criteria]
        verdicts = {m["verdict"] for m in measured}
        verdict = FAILS if FAILS in verdicts else HOLDS if verdicts == {HOLDS} else OPEN
        made = time.strftime("%Y-%m-%d %H:%M")
        return {"figure": self.figure, "claim": self.claim, "criteria": measured, "verdict": verdict, "made": made}


def replicates(rows):
    """The summary rows grouped by replicate (all of them, for a sweep without replicates)."""
    found = {}
    for row in rows:
        found.setdefault(row.get(REPLICATE, 0), []).append(row)
    return list(found.values())


def _threshold(threshold):
    keys = ("log2_m", "low", "high", "share", "finding")
    return {key: getattr(threshold, key) for key in keys}
