"""How many samples a requirement needs: the fixed-N exact design and the rule of three."""

from __future__ import annotations

import math
from functools import lru_cache

from scipy.stats import binom


def fixed_cutoff(n: int, theta: float, alpha: float) -> int:
    """Largest c such that FAIL-if-k<c has false-alarm <= alpha at rate theta (k ~ Bin(n, theta))."""
    if theta >= 1.0:
        return n  # any failure rules out rate 1, and costs no false alarm
    c = int(binom.ppf(alpha, n, theta))
    while c <= n and binom.cdf(c, n, theta) <= alpha:
        c += 1
    while c > 0 and binom.cdf(c - 1, n, theta) > alpha:
        c -= 1
    return c


@lru_cache(maxsize=256)
def fixed_n(theta: float, delta: float, alpha: float, beta: float) -> tuple[int, int]:
    """Smallest single-stage design (n, c): FAIL iff passes < c, with exact error rates.

    False alarm P(k < c | theta) <= alpha and miss P(k >= c | theta - delta) <= beta.
    This is what a non-sequential test needs; the sequential gate is compared with it.
    """
    if theta >= 1.0:
        n = zero_failure_n(delta, beta)
        return n, n
    p_bad = theta - delta
    n = 1
    while True:
        c = fixed_cutoff(n, theta, alpha)
        if float(binom.sf(c - 1, n, p_bad)) <= beta:
            return n, c
        n += 1


def zero_failure_n(epsilon: float, beta: float) -> int:
    """Clean samples needed before zero failures shows the failure rate < epsilon at 1 - beta.

    (1 - epsilon)^n <= beta; for beta = 0.05 this is the rule of three, n ~ 3 / epsilon.
    """
    if not 0 < epsilon < 1:
        raise ValueError(f"epsilon must be in (0, 1), got {epsilon}")
    return math.ceil(math.log(beta) / math.log1p(-epsilon))
