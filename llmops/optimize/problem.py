"""What the optimizer is asked to solve, and with what: Problem, Requirement, Budget, Search, Score.

A ``Problem`` is the prompt that regressed (or failed), the prompt it regressed from (if
any), the cases, the requirements of the test, and the model.  ``Budget`` bounds what the
search may spend; ``Search`` holds the knobs of the algorithm (with defaults that need no
tuning for a first run).  ``Score`` is a prompt measured on a set of (case, sample) units.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from llmops.cases import Case
from llmops.checks.base import Check, Outcome
from llmops.config import default_tolerance
from llmops.errors import ConfigError
from llmops.models import Model, resolve_model
from llmops.prompts import Prompt

#: Fewest cases per split: two train, two validation, two test (see llmops.optimize.split).
MIN_CASES = 6


@dataclass(frozen=True)
class Requirement:
    """One requirement of the test: ``check`` passes ``at_least`` (or fires ``at_most``) ``threshold``.

    ``tolerance`` is the gate's: the drop against the baseline that counts as a regression
    (None: the same default as ``run.expect``).  The optimizer uses it for non-inferiority.
    """

    check: Check
    direction: str = "at_least"
    threshold: float = 0.0
    tolerance: float | None = None

    def __post_init__(self) -> None:
        if self.direction not in ("at_least", "at_most"):
            raise ConfigError(f"requirement direction must be 'at_least' or 'at_most', got {self.direction!r}")
        if not 0 <= self.threshold <= 1:
            raise ConfigError(f"requirement threshold {self.threshold!r} is not a rate in [0, 1]")
        if self.tolerance is None:
            allowed = 1 - self.threshold if self.direction == "at_least" else self.threshold
            tol = default_tolerance(allowed)
            theta = 1 - allowed
            if 0 < theta < 1 and tol >= theta:
                tol = theta / 2  # as run.expect does at very low thresholds
            object.__setattr__(self, "tolerance", tol)
        elif not 0 < self.tolerance < 1:
            raise ConfigError(f"requirement tolerance {self.tolerance!r} must be in (0, 1)")

    @classmethod
    def of(cls, spec: Any) -> Requirement:
        """From anything with ``check``, ``direction``, ``threshold`` (and ``tolerance``),
        such as ``llmops.evaluation.Requirement``."""
        if isinstance(spec, Requirement):
            return spec
        return cls(spec.check, spec.direction, float(spec.threshold), getattr(spec, "tolerance", None))

    @property
    def tol(self) -> float:
        assert self.tolerance is not None  # set in __post_init__
        return self.tolerance

    @property
    def description(self) -> str:
        word = "at least" if self.direction == "at_least" else "at most"
        return f"{self.check.description} {word} {_pct(self.threshold)}"

    def good(self, outcome: Outcome) -> bool | None:
        """The sample on the pass scale: True is good for this requirement, None an error."""
        if outcome.status == "error":
            return None
        return outcome.passed if self.direction == "at_least" else not outcome.passed

    def rate(self, good: int, n: int) -> float:
        """The rate on the requirement's own scale: passes (at_least) or violations (at_most)."""
        if n == 0:
            return math.nan
        return good / n if self.direction == "at_least" else (n - good) / n

    def margin(self, rate: float) -> float:
        """How far the rate is on the good side of the threshold (negative: not met)."""
        if math.isnan(rate):
            return -1.0  # nothing judged: ranked below every measured rate
        return rate - self.threshold if self.direction == "at_least" else self.threshold - rate


def _pct(x: float) -> str:
    return f"{round(100 * x, 2):g}%"


@dataclass(frozen=True)
class Budget:
    """What one optimization may spend.  None: no limit of that kind.

    ``max_calls`` counts calls to the model under test, including the final scoring on the
    test split (reserved up front, so the search stops early enough to pay for it).
    ``max_seconds`` bounds the search; the final test scoring is not cut short by it.
    """

    max_calls: int | None = 3000
    max_proposer_calls: int | None = 10
    max_seconds: float | None = None

    def __post_init__(self) -> None:
        for name in ("max_calls", "max_proposer_calls"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
                raise ConfigError(f"Budget {name} must be a non-negative integer or None, got {v!r}")
        if self.max_seconds is not None and not self.max_seconds > 0:
            raise ConfigError(f"Budget max_seconds must be positive or None, got {self.max_seconds!r}")


@dataclass(frozen=True)
class Search:
    """The search's knobs.  The defaults suit a first run; the benchmark shows what they cost.

    Racing (``racing=True``) is successive halving on training units: every candidate of a
    round starts on the first ``first_units`` units (the training cases in a seeded order,
    round robin, so with more cases than that the first rung sees some of them only: it is a
    screen), the best 1/``eta`` go on with twice as many, up to ``train_passes`` samples per
    training case; the winner is always scored on all of them.  ``racing=False`` scores
    every candidate on all of them (full evaluation).

    Acceptance is the anytime-valid paired test of ``llmops.stats.paired`` on validation
    units, one-sided ("the candidate is better"), with ``alpha`` spent over the whole search:
    the i-th comparison gets alpha * 6 / (pi^2 i^2), so the chance that any accepted
    candidate is not better than the prompt it replaced (on the validation cases) is at most
    ``alpha``.  ``min_improvement`` is the improvement the test is designed to detect (it
    gives up on a candidate that is not that much better with chance ``beta``); a comparison
    still undecided after ``max_pairs`` pairs rejects the candidate.

    "Recovers" (``DiffSearch``'s test of a partial revert, on training cases, and the
    "recovered" stop, on validation cases) asks the gate's own question on fresh samples:
    the paired test of "not worse than the baseline" against "worse by the tolerance", both
    error rates ``check_error``, at most ``check_pairs`` pairs (undecided counts as no), after a
    free look at the training samples already drawn, which may only say no (their 95% paired
    interval below 0); the stop also needs every requirement's rate on the
    validation samples (``val_units`` or more) at its threshold.  These steer the search;
    the claims are the acceptance test's and the test split's.
    """

    k: int = 4
    max_rounds: int = 10
    patience: int = 3
    racing: bool = True
    eta: int = 3
    first_units: int = 10
    train_passes: int = 4
    alpha: float = 0.05
    min_improvement: float = 0.1
    beta: float = 0.2
    max_pairs: int = 200
    val_units: int = 60
    check_error: float = 0.1
    check_pairs: int = 400

    def __post_init__(self) -> None:
        names = ("k", "max_rounds", "patience", "first_units", "train_passes", "max_pairs", "val_units", "check_pairs")
        for name in names:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"Search {name} must be a positive integer, got {v!r}")
        if isinstance(self.eta, bool) or not isinstance(self.eta, int) or self.eta < 2:
            raise ConfigError(f"Search eta must be an integer >= 2, got {self.eta!r}")
        for name in ("alpha", "beta", "check_error"):
            v = getattr(self, name)
            if not 0 < v < 0.5:
                raise ConfigError(f"Search {name} must be in (0, 0.5), got {v!r}")
        if not 0 < self.min_improvement < 1:
            raise ConfigError(f"Search min_improvement must be in (0, 1), got {self.min_improvement!r}")

    def alpha_for(self, i: int) -> float:
        """The false-acceptance rate of the i-th comparison (1-based); they sum to ``alpha``."""
        return self.alpha * 6 / (math.pi**2 * i * i)


@dataclass(frozen=True)
class Problem:
    """A prompt to repair: the regressed ``prompt``, its ``baseline`` (or None), cases,
    requirements and the model under test.

    ``test_units`` samples (rounded up to whole passes over the test cases) score the
    winner, the regressed prompt and the baseline once at the end.  ``cache`` and
    ``cache_path`` go to ``llmops.sampling.Sampler`` (the on-disk response cache).
    """

    prompt: Prompt
    cases: Sequence[Case]
    requirements: Sequence[Requirement]
    model: Any
    baseline: Prompt | None = None
    seed: int = 0
    concurrency: int = 4
    test_units: int = 60
    timeout: float = 60.0
    retries: int = 3
    cache: Any = None
    cache_path: str | None = None
    model_under_test: Model = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "cases", tuple(self.cases))
        object.__setattr__(self, "requirements", tuple(Requirement.of(r) for r in self.requirements))
        object.__setattr__(self, "model_under_test", resolve_model(self.model))
        if not self.requirements:
            raise ConfigError("an optimization Problem needs at least one Requirement (the test's expect calls)")
        if len(self.cases) < MIN_CASES:
            raise ConfigError(
                f"optimizing prompt {self.prompt.name!r} needs at least {MIN_CASES} cases (two each for training, "
                f"validation and a held-out test), got {len(self.cases)}; add cases"
            )
        seen: dict[str, str] = {}
        for c in self.cases:
            if c.key in seen:
                raise ConfigError(f"cases {seen[c.key]!r} and {c.id!r} have the same inputs and expected answer")
            seen[c.key] = c.id
            for p in (self.prompt, self.baseline):
                if p is None:
                    continue
                missing = [v for v in p.variables if v not in c.inputs]
                if missing:
                    raise ConfigError(
                        f"prompt {p.name!r}@{p.version} needs variable {missing[0]!r}, which case {c.id!r} does not supply"
                    )
        if self.baseline is not None and self.baseline.name != self.prompt.name:
            raise ConfigError(
                f"baseline {self.baseline.name!r} and prompt {self.prompt.name!r} must be versions of one prompt"
            )
        if self.concurrency < 1 or self.test_units < 1:
            raise ConfigError("Problem concurrency and test_units must be positive")

    @classmethod
    def from_run(
        cls, run: Any, requirements: Sequence[Any], *, baseline: Prompt | None = None, **overrides: Any
    ) -> Problem:
        """The problem a ``llmops.evaluation.Run`` poses: its prompt, cases and model, with its
        settings' seed, concurrency, timeout, retries and response cache.

        ``requirements``: the run's requirements (``llmops.evaluation.Requirement`` or
        ``Requirement``); ``overrides``: any other Problem field (``test_units``, ...).
        """
        s = run.settings
        fields: dict[str, Any] = {
            "seed": s.seed,
            "concurrency": s.concurrency,
            "timeout": s.timeout,
            "retries": s.retries,
            "cache": getattr(s, "cache", None),
            "cache_path": getattr(s, "cache_path", None),
        }
        fields.update(overrides)
        return cls(
            prompt=run.prompt,
            cases=run.cases,
            requirements=[Requirement.of(r) for r in requirements],
            model=run.model,
            baseline=baseline,
            **fields,
        )


@dataclass(frozen=True)
class Score:
    """A prompt on a set of (case, sample) units, per requirement and jointly.

    ``good[i]`` / ``judged[i]``: samples on the pass scale for requirement i (errors left out).
    ``joint``: the share of samples good on every requirement, among samples without errors.
    """

    good: tuple[int, ...]
    judged: tuple[int, ...]
    joint_good: int
    joint_n: int
    units: int
    errors: int
    rates: tuple[float, ...]  # on each requirement's own scale
    margins: tuple[float, ...]

    @property
    def joint(self) -> float:
        return self.joint_good / self.joint_n if self.joint_n else math.nan

    @property
    def met(self) -> int:
        return sum(m >= 0 for m in self.margins)

    @property
    def meets_all(self) -> bool:
        return all(m >= 0 for m in self.margins)

    def pass_rate(self, i: int) -> float:
        """Requirement i on the pass scale (good samples), for comparisons across directions."""
        return self.good[i] / self.judged[i] if self.judged[i] else math.nan

    @property
    def key(self) -> tuple[int, float, float]:
        """Ranking: requirements met, then the smallest margin, then the joint rate."""
        joint = self.joint
        return (self.met, min(self.margins), -1.0 if math.isnan(joint) else joint)
