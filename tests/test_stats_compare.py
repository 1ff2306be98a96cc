import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmops.baseline import compare
from llmops.stats.compare import compare_cases, holm


def test_holm_matches_the_textbook_example():
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])


@given(st.lists(st.floats(0, 1), min_size=1, max_size=12))
def test_holm_never_lowers_a_p_value_and_keeps_order(ps):
    adj = holm(ps)
    assert all(a >= p - 1e-12 and a <= 1 for a, p in zip(adj, ps, strict=True))
    order = sorted(range(len(ps)), key=lambda i: ps[i])
    assert [adj[i] for i in order] == sorted(adj)


def test_methods_by_number_of_cases():
    one = compare_cases({"a": (10, 40)}, {"a": (35, 40)})
    assert one.method == "Fisher exact" and one.p_value < 0.001 and one.interval[1] < 0
    few = compare_cases({f"c{i}": (2, 10) for i in range(6)}, {f"c{i}": (9, 10) for i in range(6)})
    assert few.method == "sign-flip permutation" and few.p_value == pytest.approx(1 / 64)
    many = compare_cases({f"c{i}": (5, 10) for i in range(20)}, {f"c{i}": (5 + i % 2, 10) for i in range(20)})
    assert many.method.startswith("paired t") and many.difference == pytest.approx(-0.05)
    assert many.moved[0][1] == pytest.approx(-0.1)


def test_cases_missing_from_either_side_are_not_compared():
    c = compare_cases({"a": (5, 10), "b": (5, 10), "new": (0, 10)}, {"a": (5, 10), "b": (5, 10), "old": (9, 10)})
    assert c.n_cases == 2 and c.difference == 0
    with pytest.raises(ValueError, match="no cases in common"):
        compare_cases({"x": (1, 2)}, {"y": (1, 2)})


def _result(prompt, version, cases, direction="at_least"):
    return {
        "prompt": prompt,
        "prompt_version": version,
        "model": "m",
        "check": "exact",
        "check_params": {},
        "description": "correct",
        "direction": direction,
        "threshold": 0.8,
        "tolerance": 0.1,
        "false_alarm": 0.05,
        "miss": 0.1,
        "k": 0,
        "n": 0,
        "errors": 0,
        "calls": 0,
        "rate": 0.5,
        "interval": [0, 1],
        "bound": 0,
        "verdict": "PASS",
        "conclusive": True,
        "fixed_n": 1,
        "n_cases": len(cases),
        "cases": [{"case_id": c, "k": k, "n": n, "errors": 0, "example": ""} for c, (k, n) in cases.items()],
    }


def _simulate_pair(rng, drop, n_cases=20, k=8):
    base_rates = [rng.uniform(0.6, 1.0) for _ in range(n_cases)]
    new_rates = [max(0.0, r - drop) for r in base_rates]

    def draw(rates):
        return {f"c{i}": (sum(rng.random() < r for _ in range(k)), k) for i, r in enumerate(rates)}

    return draw(new_rates), draw(base_rates)


def test_paired_gate_calibration_against_known_truth():
    # Known truth: zero difference -> regressions are false alarms (<= 5% expected);
    # a true drop of the tolerance (0.1) -> most runs flag it.
    rng = random.Random(2024)
    runs = 300
    false_alarms = detections = 0
    for _ in range(runs):
        new, base = _simulate_pair(rng, 0.0)
        false_alarms += bool(compare([_result("p", "v2", new)], [_result("p", "v1", base)], "b", 0.1, 0.05).regressions)
        new, base = _simulate_pair(rng, 0.1)
        detections += bool(compare([_result("p", "v2", new)], [_result("p", "v1", base)], "b", 0.1, 0.05).regressions)
    # P(X >= 27 | n=300, p=0.05) < 0.2%: more would mean the false-alarm rate is wrong.
    assert false_alarms < 27
    assert detections / runs > 0.6


def test_holm_applies_across_prompts_in_a_session():
    rng = random.Random(5)
    new, base = _simulate_pair(rng, 0.0)
    report = compare(
        [_result("p", "v2", new), _result("q", "w2", new)],
        [_result("p", "v1", base), _result("q", "w1", base)],
        "b",
        0.1,
        0.05,
    )
    raw = [v.comparison.p_value for v in report.verdicts]
    assert [v.p_adjusted for v in report.verdicts] == holm(raw)
    only_new = compare(
        [_result("p", "v2", new), _result("fresh", "f1", new)], [_result("p", "v1", base)], "b", 0.1, 0.05
    )
    assert only_new.unmatched == ("fresh: correct (at least)",)
