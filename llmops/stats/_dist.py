"""The distribution functions the statistics use, without importing scipy.stats.

``scipy.stats`` takes about a second to import on a CI machine, and a session pays it
before its first sample.  Its ``binom``, ``beta`` and ``norm`` call compiled functions of
``scipy.special`` (a third of the import), which are used here directly, with the bounds
that ``scipy.stats`` handles around them, so every value is the one ``scipy.stats`` gives
(``tests/test_stats_intervals.py`` checks it on a grid).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import ndtri

try:  # what scipy.stats.binom / beta call (scipy >= 1.10)
    from scipy.special._ufuncs import _beta_ppf, _binom_cdf, _binom_ppf, _binom_sf
except ImportError:  # pragma: no cover - a scipy that moved them: the slower import, the same values
    from scipy.stats import beta as _beta
    from scipy.stats import binom as _binom

    _beta_ppf, _binom_cdf, _binom_sf, _binom_ppf = _beta.ppf, _binom.cdf, _binom.sf, _binom.ppf


def binom_cdf(k: Any, n: Any, p: float) -> Any:
    """P(X <= k) for X ~ Bin(n, p): 0 below the support, 1 above it (as scipy.stats.binom.cdf)."""
    k, n = np.floor(np.asarray(k, dtype=float)), np.asarray(n)
    inside = _binom_cdf(np.clip(k, 0, n), n, p)
    return np.where(k < 0, 0.0, np.where(k >= n, 1.0, inside))


def binom_sf(k: Any, n: Any, p: float) -> Any:
    """P(X > k) for X ~ Bin(n, p): 1 below the support, 0 above it (as scipy.stats.binom.sf)."""
    k, n = np.floor(np.asarray(k, dtype=float)), np.asarray(n)
    inside = _binom_sf(np.clip(k, 0, n), n, p)
    return np.where(k < 0, 1.0, np.where(k >= n, 0.0, inside))


def binom_ppf(q: float, n: Any, p: float) -> Any:
    """The smallest k with P(X <= k) >= q, for 0 < q < 1 (as scipy.stats.binom.ppf)."""
    return _binom_ppf(q, n, p)


def beta_ppf(q: float, a: float, b: float) -> float:
    """The q-quantile of Beta(a, b), for 0 < q < 1 (as scipy.stats.beta.ppf)."""
    return float(_beta_ppf(q, a, b))


def norm_ppf(q: float) -> float:
    """The q-quantile of the standard normal (as scipy.stats.norm.ppf)."""
    return float(ndtri(q))
