"""How many samples a requirement needs: the fixed-N exact design and the rule of three."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from llmops.stats._dist import binom_cdf, binom_ppf, binom_sf, norm_ppf


def fixed_cutoffs(n: np.ndarray, theta: float, alpha: float) -> np.ndarray:
    """Vectorised :func:`fixed_cutoff`: the exact cut-off for every sample size in ``n``."""
    n = np.asarray(n, dtype=np.int64)
    if theta >= 1.0:
        return n.copy()
    # binom_ppf gives the smallest c with P(k <= c) >= alpha, so the cut-off is c or c + 1;
    # the two loops correct that and any off-by-one of the floating-point ppf.
    c = np.nan_to_num(binom_ppf(alpha, n, theta), nan=0.0).astype(np.int64)
    c = np.clip(c, 0, n)
    while (up := (c <= n) & (binom_cdf(c, n, theta) <= alpha)).any():
        c += up
    while (down := (c > 0) & (binom_cdf(c - 1, n, theta) > alpha)).any():
        c -= down
    return c


def fixed_cutoff(n: int, theta: float, alpha: float) -> int:
    """Largest c such that FAIL-if-k<c has false-alarm <= alpha at rate theta (k ~ Bin(n, theta))."""
    return int(fixed_cutoffs(np.array([n]), theta, alpha)[0])


def fixed_feasible(
    n: np.ndarray, theta: float, delta: float, alpha: float, beta: float
) -> tuple[np.ndarray, np.ndarray]:
    """Which single-stage sizes ``n`` meet both exact rates with their cut-off, and those cut-offs.

    Not monotone in n: the discrete binomial makes a saw-tooth, so a size can fail its miss
    rate although a smaller one meets it (e.g. 391 works for 0.5 / 0.1 / 0.01 / 0.05, 392 does not).
    """
    c = fixed_cutoffs(n, theta, alpha)
    return binom_sf(c - 1, n, theta - delta) <= beta, c


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
    # The normal approximation lands near the answer; every size up to a feasible upper end is
    # then checked exactly in one vectorised pass, so the smallest feasible size is exact.
    z = -norm_ppf(alpha) * math.sqrt(theta * (1 - theta)) - norm_ppf(beta) * math.sqrt(p_bad * (1 - p_bad))
    hi = max(16, math.ceil(1.25 * (z / delta) ** 2) + 16)
    while True:
        sizes = np.arange(1, hi + 1)
        ok, c = fixed_feasible(sizes, theta, delta, alpha, beta)
        if ok.any():
            i = int(np.argmax(ok))
            return int(sizes[i]), int(c[i])
        hi *= 2


def zero_failure_n(epsilon: float, beta: float) -> int:
    """Clean samples needed before zero failures shows the failure rate < epsilon at 1 - beta.

    (1 - epsilon)^n <= beta; for beta = 0.05 this is the rule of three, n ~ 3 / epsilon.
    """
    if not 0 < epsilon < 1:
        raise ValueError(f"epsilon must be in (0, 1), got {epsilon}")
    return math.ceil(math.log(beta) / math.log1p(-epsilon))
