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
A criterion reads the sweep's summary or, where it names one (`table`), a table its figure's analysis logged
(pipeline/analysis/): each replicate's quantity then sees that table's rows of the replicate's own train runs.
A claim holds when every criterion holds, does not hold when one does not, and is inconclusive otherwise.
Thresholds named in a criterion ("the M nearest M*") are the sweep's, from the mean curves over replicates.
"""

from pipeline.claims.criteria import FAILS, HOLDS, OPEN, Claim, Ordered, Paired, Within
from pipeline.claims.paper import CLAIMS

__all__ = ["CLAIMS", "FAILS", "HOLDS", "OPEN", "Claim", "Ordered", "Paired", "Within"]
