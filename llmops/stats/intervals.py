"""Confidence intervals for a binomial rate: Wilson (for display) and Clopper-Pearson (exact)."""

from __future__ import annotations

import math

from llmops.stats._dist import beta_ppf, norm_ppf


def _check(k: int, n: int) -> None:
    if n < 0 or k < 0 or k > n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")


def wilson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Two-sided Wilson score interval; (0, 1) when n == 0 (nothing is known)."""
    _check(k, n)
    if n == 0:
        return (0.0, 1.0)
    z = norm_ppf(0.5 + confidence / 2)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # Clamp: rounding can push a bound a hair outside [0, 1] or past the point estimate.
    return (max(0.0, min(centre - half, p)), min(1.0, max(centre + half, p)))


def clopper_pearson_lower(k: int, n: int, alpha: float) -> float:
    """Exact one-sided lower bound: P(rate < bound) <= alpha whatever the true rate."""
    _check(k, n)
    return 0.0 if k == 0 else beta_ppf(alpha, k, n - k + 1)


def clopper_pearson_upper(k: int, n: int, alpha: float) -> float:
    """Exact one-sided upper bound: P(rate > bound) <= alpha whatever the true rate."""
    _check(k, n)
    return 1.0 if k == n else beta_ppf(1 - alpha, k + 1, n - k)


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Two-sided exact interval (each tail gets half of 1 - confidence)."""
    a = (1 - confidence) / 2
    return (clopper_pearson_lower(k, n, a), clopper_pearson_upper(k, n, a))
