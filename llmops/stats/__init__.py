"""Statistics for the gate: intervals, the sequential test, the clustered test, planning."""

from llmops.stats.clustered import ClusteredDesign, clustered_design, clustered_interval, mean_bounds
from llmops.stats.intervals import clopper_pearson, clopper_pearson_lower, clopper_pearson_upper, wilson
from llmops.stats.planning import fixed_n, zero_failure_n
from llmops.stats.sequential import FAIL, PASS, Operating, SequentialDesign, sequential_design

__all__ = [
    "FAIL",
    "PASS",
    "ClusteredDesign",
    "Operating",
    "SequentialDesign",
    "clopper_pearson",
    "clopper_pearson_lower",
    "clopper_pearson_upper",
    "clustered_design",
    "clustered_interval",
    "fixed_n",
    "mean_bounds",
    "sequential_design",
    "wilson",
    "zero_failure_n",
]
