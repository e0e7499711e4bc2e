"""Claims as code: a figure's claim of the paper and the numeric criteria that decide it at CPU scale, written
before its sweep runs, and the verdict from the sweep's runs (`make figures` writes them to
docs/figures/claims.json).

Each criterion measures one number with its 95% interval and decides:
- `Paired`: a quantity computed within each replicate of the sweep (from that replicate's summary rows:
  both sides of a comparison come from the same trainings), which the claim says is below 0; its mean
  over the replicates with Student's t interval. Holds when the whole interval is below 0, does not hold
  when it is all above, inconclusive otherwise (and with fewer than 2 replicates).
- `Within`: a `Paired` quantity that the claim says is about 0 (two things match): holds when the whole
  interval is inside +-margin, does not hold when it is all outside on one side.
- `Ordered`: two groups' thresholds M* (the sweep's summary, with their bootstrap intervals over the
  replicates: pipeline/stats.py; one-sided when a threshold lies beyond the grid), which the claim says
  are in an order. Holds when the intervals are apart in that order, does not hold when apart in the
  other, inconclusive when they overlap or one has no interval.
A claim holds when every criterion holds, does not hold when one does not, and is inconclusive otherwise.
"""

import dataclasses
import math
import time
from collections.abc import Callable

from pipeline.presets import REPLICATE
from pipeline.stats import t_interval
from pipeline.sweep.summary import data_seen, thresholds

HOLDS, FAILS, OPEN = "holds", "does not hold", "inconclusive"


@dataclasses.dataclass(frozen=True)
class Paired:
    """`quantity(rows, axes)` of one replicate's summary rows, below 0 when the claim holds."""

    text: str
    quantity: Callable

    def measure(self, rows, axes):
        values = [self.quantity(members, axes) for members in replicates(rows)]
        finite = [v for v in values if math.isfinite(v)]
        mean, low, high = t_interval(finite) if len(finite) == len(values) else (math.nan,) * 3
        verdict = OPEN if not math.isfinite(low) else HOLDS if high < 0 else FAILS if low > 0 else OPEN
        return {"value": mean, "low": low, "high": high, "replicates": len(values), "verdict": verdict}


@dataclasses.dataclass(frozen=True)
class Within(Paired):
    """`quantity` of one replicate's rows within +-`margin` when the claim (that two things match) holds:
    holds when the whole interval is inside, does not hold when it is all outside on one side."""

    margin: float = 0.05

    def measure(self, rows, axes):
        found = super().measure(rows, axes)
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

    def measure(self, rows, axes):
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
    figure: str  # the gallery entry's name (pipeline/gallery.py)
    claim: str  # the paper's claim, in words
    criteria: tuple

    def evaluate(self, rows, axes):
        """{figure, claim, criteria: [{criterion, value, interval..., verdict}], verdict} from a sweep's summary
        `rows` (one per training) over `axes`."""
        measured = [{"criterion": c.text} | c.measure(rows, axes) for c in self.criteria]
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


def at(rows, key, pick, scale=max):
    """`key` at the finite M that `pick` (min, max) chooses among one replicate's `rows`, on the data scale
    that `scale` chooses there (max: the longest-trained curve). The rows may differ on no other axis."""
    finite = [r for r in rows if math.isfinite(r["log2_n_tasks"])]
    chosen = [r for r in finite if r["log2_n_tasks"] == pick(r["log2_n_tasks"] for r in finite)]
    if len({data_seen(r) for r in chosen}) < len(chosen):
        raise ValueError("the claim reads one curve per data scale; the sweep has other axes too")
    return scale(chosen, key=data_seen)[key]


def _more_data_nearer_dmmse_at_smallest_m(rows, axes):
    return at(rows, "true/delta_pt_ridge", min, min) - at(rows, "true/delta_pt_ridge", min, max)


def _more_data_nearer_ridge_at_largest_m(rows, axes):
    return at(rows, "true/delta_pt_ridge", max, max) - at(rows, "true/delta_pt_ridge", max, min)


def _pt_on_dmmse_at_smallest_m(rows, axes):
    return at(rows, "pretrain/delta_pt_dmmse", min) - at(rows, "pretrain/delta_pt_ridge", min) / 10


def _pt_nearer_ridge_at_largest_m(rows, axes):
    return at(rows, "true/delta_pt_ridge", max) - at(rows, "true/delta_pt_dmmse", max)


def _largest_m_against_inf(rows, axes):
    """The transformer's T_True loss/D at the largest finite M relative to its loss at M = inf, minus 1."""
    infinite = max((r for r in rows if r["log2_n_tasks"] == math.inf), key=data_seen)
    return at(rows, "true/pt/loss_noiseless", max) / infinite["true/pt/loss_noiseless"] - 1


CLAIMS = [
    Claim(
        "fig2_sweep",
        "Below the threshold the transformer behaves like dMMSE; above it, like ridge (Fig. 2).",
        (
            Paired("at the smallest M, Delta^Pre_PT,dMMSE < Delta^Pre_PT,Ridge / 10", _pt_on_dmmse_at_smallest_m),
            Paired("at the largest finite M, Delta^True_PT,Ridge < Delta^True_PT,dMMSE", _pt_nearer_ridge_at_largest_m),
        ),
    ),
    Claim(
        "fig3_data_scale",
        "More training data (here: steps; in the paper steps or batch alike) pulls the transformer towards dMMSE "
        "below the threshold and towards ridge above it, so the two data scales' Delta^True_PT,Ridge curves "
        "cross at M* (Fig. 3).",
        (
            Paired(
                "at the smallest M, the larger data scale's Delta^True_PT,Ridge > the smaller's",
                _more_data_nearer_dmmse_at_smallest_m,
            ),
            Paired(
                "at the largest finite M, the larger data scale's Delta^True_PT,Ridge < the smaller's",
                _more_data_nearer_ridge_at_largest_m,
            ),
        ),
    ),
    Claim(
        "fig6_dimension",
        "The threshold grows with the task dimension D (Fig. 6).",
        (Ordered("M* at the smallest D is below M* at the largest D", "n_dims", min, max),),
    ),
    Claim(
        "fig10_final_accuracy",
        "Above the threshold the transformer ends as accurate on fresh tasks as the one trained on infinitely "
        "many tasks (Fig. 10).",
        (
            Within(
                "at the largest finite M (above M*), T_True loss/D within 5% of the M = inf transformer's",
                _largest_m_against_inf,
                0.05,
            ),
        ),
    ),
    Claim(
        "fig7_weight_decay",
        "More weight decay, lower threshold (Fig. 7, left).",
        (Ordered("M* at the largest weight decay is below M* at none", "weight_decay", max, min),),
    ),
]
CLAIMS = {claim.figure: claim for claim in CLAIMS}
