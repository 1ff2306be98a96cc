"""Dataset-level gate: the case is the unit, not the sample (Miller 2024, "Adding Error Bars to Evals").

Population: the verdict speaks about *inputs like these cases*: the cases are taken as a
sample from the inputs the prompt will meet, so the variance is the between-case variance
of per-case pass rates (which already holds the within-case sampling noise), i.e. the
clustered standard error s / sqrt(C).  More samples per case shrink only the within-case
part; only more cases shrink the rest, and the gate says so when the cases are too few.

Samples are drawn in rounds (one sample per case per round).  At looks after rounds
1, 2, 4, 8, ... and the last round, the gate computes one-sided Student-t bounds on the
mean per-case rate, each look spending alpha / L and beta / L (Bonferroni over the L looks):

- FAIL when the upper bound is below theta (false alarm <= alpha),
- PASS when the lower bound is above theta - delta (miss <= beta),
- at the last look, if neither holds, the cases are too few for the requested error
  rates: the observed mean decides against the midpoint theta - delta / 2 (as the
  sequential test's cap does), and the result is marked inconclusive, with neither
  error rate guaranteed and the number of cases that would be needed.

Two pseudo-cases (one at rate 0, one at rate 1) are added to the variance estimate, like
the Agresti-Coull "plus four": with all cases perfect the sample variance is 0, and a
bound without it would claim certainty from twenty cases.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from scipy.stats import t as _t

from llmops.stats.planning import fixed_n
from llmops.stats.sequential import CAP_FACTOR, FAIL, PASS, validate

#: Default cap on samples per case.  The variance of a case mean is between-case variance
#: plus within-case variance / K; by K = 10 the second part is at most 0.025 and more
#: samples per case barely move the bound: only more cases do.
MAX_ROUNDS = 10


def _adjusted(rates: Sequence[float]) -> tuple[float, float, int]:
    """Mean, standard error and degrees of freedom with the two pseudo-cases."""
    xs = [*rates, 0.0, 1.0]
    c = len(xs)
    mean = sum(xs) / c
    var = sum((x - mean) ** 2 for x in xs) / (c - 1)
    return mean, math.sqrt(var / c), c - 1


def mean_bounds(rates: Sequence[float], alpha_low: float, alpha_high: float) -> tuple[float, float]:
    """One-sided lower bound at level alpha_low and upper bound at alpha_high, centred on the plain mean."""
    if not rates:
        return (0.0, 1.0)
    plain = sum(rates) / len(rates)
    _, se, df = _adjusted(rates)
    lo = plain - float(_t.ppf(1 - alpha_low, df)) * se
    hi = plain + float(_t.ppf(1 - alpha_high, df)) * se
    return (max(0.0, lo), min(1.0, hi))


def clustered_interval(rates: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Two-sided display interval for the mean per-case rate."""
    a = (1 - confidence) / 2
    return mean_bounds(rates, a, a)


@dataclass(frozen=True)
class ClusteredDesign:
    theta: float
    delta: float
    alpha: float
    beta: float
    n_cases: int
    max_rounds: int
    looks: tuple[int, ...]

    @property
    def max_calls(self) -> int:
        return self.max_rounds * self.n_cases

    def decide(self, rates: Sequence[float], rounds: int, any_failure: bool) -> tuple[str | None, bool]:
        """(verdict or None to continue, conclusive) at a look after ``rounds`` rounds."""
        if self.theta >= 1.0 and any_failure:
            return FAIL, True  # one failure rules out rate 1, with no false alarm
        L = len(self.looks)
        lo, hi = mean_bounds(rates, self.beta / L, self.alpha / L)
        if hi < self.theta:
            return FAIL, True
        if lo > self.theta - self.delta:
            return PASS, True
        if rounds >= self.max_rounds:
            mean = sum(rates) / len(rates) if rates else 0.0
            return (PASS if mean >= self.theta - self.delta / 2 else FAIL), False
        return None, False


@lru_cache(maxsize=256)
def clustered_design(
    theta: float, delta: float, alpha: float, beta: float, n_cases: int, max_samples: int | None = None
) -> ClusteredDesign:
    validate(theta, delta, alpha, beta)
    if max_samples is None:
        max_samples = math.ceil(CAP_FACTOR * fixed_n(theta, delta, alpha, beta)[0])
        max_rounds = max(1, min(MAX_ROUNDS, math.ceil(max_samples / n_cases)))
    else:
        max_rounds = max(1, math.ceil(max_samples / n_cases))
    looks = []
    r = 1
    while r < max_rounds:
        looks.append(r)
        r *= 2
    looks.append(max_rounds)
    return ClusteredDesign(theta, delta, alpha, beta, n_cases, max_rounds, tuple(looks))


def cases_needed(theta: float, delta: float, alpha: float, beta: float, spread: float = 0.5) -> int:
    """Rough number of cases for a conclusive verdict when per-case rates have sd ``spread``.

    Normal approximation: C >= ((z_a + z_b) * sd / delta)^2.
    """
    from scipy.stats import norm

    z = float(norm.ppf(1 - alpha) + norm.ppf(1 - beta))
    return math.ceil((z * spread / delta) ** 2)
