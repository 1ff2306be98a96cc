"""--llmops-prefetch: every test's requirements sampled side by side, verdicts unchanged, nothing lost.

The look-ahead runs each body once to record its requirements, decides them in the
background, and the tests take the samples drawn for them.  What must hold: the verdicts,
the samples looked at (k, n) and so the error rates are those of a session without it;
every call the model saw is in some test's result or in the look-ahead's own count of
calls no test took; faults change nothing of that.
"""

from __future__ import annotations

import json

from test_faults import MIXED, accounted, run_suite

CONFTEST = """
import pytest
from llmops import FunctionModel

CALLS = []

def answer(text, rng):
    CALLS.append(text)
    rate = float(text.rsplit(" ", 1)[-1])
    return '{"ok": true}' if rng.random() < rate else "no"

@pytest.fixture
def llmops_model():
    return FunctionModel(answer, id="sim")

def pytest_sessionfinish(session):
    with open("calls.txt", "w") as f:
        f.write(str(len(CALLS)))
"""

SIMULATED = """
import pytest
from llmops import Prompt, checks

@pytest.mark.parametrize("rate", [0.99, 0.95, 0.9, 0.8, 0.6])
def test_rate(llmops, rate):
    run = llmops.sample(Prompt("p", "valid JSON at rate {rate}"), {"rate": rate})
    run.expect(checks.json_valid(), at_least=0.85, tolerance=0.1)
    print("body ran to its end")

def test_two_requirements(llmops):
    run = llmops.sample(Prompt("q", "two at rate {rate}"), {"rate": 0.97})
    run.expect(checks.json_valid(), at_least=0.8)
    run.expect(checks.contains("ok"), at_least=0.8)

def test_plain():
    assert True
"""


def _session(pytester, *args):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_sim=SIMULATED)
    out = pytester.runpytest_inprocess(
        "--llmops-report-json=r.json", "--llmops-cache=off", "--llmops-tracking=off", "-p", "no:randomly", *args
    )
    record = json.loads((pytester.path / "r.json").read_text())
    calls = int((pytester.path / "calls.txt").read_text())
    return out, record, calls


def _looked(record):
    return {(r["test_id"], r["check"]): (r["verdict"], r["k"], r["n"], r["errors"]) for r in record["results"]}


def test_prefetch_gives_the_same_verdicts_on_the_same_samples_and_counts_every_call(pytester):
    out, plain, plain_calls = _session(pytester, "--llmops-concurrency=16")
    assert "ahead" not in plain
    out, ahead, ahead_calls = _session(pytester, "--llmops-concurrency=16", "--llmops-prefetch=on", "-rA")
    # The same samples looked at in the same order: the same k, n and verdict for every requirement.
    assert _looked(ahead) == _looked(plain)
    assert sorted(v for v, *_ in _looked(plain).values()) == ["FAIL", "FAIL", "PASS", "PASS", "PASS", "PASS", "PASS"]
    out.assert_outcomes(passed=5, failed=2)  # the look-ahead pass reports nothing of its own
    assert ahead["ahead"]["tests"] == 6
    # Every call the model saw is in a test's result, or counted as made ahead and not taken.
    results = {r["test_id"] + r["check"]: r for r in ahead["results"]}
    accounted(results)
    assert ahead_calls == sum(r["calls"] for r in ahead["results"]) + ahead["ahead"]["unused_calls"]
    assert plain_calls == sum(r["calls"] for r in plain["results"])
    out.stdout.fnmatch_lines(["*look-ahead (--llmops-prefetch): 6 tests sampled side by side*"])
    # A test's output is its own run's, not the look-ahead's too.
    assert out.stdout.str().count("body ran to its end") == 3  # the three passing test_rate tests, once each


def test_a_session_stopped_early_still_counts_every_call_the_look_ahead_made(pytester):
    """-x: the first FAIL stops the session; the look-ahead of the tests that never ran stops
    too, and its calls are in the record (not taken by any test), none lost."""
    out, record, calls = _session(pytester, "--llmops-concurrency=16", "--llmops-prefetch=on", "-x")
    assert [r["verdict"] for r in record["results"]] == ["PASS", "PASS", "PASS", "FAIL"]
    assert record["outcome"]["partial"]  # not every test ran
    ahead = record["ahead"]
    assert ahead["in_flight"] == 0 and ahead["unused_calls"] > 0  # the two tests that never ran
    assert calls == sum(r["calls"] for r in record["results"]) + ahead["unused_calls"]
    out.stdout.fnmatch_lines([f"*look-ahead*; {ahead['unused_calls']} calls made ahead were not taken by their test*"])


def test_prefetch_is_off_for_a_plan_and_for_collect_only(pytester):
    out, record, calls = _session(pytester, "--llmops-plan=on", "--llmops-prefetch=on")
    assert calls == 0 and "ahead" not in record
    pytester.makepyfile(test_sim=SIMULATED)
    out = pytester.runpytest_inprocess("--collect-only", "--llmops-prefetch=on", "--llmops-tracking=off")
    assert out.ret == 0 and "look-ahead" not in out.stdout.str()


def test_prefetch_under_provider_faults_reconciles_with_the_server(pytester, monkeypatch, quick_backoff):
    """The real ChatOpenAI against the fault server: the server's requests are the tests' calls and
    retries plus the look-ahead's requests that no test took; no verdict changes."""
    # A call that times out before its request is written (a loaded machine) is an attempt the
    # server never sees: 4 s (the server hangs 5) keeps that from happening here.
    out, results, log = run_suite(
        pytester, monkeypatch, "--llmops-prefetch=on", "--llmops-timeout=4", faults=MIXED, seed=3
    )
    record = json.loads((pytester.path / "r.json").read_text())
    verdicts = {name: r["verdict"] for name, r in results.items()}
    assert verdicts == {"good": "PASS", "fine": "PASS", "bad": "FAIL", "broken": "FAIL"}
    accounted(results)
    made = sum(r["calls"] + r["retries"] for r in results.values())
    assert len(log) == made + record["ahead"]["unused_requests"], (len(log), made, record["ahead"])
    assert record["ahead"]["in_flight"] == 0
    out.assert_outcomes(passed=2, failed=2)
