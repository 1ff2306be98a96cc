import math
import random
import statistics
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmops.errors import ConfigError
from llmops.stats.intervals import clopper_pearson
from llmops.stats.paired import (
    CAP_FACTOR,
    NOT_WORSE,
    REGRESSED,
    UNDECIDED,
    PairedDesign,
    difference_interval,
    fixed_pairs,
    paired_design,
)

DELTA, ALPHA, BETA = 0.1, 0.05, 0.1
RUNS = 1000


def _draw(rng: random.Random, diff: float, ties: float) -> int:
    u = rng.random()
    p_win = (1 - ties + diff) / 2
    return 1 if u < p_win else (-1 if u < 1 - ties else 0)


def _run(design: PairedDesign, diff: float, ties: float, seed: int | str) -> tuple[str, int]:
    rng = random.Random(seed)
    state = design.start()
    while (verdict := state.update(_draw(rng, diff, ties))) is None:
        pass
    return verdict, state.pairs


@cache
def _simulate(diff: float, ties: float, runs: int = RUNS) -> tuple[dict[str, int], float]:
    """Verdict counts and mean pairs over seeded runs (cached: several tests share a row)."""
    design = paired_design(DELTA, ALPHA, BETA)
    counts = {REGRESSED: 0, NOT_WORSE: 0, UNDECIDED: 0}
    pairs = []
    for i in range(runs):
        verdict, n = _run(design, diff, ties, seed=f"{diff}:{ties}:{i}")
        counts[verdict] += 1
        pairs.append(n)
    return counts, statistics.mean(pairs)


@pytest.mark.parametrize("ties", [0.0, 0.5, 0.9])
def test_false_alarm_rate_is_at_most_alpha_at_no_difference(ties):
    counts, _ = _simulate(0.0, ties)
    lo, _hi = clopper_pearson(counts[REGRESSED], RUNS)
    assert lo <= ALPHA, f"false alarms {counts[REGRESSED]}/{RUNS} at ties={ties}"
    assert counts[UNDECIDED] == 0


@pytest.mark.parametrize("ties", [0.0, 0.5, 0.8])
def test_miss_rate_is_at_most_beta_at_a_drop_of_the_tolerance(ties):
    counts, _ = _simulate(-DELTA, ties)
    lo, _hi = clopper_pearson(counts[NOT_WORSE], RUNS)
    assert lo <= BETA, f"misses {counts[NOT_WORSE]}/{RUNS} at ties={ties}"
    assert counts[UNDECIDED] == 0


def test_ties_make_the_test_much_shorter():
    _, no_ties = _simulate(0.0, 0.0)
    _, many_ties = _simulate(0.0, 0.8, runs=300)
    assert many_ties < 0.5 * no_ties, (many_ties, no_ties)


def test_sequential_test_uses_fewer_pairs_than_the_fixed_design_at_the_design_points():
    fixed = fixed_pairs(DELTA, ALPHA, BETA)
    for diff, ties in [(0.0, 0.5), (-DELTA, 0.5)]:
        _, mean = _simulate(diff, ties)
        assert mean <= 0.6 * fixed, (diff, ties, mean, fixed)


def test_undecided_only_at_the_cap_between_the_hypotheses():
    design = paired_design(DELTA, ALPHA, BETA, max_pairs=60)
    seen = {REGRESSED: 0, NOT_WORSE: 0, UNDECIDED: 0}
    for seed in range(200):
        verdict, n = _run(design, -DELTA / 2, 0.0, seed)
        seen[verdict] += 1
        assert (verdict == UNDECIDED) == (n == 60)
        assert n <= 60
    assert seen[UNDECIDED] > 0


def test_needed_estimates_more_pairs_at_the_cap():
    design = paired_design(DELTA, ALPHA, BETA, max_pairs=60)
    rng = random.Random(7)
    state = design.start()
    assert state.needed() is None  # nothing seen yet
    while state.update(_draw(rng, -DELTA, 0.0)) is None:
        pass
    assert state.verdict == UNDECIDED
    more = state.needed()
    assert more is None or more > 0


def test_all_ties_end_not_worse():
    state = paired_design(DELTA, 0.01, 0.05).start()
    while state.update(0) is None:
        assert state.e_values()[0] == 1.0  # ties carry no evidence of a drop: a sign test
    assert state.verdict == NOT_WORSE
    assert state.pairs < 100
    assert state.difference() == 0.0
    assert state.needed() == 0
    lo, hi = state.interval()
    assert lo < 0.0 < hi  # still honest about what a few dozen pairs cannot rule out


def test_all_losses_end_regressed_quickly():
    state = paired_design(DELTA, 0.01, 0.05).start()
    while state.update(-1) is None:
        pass
    assert state.verdict == REGRESSED
    assert state.pairs < 60
    assert state.e_values()[0] >= 100
    assert state.interval()[0] < -0.8


def test_all_wins_end_not_worse():
    state = paired_design(DELTA, 0.01, 0.05).start()
    while state.update(1) is None:
        pass
    assert state.verdict == NOT_WORSE


@settings(max_examples=50, deadline=None)
@given(
    diffs=st.lists(st.sampled_from([-1, 0, 1]), min_size=1, max_size=400),
    delta=st.sampled_from([0.02, 0.1, 0.3, 0.9]),
)
def test_e_values_stay_positive_and_counts_add_up(diffs, delta):
    state = paired_design(delta, 0.05, 0.1, max_pairs=10**6).start()
    for d in diffs:
        verdict = state.update(d)
        k_reg, k_ok = state.e_values()
        assert k_reg > 0 and k_ok > 0 and math.isfinite(k_reg) and math.isfinite(k_ok)
        assert state.wins + state.losses + state.ties == state.pairs
        lo, hi = state.interval()
        assert -1.0 <= lo <= state.difference() <= hi <= 1.0
        if verdict is not None:
            break
    assert state.difference() == pytest.approx((state.wins - state.losses) / state.pairs)


@pytest.mark.parametrize(("truth", "ties", "n"), [(-0.05, 0.5, 200), (0.0, 0.9, 100), (-0.3, 0.0, 50)])
def test_interval_covers_the_true_difference_at_about_its_level(truth, ties, n):
    rng = random.Random(f"interval:{truth}:{ties}")
    runs, hits = 1000, 0
    for _ in range(runs):
        draws = [_draw(rng, truth, ties) for _ in range(n)]
        lo, hi = difference_interval(draws.count(1), draws.count(-1), draws.count(0))
        hits += lo <= truth <= hi
    assert hits / runs >= 0.93, hits


def test_no_pairs_no_estimate():
    state = paired_design(DELTA, ALPHA, BETA).start()
    assert math.isnan(state.difference())
    assert state.interval() == (-1.0, 1.0)
    assert state.e_values() == (1.0, 1.0)


def test_feeding_after_the_verdict_or_a_bad_difference_raises():
    state = paired_design(DELTA, ALPHA, BETA).start()
    with pytest.raises(ValueError, match="-1, 0 or \\+1"):
        state.update(2)
    while state.update(-1) is None:
        pass
    with pytest.raises(RuntimeError, match="already ended"):
        state.update(0)


def test_default_cap_is_a_multiple_of_the_fixed_design():
    design = paired_design(0.1, 0.01, 0.05)
    assert fixed_pairs(0.1, 0.01, 0.05) == 1582  # exact binomial, 0.5 vs 0.45
    assert design.max_pairs == CAP_FACTOR * 1582
    assert design.fixed_pairs == 1582


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"delta": 0.0}, "delta"),
        ({"delta": 1.0}, "delta"),
        ({"delta": "0.1"}, "delta"),
        ({"alpha": 0.0}, "alpha"),
        ({"alpha": 0.6}, "alpha"),
        ({"beta": -0.1}, "beta"),
        ({"beta": True}, "beta"),
        ({"max_pairs": 0}, "max_pairs"),
        ({"max_pairs": 10.5}, "max_pairs"),
    ],
)
def test_bad_parameters_raise_config_error_naming_them(kwargs, name):
    args = {"delta": 0.1, "alpha": 0.05, "beta": 0.1, "max_pairs": 100} | kwargs
    with pytest.raises(ConfigError, match=name):
        paired_design(**args)
