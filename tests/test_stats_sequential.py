import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmops.errors import ConfigError
from llmops.stats import FAIL, PASS, fixed_n, sequential_design, zero_failure_n


def test_fixed_n_matches_the_exact_binomial_design():
    assert fixed_n(0.9, 0.1, 0.01, 0.05)[0] == 198


def test_rule_of_three():
    assert zero_failure_n(0.05, 0.05) == 59  # ~ 3 / 0.05


def test_reference_design_meets_its_exact_rates_and_the_call_targets():
    d = sequential_design(0.9, 0.1, 0.01, 0.05)
    assert d.false_alarm <= 0.01 and d.miss <= 0.05
    assert d.operating(0.8).expected_n <= 100
    assert d.operating(0.9).expected_n <= 100
    assert d.operating(1.0).expected_n <= 30
    assert d.operating(0.9).p_fail == pytest.approx(d.false_alarm)


@settings(max_examples=15, deadline=None)
@given(
    theta=st.sampled_from([0.5, 0.7, 0.8, 0.9, 0.95]),
    delta=st.sampled_from([0.05, 0.1, 0.2]),
    alpha=st.sampled_from([0.01, 0.05]),
    beta=st.sampled_from([0.05, 0.1, 0.2]),
)
def test_exact_error_rates_hold_for_every_design(theta, delta, alpha, beta):
    if delta >= theta:
        return
    d = sequential_design(theta, delta, alpha, beta)
    assert d.operating(theta).p_fail <= alpha + 1e-12
    assert d.operating(theta - delta).p_pass <= beta + 1e-12
    # Monotone operating characteristic: better prompts fail less often.
    fails = [d.operating(p).p_fail for p in (theta - delta, theta - delta / 2, theta, min(1.0, theta + delta))]
    assert fails == sorted(fails, reverse=True)


def _simulate(d, p, runs, seed):
    r = random.Random(seed)
    fails = calls = 0
    for _ in range(runs):
        k = n = 0
        while (v := d.decide(k, n)) is None:
            n += 1
            k += r.random() < p
        fails += v == FAIL
        calls += n
    return fails / runs, calls / runs


def test_exact_operating_characteristic_agrees_with_simulation():
    d = sequential_design(0.9, 0.1, 0.01, 0.05)
    for p in (0.8, 0.85, 0.9):
        sim_fail, sim_calls = _simulate(d, p, 3000, seed=int(p * 100))
        exact = d.operating(p)
        se = (exact.p_fail * (1 - exact.p_fail) / 3000) ** 0.5
        assert abs(sim_fail - exact.p_fail) < 4 * se + 0.002
        assert abs(sim_calls - exact.expected_n) < 0.1 * exact.expected_n


def test_decide_reaches_a_verdict_by_the_cap():
    d = sequential_design(0.9, 0.1, 0.01, 0.05)
    assert d.decide(0, 0) is None
    for k in range(d.max_n + 1):
        assert d.decide(k, d.max_n) in (PASS, FAIL)


def test_min_more_never_skips_a_decision():
    d = sequential_design(0.9, 0.1, 0.01, 0.05)
    for k, n in [(0, 0), (10, 12), (50, 60), (100, 120)]:
        m = d.min_more(k, n)
        for j in range(1, m):
            for extra in range(j + 1):
                assert d.decide(k + extra, n + j) is None


def test_rate_one_fails_on_the_first_failure():
    d = sequential_design(1.0, 0.05, 0.01, 0.05)
    assert d.decide(3, 4) == FAIL
    assert d.decide(58, 58) is None
    assert d.decide(59, 59) == PASS
    assert d.false_alarm == 0.0 and d.miss <= 0.05


@pytest.mark.parametrize(
    "args,match",
    [
        ((0.9, 0.95, 0.01, 0.05), "tolerance"),
        ((1.2, 0.1, 0.01, 0.05), "threshold"),
        ((0.9, 0.1, 0.6, 0.05), "false-alarm"),
    ],
)
def test_bad_parameters_are_named(args, match):
    with pytest.raises(ConfigError, match=match):
        sequential_design(*args)


def test_too_small_cap_says_what_is_needed():
    with pytest.raises(ConfigError, match="needs 198"):
        sequential_design(0.9, 0.1, 0.01, 0.05, max_n=100)
