"""Statistics for the gate: intervals, the exact sequential test, the paired test, planning."""

from llmops.stats.intervals import clopper_pearson, clopper_pearson_lower, clopper_pearson_upper, wilson
from llmops.stats.planning import fixed_n, zero_failure_n
from llmops.stats.sequential import FAIL, PASS, Operating, SequentialDesign, sequential_design

__all__ = [
    "FAIL",
    "PASS",
    "Operating",
    "SequentialDesign",
    "clopper_pearson",
    "clopper_pearson_lower",
    "clopper_pearson_upper",
    "fixed_n",
    "sequential_design",
    "wilson",
    "zero_failure_n",
]
