import random

from hypothesis import given
from hypothesis import strategies as st

from llmops.stats import clopper_pearson, clopper_pearson_lower, clopper_pearson_upper, wilson

counts = st.integers(min_value=0, max_value=400).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n)))


@given(counts)
def test_bounds_are_ordered_and_inside_unit_interval(kn):
    k, n = kn
    for lo, hi in (wilson(k, n), clopper_pearson(k, n)):
        assert 0.0 <= lo <= hi <= 1.0
        if n:
            assert lo <= k / n <= hi


@given(counts)
def test_bounds_are_monotone_in_k(kn):
    k, n = kn
    if k < n:
        assert wilson(k, n)[0] <= wilson(k + 1, n)[0]
        assert clopper_pearson_lower(k, n, 0.05) <= clopper_pearson_lower(k + 1, n, 0.05)
        assert clopper_pearson_upper(k, n, 0.05) <= clopper_pearson_upper(k + 1, n, 0.05)


def test_exact_lower_bound_covers_at_its_level():
    # Coverage against known truth: P(lower bound > p) must be <= alpha for every p.
    from scipy.stats import binom

    alpha, n = 0.05, 60
    for p in (0.05, 0.3, 0.5, 0.81, 0.9, 0.97):
        miss = sum(binom.pmf(k, n, p) for k in range(n + 1) if clopper_pearson_lower(k, n, alpha) > p)
        assert miss <= alpha + 1e-12


def test_wilson_coverage_is_near_nominal_by_simulation():
    r = random.Random(7)
    n, p, runs = 50, 0.85, 4000
    covered = 0
    for _ in range(runs):
        k = sum(r.random() < p for _ in range(n))
        lo, hi = wilson(k, n)
        covered += lo <= p <= hi
    assert 0.93 <= covered / runs <= 0.97


def test_empty_sample_knows_nothing():
    assert wilson(0, 0) == (0.0, 1.0)
    assert clopper_pearson(0, 0) == (0.0, 1.0)


def test_the_distribution_functions_are_scipy_stats_values_exactly():
    """llmops.stats._dist calls scipy.special directly (scipy.stats takes a second to import);
    every value must be the one scipy.stats gives, bounds included."""
    import random

    import numpy as np
    from scipy.stats import beta, binom, norm

    from llmops.stats import _dist

    rng = random.Random(7)
    for _ in range(300):
        n, p = rng.randint(1, 2000), rng.random()
        ks = np.arange(-2, n + 3)
        assert np.array_equal(_dist.binom_cdf(ks, n, p), binom.cdf(ks, n, p))
        assert np.array_equal(_dist.binom_sf(ks, n, p), binom.sf(ks, n, p))
        q = rng.uniform(1e-6, 0.5)
        sizes = np.arange(1, n + 1)
        assert np.array_equal(
            np.nan_to_num(_dist.binom_ppf(q, sizes, p), nan=0.0), np.nan_to_num(binom.ppf(q, sizes, p), nan=0.0)
        )
        k = rng.randint(1, n)
        assert _dist.beta_ppf(q, k, n - k + 1) == float(beta.ppf(q, k, n - k + 1))
        assert _dist.norm_ppf(q) == float(norm.ppf(q)) and -_dist.norm_ppf(q) == float(norm.isf(q))
