import math
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy.stats import binom

from llmops.errors import ConfigError
from llmops.stats import FAIL, PASS, fixed_n, sequential_design, zero_failure_n
from llmops.stats import sequential as seq
from llmops.stats.planning import fixed_feasible


@pytest.fixture(autouse=True, scope="module")
def _private_design_cache(tmp_path_factory):
    """Designs built here go to a temporary cache, never to the user's ~/.cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LLMOPS_CACHE_DIR", str(tmp_path_factory.mktemp("llmops-cache")))
        sequential_design.cache_clear()
        yield
    sequential_design.cache_clear()


def _brute_fixed_n(theta, delta, alpha, beta):
    """The definition, size by size (slow): the smallest n whose exact cut-off meets both rates."""
    for n in range(1, 10_000):
        c = int(np.flatnonzero(binom.cdf(np.arange(-1, n + 1), n, theta) <= alpha)[-1])  # k < c fails
        if binom.sf(c - 1, n, theta - delta) <= beta:
            return n, c
    raise AssertionError("not found")


def test_fixed_n_matches_the_exact_binomial_design():
    assert fixed_n(0.9, 0.1, 0.01, 0.05)[0] == 198


@pytest.mark.parametrize(
    "args", [(0.9, 0.1, 0.01, 0.05), (0.5, 0.1, 0.01, 0.05), (0.95, 0.05, 0.05, 0.1), (0.7, 0.3, 0.2, 0.3)]
)
def test_fixed_n_is_the_smallest_feasible_size(args):
    assert fixed_n(*args) == _brute_fixed_n(*args)


def test_fixed_feasibility_is_a_saw_tooth():
    # Why the design cannot simply use the fixed test at any cap >= the fixed N.
    ok, _ = fixed_feasible(np.arange(391, 397), 0.5, 0.1, 0.01, 0.05)
    assert ok.tolist() == [True, False, False, False, False, True]


def test_rule_of_three():
    assert zero_failure_n(0.05, 0.05) == 59  # ~ 3 / 0.05


def test_reference_design_meets_its_exact_rates_and_the_call_targets():
    d = sequential_design(0.9, 0.1, 0.01, 0.05)
    assert d.max_n == math.ceil(1.2 * 198)
    assert d.false_alarm <= 0.01 and d.miss <= 0.05
    assert d.operating(0.8).expected_n <= 100
    assert d.operating(0.9).expected_n <= 100
    assert d.operating(1.0).expected_n <= 30
    assert d.operating(0.9).p_fail == pytest.approx(d.false_alarm)


@pytest.mark.parametrize("theta,delta", [(0.5, 0.1), (0.7, 0.1), (0.8, 0.1), (0.9, 0.1), (0.95, 0.05), (0.99, 0.01)])
def test_expected_calls_at_the_design_points_are_at_most_60_percent_of_fixed_n(theta, delta):
    d = sequential_design(theta, delta, 0.01, 0.05)
    for p in (theta, theta - delta):
        assert d.operating(p).expected_n <= 0.6 * d.fixed_n


@settings(max_examples=14, deadline=None)
@given(
    design=st.sampled_from(
        [(0.5, 0.05), (0.5, 0.1), (0.7, 0.2), (0.8, 0.1), (0.9, 0.1), (0.95, 0.05), (0.95, 0.01), (0.99, 0.01)]
    ),
    alpha=st.sampled_from([0.001, 0.01, 0.05]),
    beta=st.sampled_from([0.05, 0.1, 0.2]),
)
@example(design=(0.95, 0.01), alpha=0.001, beta=0.05)  # the tightest: fixed N 11537
@example(design=(0.99, 0.005), alpha=0.01, beta=0.05)
def test_exact_error_rates_hold_for_every_design(design, alpha, beta):
    theta, delta = design
    d = sequential_design(theta, delta, alpha, beta)
    assert d.max_n == math.ceil(seq.CAP_FACTOR * d.fixed_n)
    good, bad = d.operating(theta), d.operating(theta - delta)
    assert good.p_fail <= alpha + 1e-12 and bad.p_pass <= beta + 1e-12
    assert good.p_fail == pytest.approx(d.false_alarm, rel=1e-9, abs=1e-15)
    assert bad.p_pass == pytest.approx(d.miss, rel=1e-9, abs=1e-15)
    # Monotone operating characteristic: better prompts fail less often.
    fails = [d.operating(p).p_fail for p in (theta - delta, theta - delta / 2, theta, min(1.0, theta + delta))]
    assert fails == sorted(fails, reverse=True)


@pytest.mark.parametrize("args", [(0.9, 0.1, 0.01, 0.05), (0.5, 0.1, 0.01, 0.05), (0.95, 0.05, 0.05, 0.1)])
@pytest.mark.parametrize("extra", [0, 1, 2, 3, 5, 12])
def test_a_design_exists_for_every_cap_from_the_fixed_n(args, extra):
    n = fixed_n(*args)[0]
    d = sequential_design(*args, max_n=n + extra)
    theta, delta, alpha, beta = args
    assert d.max_n == n + extra
    assert d.operating(theta).p_fail <= alpha and d.operating(theta - delta).p_pass <= beta
    assert all(d.decide(k, d.max_n) in (PASS, FAIL) for k in range(d.max_n + 1))
    # The design may decide by a smaller size where the binomial saw-tooth requires it,
    # but never later than the cap.
    assert d.operating(theta - delta / 2).expected_n <= d.max_n


@pytest.mark.parametrize(
    "args,extra",
    [
        ((0.9, 0.1, 0.01, 0.05), 3),
        ((0.5, 0.1, 0.01, 0.05), 3),  # the saw-tooth: decides by 391 < the cap
        ((0.7, 0.2, 0.05, 0.1), 3),
        ((0.99, 0.01, 0.01, 0.05), 400),  # several chunks of the DP
        ((0.9, 0.1, 0.01, 0.05), 3000),  # a cap far beyond need: the DP stops early
    ],
)
def test_band_dp_agrees_with_the_whole_lattice(args, extra):
    d = sequential_design(*args, max_n=fixed_n(*args)[0] + extra)
    for p in (0.0, 0.3, args[0] - args[1], args[0], 0.995, 1.0):
        band = d.operating(p)
        lattice = seq._operating_lattice(np.array(d.fail_at), np.array(d.pass_at), d.cap_cutoff, d.max_n, p)
        assert (band.p_fail, band.p_pass, band.expected_n) == pytest.approx(lattice, rel=1e-9, abs=1e-12)


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


def test_no_violations_allowed_with_tolerance_one_percent_misses_at_most_five_percent():
    # at_most=0, tolerance 0.01: PASS needs 299 clean samples, and 0.99^299 = 4.95% <= 5%.
    d = sequential_design(1.0, 0.01, 0.01, 0.05)
    assert d.max_n == 299
    assert d.miss == pytest.approx(0.99**299) and d.miss <= 0.05
    assert d.operating(0.99).p_pass == pytest.approx(d.miss)


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


# --- the disk cache ------------------------------------------------------------------------

ARGS = (0.9, 0.1, 0.01, 0.05)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMOPS_CACHE_DIR", str(tmp_path))
    sequential_design.cache_clear()
    yield tmp_path / "designs"
    sequential_design.cache_clear()


def _no_build(*args):
    raise AssertionError("built again although it is on disk")


def test_a_built_design_is_loaded_from_disk_in_a_fresh_process_state(cache, monkeypatch):
    built = sequential_design(*ARGS)
    assert len(list(cache.glob("*.npz"))) == 1
    sequential_design.cache_clear()
    monkeypatch.setattr(seq, "_build", _no_build)
    assert sequential_design(*ARGS) == built


def test_a_corrupt_cache_file_is_rebuilt(cache, monkeypatch):
    built = sequential_design(*ARGS)
    (path,) = cache.glob("*.npz")
    path.write_bytes(b"not a design")
    sequential_design.cache_clear()
    assert sequential_design(*ARGS) == built
    sequential_design.cache_clear()
    monkeypatch.setattr(seq, "_build", _no_build)
    assert sequential_design(*ARGS) == built  # and the rebuilt file is good again


def test_a_cache_file_of_another_design_version_is_not_used(cache, monkeypatch):
    sequential_design(*ARGS)
    sequential_design.cache_clear()
    monkeypatch.setattr(seq, "DESIGN_VERSION", seq.DESIGN_VERSION + 1)
    calls = []
    real_build = seq._build
    monkeypatch.setattr(seq, "_build", lambda *a: calls.append(a) or real_build(*a))
    sequential_design(*ARGS)
    assert len(calls) == 1 and len(list(cache.glob("*.npz"))) == 2


def test_an_unwritable_cache_is_skipped(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("the cache directory cannot be created under a file")
    monkeypatch.setenv("LLMOPS_CACHE_DIR", str(blocker))
    sequential_design.cache_clear()
    try:
        assert sequential_design(*ARGS).miss <= 0.05
    finally:
        sequential_design.cache_clear()


def test_concurrent_builders_leave_one_readable_file(cache):
    code = "from llmops.stats import sequential_design as s; s(0.8, 0.05, 0.01, 0.05)"
    env = {**os.environ, "LLMOPS_CACHE_DIR": str(cache.parent)}
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env) for _ in range(2)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    assert [f.name for f in cache.iterdir() if f.suffix != ".npz"] == []  # no temporary files left
    (path,) = cache.glob("*.npz")
    loaded = seq._load(Path(path), 0.8, 0.05, 0.01, 0.05, math.ceil(1.2 * fixed_n(0.8, 0.05, 0.01, 0.05)[0]))
    assert loaded is not None
    assert loaded == seq._build(0.8, 0.05, 0.01, 0.05, loaded.max_n, loaded.fixed_n)
