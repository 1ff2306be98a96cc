"""Automatic prompt optimization after a regression (or a failure).

    problem = Problem(prompt=regressed, baseline=baseline, cases=cases,
                      requirements=[Requirement(checks.exact(), "at_least", 0.8)], model=model)
    result = optimize(problem, [DiffSearch(), ReflectiveRewrite(proposer_model), FewShot()],
                      budget=Budget(max_calls=3000))
    result.candidate, result.diff, result.test_scores, result.recovery, result.trajectory

Candidates come from proposers, race on training cases, replace the incumbent only when a
paired test on validation cases says they are better, and the winner is scored once on
held-out test cases.  See ``search`` for the loop, ``evaluate`` for the statistics,
``proposers`` for the proposers (and how to write one), ``split`` for the split, and
``simulate`` for a simulated task with a known optimum.  ``optimize_with_gepa`` runs GEPA
instead (``pip install 'llmops[gepa]'``) and scores its winner on the same held-out split.
"""

from llmops.optimize.backends import optimize_with_gepa
from llmops.optimize.evaluate import Comparison, Estimate, TestScore, recovery_estimate
from llmops.optimize.problem import Budget, Problem, Requirement, Score, Search
from llmops.optimize.proposers import (
    Context,
    DiffSearch,
    Example,
    Failure,
    FewShot,
    Hunk,
    Proposer,
    ReflectiveRewrite,
    TextDiff,
    escape_braces,
    parse_candidates,
    sentences,
    unified_diff,
    with_text,
)
from llmops.optimize.search import STOP_REASONS, OptimizationResult, Step, optimize, write_candidate
from llmops.optimize.split import Split, split_cases

__all__ = [
    "STOP_REASONS",
    "Budget",
    "Comparison",
    "Context",
    "DiffSearch",
    "Estimate",
    "Example",
    "Failure",
    "FewShot",
    "Hunk",
    "OptimizationResult",
    "Problem",
    "Proposer",
    "ReflectiveRewrite",
    "Requirement",
    "Score",
    "Search",
    "Split",
    "Step",
    "TestScore",
    "TextDiff",
    "escape_braces",
    "optimize",
    "optimize_with_gepa",
    "parse_candidates",
    "recovery_estimate",
    "sentences",
    "split_cases",
    "unified_diff",
    "with_text",
    "write_candidate",
]
