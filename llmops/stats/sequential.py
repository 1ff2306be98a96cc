"""Truncated sequential probability ratio test (SPRT) for "pass rate >= theta".

Hypotheses: good, p = theta; bad, p = theta - delta.  After n samples with k passes
the log likelihood ratio (bad vs good) is linear in k, so Wald's boundaries are two
parallel lines in the (n, k) plane: FAIL when k falls to the lower line, PASS when it
rises to the upper one.  The test is truncated at ``max_n``, where an exact binomial
cut-off decides.

Wald's boundaries only approximate the error rates (they ignore overshoot, and
truncation adds errors), so the design computes the *exact* operating characteristic
by dynamic programming over the (n, k) lattice and moves the boundaries until the
exact false-alarm rate P(FAIL | theta) <= alpha and miss rate P(PASS | theta - delta)
<= beta hold, then pulls each boundary in as far as the exact rates allow (fewer calls).
Both rates are monotone in p, so they hold for every p >= theta and p <= theta - delta.

"Rate <= epsilon" requirements (violations) are the mirror image: count clean samples
against theta = 1 - epsilon.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache, partial

import numpy as np

from llmops.stats.planning import fixed_n, zero_failure_n

PASS = "PASS"
FAIL = "FAIL"

#: Default cap as a multiple of the fixed-N sample size: long enough that the Wald-shaped
#: boundaries rarely truncate (so the average stays low), short enough to bound cost.
CAP_FACTOR = 1.5


@dataclass(frozen=True)
class Operating:
    """Exact behaviour of a design at one true pass rate."""

    p: float
    p_fail: float
    p_pass: float
    expected_n: float


@dataclass(frozen=True)
class SequentialDesign:
    theta: float
    delta: float
    alpha: float
    beta: float
    max_n: int
    fail_at: tuple[int, ...]  # index n: FAIL when k <= fail_at[n] (for n < max_n)
    pass_at: tuple[int, ...]  # index n: PASS when k >= pass_at[n] (for n < max_n)
    cap_cutoff: int  # at max_n: FAIL iff k < cap_cutoff
    fixed_n: int  # single-stage design with the same error rates, for comparison
    false_alarm: float  # exact P(FAIL | p = theta)
    miss: float  # exact P(PASS | p = theta - delta)

    def decide(self, k: int, n: int) -> str | None:
        """PASS, FAIL, or None to keep sampling, after k passes in n samples."""
        if n >= self.max_n:
            return FAIL if k < self.cap_cutoff else PASS
        if k <= self.fail_at[n]:
            return FAIL
        if k >= self.pass_at[n]:
            return PASS
        return None

    def min_more(self, k: int, n: int) -> int:
        """Fewest further samples that could end the test from (k, n).

        Drawing exactly this many never draws a sample the test would not look at.
        """
        for m in range(1, self.max_n - n + 1):
            if self.decide(k + m, n + m) is not None or self.decide(k, n + m) is not None:
                return m
        return max(self.max_n - n, 0)

    def operating(self, p: float) -> Operating:
        """Exact P(FAIL), P(PASS) and expected sample count at true rate p."""
        pf, pp, en = _operating(self.fail_at, self.pass_at, self.cap_cutoff, self.max_n, p)
        return Operating(p, pf, pp, en)


def _operating(
    fail_at: tuple[int, ...] | np.ndarray,
    pass_at: tuple[int, ...] | np.ndarray,
    cap_cutoff: int,
    max_n: int,
    p: float,
) -> tuple[float, float, float]:
    prob = np.zeros(max_n + 2)
    prob[0] = 1.0
    p_fail = p_pass = expected_n = 0.0
    for n in range(1, max_n + 1):
        expected_n += prob.sum()  # P(still sampling before draw n)
        new = prob * (1 - p)
        new[1:] += prob[:-1] * p
        prob = new
        if n == max_n:
            p_fail += prob[:cap_cutoff].sum()
            p_pass += prob[cap_cutoff:].sum()
            break
        lo, hi = fail_at[n], pass_at[n]
        if lo >= 0:
            p_fail += prob[: lo + 1].sum()
            prob[: lo + 1] = 0.0
        if hi <= n:
            p_pass += prob[hi:].sum()
            prob[hi:] = 0.0
    return float(p_fail), float(p_pass), float(expected_n)


def _lines(slope: float, h_fail: float, h_pass: float, max_n: int) -> tuple[np.ndarray, np.ndarray]:
    n = np.arange(max_n + 1)
    fail_at = np.floor(slope * n - h_fail).astype(int)
    pass_at = np.ceil(slope * n + h_pass).astype(int)
    return fail_at, pass_at


def _smallest(holds: Callable[[float], bool], feasible: float, steps: int = 14) -> float:
    """Bisection for the smallest intercept in [0, feasible] at which ``holds`` is still true."""
    lo, hi = 0.0, feasible
    for _ in range(steps):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if holds(mid) else (mid, hi)
    return hi


def validate(theta: float, delta: float, alpha: float, beta: float) -> None:
    from llmops.errors import ConfigError

    if not 0 < theta <= 1:
        raise ConfigError(f"threshold must be in (0, 1], got {theta}")
    if not 0 < delta < theta:
        raise ConfigError(
            f"tolerance must be in (0, {theta}) for threshold {theta}, got {delta}: the "
            "gate tells a rate of threshold from threshold - tolerance, which must be above 0"
        )
    for name, v in (("false-alarm rate", alpha), ("miss rate", beta)):
        if not 0 < v < 0.5:
            raise ConfigError(f"{name} must be in (0, 0.5), got {v}")


@lru_cache(maxsize=256)
def sequential_design(
    theta: float, delta: float, alpha: float, beta: float, max_n: int | None = None
) -> SequentialDesign:
    """The truncated SPRT for "rate >= theta" with exact error rates (see module doc)."""
    from llmops.errors import ConfigError

    validate(theta, delta, alpha, beta)
    n_fixed, _ = fixed_n(theta, delta, alpha, beta)
    p_bad = theta - delta

    if theta >= 1.0:
        # Degenerate SPRT: one failure rules out rate 1 (no false alarm is possible);
        # PASS after enough clean samples that (1 - delta)^n <= beta.
        n_pass = zero_failure_n(delta, beta)
        cap = n_pass if max_n is None else max_n
        if cap < n_pass:
            raise ConfigError(
                f"max_samples={cap} is too few for rate 1 with tolerance {delta} and miss "
                f"rate {beta}: {n_pass} clean samples are needed; raise max_samples"
            )
        fail = tuple(n - 1 for n in range(cap + 1))
        pas = tuple(n if n >= n_pass else n + 1 for n in range(cap + 1))
        _, pp, _ = _operating(fail, pas, cap, cap, p_bad)
        return SequentialDesign(theta, delta, alpha, beta, cap, fail, pas, cap, n_fixed, 0.0, pp)

    cap = math.ceil(CAP_FACTOR * n_fixed) if max_n is None else max_n
    if cap < n_fixed:
        raise ConfigError(
            f"max_samples={cap} is too few for threshold {theta} with tolerance {delta}, "
            f"false-alarm rate {alpha} and miss rate {beta}: even a fixed-size test needs "
            f"{n_fixed}; raise max_samples or the tolerance"
        )
    log_s = math.log(p_bad / theta)
    log_f = math.log((1 - p_bad) / (1 - theta))
    slope = log_f / (log_f - log_s)

    def cap_cutoff(h_fail: float, h_pass: float) -> int:
        # At the cap, decide by the side of the midline between the two boundaries.
        return math.ceil(slope * cap + (h_pass - h_fail) / 2)

    def rates(h_fail: float, h_pass: float) -> tuple[float, float]:
        fa, pa = _lines(slope, h_fail, h_pass, cap)
        cutoff = cap_cutoff(h_fail, h_pass)
        false_alarm = _operating(fa, pa, cutoff, cap, theta)[0]
        miss = _operating(fa, pa, cutoff, cap, p_bad)[1]
        return false_alarm, miss

    # Start at Wald's boundaries; widen whichever side breaks its exact rate.
    h_fail = math.log((1 - beta) / alpha) / (log_f - log_s)
    h_pass = -math.log(beta / (1 - alpha)) / (log_f - log_s)
    for _ in range(200):
        fa_rate, miss_rate = rates(h_fail, h_pass)
        if fa_rate <= alpha and miss_rate <= beta:
            break
        if fa_rate > alpha:
            h_fail *= 1.05
        if miss_rate > beta:
            h_pass *= 1.05
    else:  # pragma: no cover - with cap >= fixed N the fixed test is always reachable
        raise ConfigError(f"no sequential design found for theta={theta}, delta={delta}")

    # Pull each line in while its exact rate still holds.  Moving the FAIL line in raises
    # the false-alarm rate and lowers the miss rate; moving the PASS line in does the
    # opposite, so each step keeps the other constraint satisfied.
    def false_alarm_holds(h_fail: float, h_pass: float) -> bool:
        return rates(h_fail, h_pass)[0] <= alpha

    def miss_holds(h_pass: float, h_fail: float) -> bool:
        return rates(h_fail, h_pass)[1] <= beta

    for _ in range(3):
        h_fail = _smallest(partial(false_alarm_holds, h_pass=h_pass), h_fail)
        h_pass = _smallest(partial(miss_holds, h_fail=h_fail), h_pass)

    fa, pa = _lines(slope, h_fail, h_pass, cap)
    fa_rate, miss_rate = rates(h_fail, h_pass)
    return SequentialDesign(
        theta,
        delta,
        alpha,
        beta,
        cap,
        tuple(int(x) for x in fa),
        tuple(int(x) for x in pa),
        cap_cutoff(h_fail, h_pass),
        n_fixed,
        fa_rate,
        miss_rate,
    )
