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
  replicates: pipeline/stats.py), which the claim says are in an order. Holds when the intervals are
  apart in that order, does not hold when apart in the other, inconclusive when they overlap.
- `Inside`: a group's threshold, which the claim says lies inside the grid. Holds when its interval does;
  does not hold when at most 2.5% of the redraws of the replicates' means cross at all; inconclusive
  otherwise.
A claim holds when every criterion holds, does not hold when one does not, and is inconclusive otherwise.
"""

import dataclasses
import math
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
        found = {dict(t.group)[self.axis]: t for t in thresholds(rows, axes)}
        a, b = found[self.first(sorted(found))], found[self.second(sorted(found))]
        verdict = OPEN
        if math.isfinite(a.high) and math.isfinite(b.low):
            verdict = HOLDS if a.high < b.low else FAILS if a.low > b.high else OPEN
        difference = a.log2_m - b.log2_m
        return {"value": difference, "first": _threshold(a), "second": _threshold(b), "verdict": verdict}


@dataclasses.dataclass(frozen=True)
class Inside:
    """The sweep's threshold (its only group) inside the grid of finite M."""

    text: str

    def measure(self, rows, axes):
        [threshold] = thresholds(rows, axes)
        finite = [r["log2_n_tasks"] for r in rows if math.isfinite(r["log2_n_tasks"])]
        verdict = FAILS if threshold.share <= 0.025 else OPEN  # nan (one replicate) is neither
        if math.isfinite(threshold.low) and min(finite) < threshold.low and threshold.high < max(finite):
            verdict = HOLDS
        return _threshold(threshold) | {"verdict": verdict}


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
        return {"figure": self.figure, "claim": self.claim, "criteria": measured, "verdict": verdict}


def replicates(rows):
    """The summary rows grouped by replicate (all of them, for a sweep without replicates)."""
    found = {}
    for row in rows:
        found.setdefault(row.get(REPLICATE, 0), []).append(row)
    return list(found.values())


def _threshold(threshold):
    keys = ("log2_m", "low", "high", "share", "finding")
    return {key: getattr(threshold, key) for key in keys}


def at(rows, key, pick):
    """`key` at the finite M that `pick` (min, max) chooses among one replicate's `rows`, on the largest data
    scale there (the longest-trained curve); the rows must not differ on any other axis."""
    finite = [r for r in rows if math.isfinite(r["log2_n_tasks"])]
    chosen = pick(r["log2_n_tasks"] for r in finite)
    return max((r for r in finite if r["log2_n_tasks"] == chosen), key=data_seen)[key]


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
        "Training on more data moves the transition: the Delta^True_PT,Ridge curves of two data scales cross at "
        "a threshold M* inside the grid (Fig. 3).",
        (Inside("the crossing of the two data scales' Delta^True_PT,Ridge curves lies inside the grid of finite M"),),
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
