"""The verdicts and the regression gate as a user sees them: one pytester test per finding.

Each baseline here is a results file written by a first session (``--llmops-report-json``),
so these run without MLflow; tests/test_tracking.py runs the same gate through MLflow.
"""

import json

import pytest

CONFTEST = """
import os, threading
import pytest
from llmops import FunctionModel

_lock = threading.Lock()

def rate_for(text):
    # Per-case rates from the case text ("#3"), lower when the prompt says "quickly".
    case = int(text.split("#")[1].split(":")[0])
    rate = 0.97 if case % 2 else 0.83
    if "quickly" in text:
        rate -= float(os.environ.get("INNER_DROP", "0.3"))
    return rate

@pytest.fixture
def llmops_model():
    log = os.environ.get("CALL_LOG")
    def model(text, rng):
        if log:
            with _lock, open(log, "a") as f:
                f.write("call\\n")
        return '{"category": "billing"}' if rng.random() < rate_for(text) else "sorry"
    return FunctionModel(model, id="sim")
"""

SUITE = """
import os
from llmops import Case, Prompt, checks

A = Prompt("triage", os.environ.get("PROMPT_A", "Ticket #{n}: classify it"))
B = Prompt("triage", os.environ.get("PROMPT_B", "Ticket #{n}: classify it"))
CASES = [Case({"n": i}, id=f"t{i}") for i in range(10)]

def test_a(llmops):
    llmops.sample(A, CASES).expect(checks.json_valid(), at_least=0.8)

def test_b(llmops):
    llmops.sample(B, CASES[:4]).expect(checks.json_valid(), at_least=0.75)
"""


@pytest.fixture
def gate(pytester, monkeypatch):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_suite=SUITE)
    monkeypatch.setenv("LLMOPS_CACHE_DIR", str(pytester.path / ".cache"))
    return pytester


def baseline(pytester, *args):
    first = pytester.runpytest("--llmops-report-json=base.json", *args)
    first.assert_outcomes(passed=2)
    return pytester.path / "base.json"


def test_1_the_gate_keys_on_the_test_so_the_test_that_regressed_fails(gate, monkeypatch):
    base = baseline(gate)
    monkeypatch.setenv("PROMPT_A", "Ticket #{n}: classify it quickly")
    result = gate.runpytest(f"--llmops-baseline={base}")
    result.assert_outcomes(passed=1, failed=1)  # test_b shares prompt name and check, and is untouched
    out = result.stdout.str()
    assert "FAILED test_suite.py::test_a" in out
    result.stdout.fnmatch_lines(["*REGRESSED triage * -> *: valid JSON (at least 80%): pass rate changed by -*"])
    result.stdout.fnmatch_lines(["test_b*triage@*unchanged*"])


def test_2_cases_pair_by_content_not_by_line(gate, monkeypatch):
    # Stored mode pairs with the baseline's own samples: reordering the cases must pair the
    # same tickets (the new prompt is as good), and an edited case is a new case.
    base = baseline(gate, "--llmops-tolerance=0.2", "--llmops-store-samples=300")
    gate.makepyfile(test_suite=SUITE.replace("range(10)", "reversed(range(10))"))
    monkeypatch.setenv("PROMPT_A", "Ticket #{n}: please classify it")
    result = gate.runpytest(f"--llmops-baseline={base}", "--llmops-baseline-mode=stored", "--llmops-tolerance=0.2")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["test_a*not worse*"])
    record_cases = json.loads(base.read_text())["results"][0]["cases"]
    assert len({c["key"] for c in record_cases}) == 10 and all(c["key"] for c in record_cases)


def test_3_a_requirement_the_baseline_has_but_this_session_skipped_fails_the_gate(gate):
    base = baseline(gate)
    skipped = gate.runpytest(f"--llmops-baseline={base}", "-k", "test_a")
    assert skipped.ret == 1
    skipped.stdout.fnmatch_lines(
        [
            "MISSING test_b: valid JSON at least 0.75 is in baseline file * but was not evaluated*",
            "baseline gate FAILED*",
        ]
    )
    allowed = gate.runpytest(f"--llmops-baseline={base}", "-k", "test_a", "--llmops-allow-missing=on")
    assert allowed.ret == 0
    allowed.stdout.fnmatch_lines(["not evaluated (allowed by --llmops-allow-missing): test_b*"])


def test_4_comparisons_are_in_words_never_ok(gate, monkeypatch):
    base = baseline(gate)
    monkeypatch.setenv("PROMPT_A", "Ticket #{n}: classify it, please")
    result = gate.runpytest(f"--llmops-baseline={base}", "-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*test_a: valid JSON -> PASS; vs baseline: not worse*"])
    assert "ok " not in result.stdout.str()


def test_5_a_bad_baseline_is_a_usage_error_before_any_model_call(gate, tmp_path, monkeypatch):
    log = tmp_path / "calls.log"
    monkeypatch.setenv("CALL_LOG", str(log))
    result = gate.runpytest("--llmops-baseline=nowhere.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--llmops-baseline nowhere.json: baseline file nowhere.json does not exist*"])
    unreachable = gate.runpytest_subprocess("--llmops-baseline=nightly", "--llmops-tracking-uri=http://127.0.0.1:9")
    assert unreachable.ret == pytest.ExitCode.USAGE_ERROR
    unreachable.stderr.fnmatch_lines(["*MLflow tracking server http://127.0.0.1:9 is unreachable*"])
    assert not log.exists()


def test_6_at_most_is_on_the_violation_scale_everywhere(pytester, monkeypatch):
    monkeypatch.setenv("LLMOPS_CACHE_DIR", str(pytester.path / ".cache"))
    pytester.makeconftest(
        """
import os, pytest
from llmops import FunctionModel

@pytest.fixture
def llmops_model():
    leak = float(os.environ.get("LEAK", "0.02"))
    return FunctionModel(lambda text, rng: "mail bob@example.com" if rng.random() < leak else "no", id="leaky")
"""
    )
    pytester.makepyfile(
        """
import os
from llmops import Case, Prompt, checks

P = Prompt("bot", os.environ.get("PROMPT", "Q: {q}"))

def test_pii(llmops):
    llmops.sample(P, Case({"q": "x"})).expect(checks.pii(), at_most=0.05)
"""
    )
    first = pytester.runpytest("--llmops-report-json=base.json", "--llmops-store-samples=400")
    first.assert_outcomes(passed=1)
    first.stdout.fnmatch_lines(["test_pii*personal data*(violations) <= 5%*5% vs 10%*PASS*"])
    rows = json.loads((pytester.path / "base.json").read_text())["results"][0]["samples"]
    assert {row["outcome"] for row in rows} <= {"clean", "violation"} and any(r["outcome"] == "clean" for r in rows)
    monkeypatch.setenv("LEAK", "0.3")
    monkeypatch.setenv("PROMPT", "Q: {q} (be chatty)")
    worse = pytester.runpytest("--llmops-baseline=base.json", "--llmops-baseline-mode=stored")
    worse.assert_outcomes(failed=1)
    worse.stdout.fnmatch_lines(["*violation rate changed by +*"])


def test_7_each_model_call_is_counted_once_and_cost_follows_the_tokens(pytester, tmp_path, monkeypatch):
    monkeypatch.setenv("LLMOPS_CACHE_DIR", str(pytester.path / ".cache"))
    log = tmp_path / "calls.log"
    pytester.makeconftest(
        f"""
import threading, pytest
from llmops.models import Completion

lock = threading.Lock()

class Priced:
    id = "priced"
    async def generate(self, messages, *, seed):
        with lock, open({str(log)!r}, "a") as f:
            f.write("call\\n")
        return Completion('{{"ok": 1}}', input_tokens=1000, output_tokens=100)

@pytest.fixture
def llmops_model():
    return Priced()
"""
    )
    pytester.makepyfile(
        """
from llmops import Case, Prompt, checks

def test_three_requirements_one_run(llmops):
    run = llmops.sample(Prompt("p", "{x}"), [Case({"x": i}) for i in range(5)])
    run.expect(checks.json_valid(), at_least=0.9)
    run.expect(checks.regex("ok"), at_least=0.9)
    run.expect(checks.pii(), at_most=0.05)
"""
    )
    result = pytester.runpytest("--llmops-price=1.0,10.0", "--llmops-report-json=r.json")
    result.assert_outcomes(passed=1)
    calls = len(log.read_text().splitlines())
    results = json.loads((pytester.path / "r.json").read_text())["results"]
    assert sum(r["calls"] for r in results) == calls
    assert results[1]["reused"] > 0 and results[1]["calls"] < results[1]["n"]
    tokens_in = sum(r["input_tokens"] for r in results)
    tokens_out = sum(r["output_tokens"] for r in results)
    assert (tokens_in, tokens_out) == (1000 * calls, 100 * calls)
    cost = sum(r["cost_usd"] for r in results)
    assert cost == pytest.approx((tokens_in * 1.0 + tokens_out * 10.0) / 1e6)
    result.stdout.fnmatch_lines([f"*; {calls} model calls;*cost ${cost:.4f}*"])


def test_8_a_check_that_raises_is_a_check_error_with_its_message(pytester, monkeypatch):
    monkeypatch.setenv("LLMOPS_CACHE_DIR", str(pytester.path / ".cache"))
    pytester.makepyfile(
        """
import pytest
from llmops import Case, FunctionModel, Prompt, check

@pytest.fixture
def llmops_model():
    return FunctionModel(lambda text, rng: "{}")

@check
def category():
    return lambda output: __import__("json").loads(output)["category"] == "billing"

def test_x(llmops):
    llmops.sample(Prompt("p", "{x}"), Case({"x": 1})).expect(category(), at_least=0.9)
"""
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*5 check errors left out*First check error: check category raised KeyError: 'category'*"]
    )
    assert "model error" not in result.stdout.str()


def test_9_no_inconclusive_verdicts_and_too_few_cases_is_an_error_before_sampling(gate, tmp_path, monkeypatch):
    result = gate.runpytest()
    summary = result.stdout.str().split("llmops summary")[1]
    assert "inconclusive" not in summary and "?" not in summary
    log = tmp_path / "calls.log"
    monkeypatch.setenv("CALL_LOG", str(log))
    inputs = gate.runpytest("--llmops-population=inputs")
    inputs.assert_outcomes(errors=2)
    inputs.stdout.fnmatch_lines(["*10 cases are too few to tell 80% from 70%*cases are needed (one sample each)*"])
    assert not log.exists()  # said before any model call


def test_10_the_default_tolerance_means_something_at_small_rates(pytester, monkeypatch):
    monkeypatch.setenv("LLMOPS_CACHE_DIR", str(pytester.path / ".cache"))
    pytester.makepyfile(
        """
import pytest
from llmops import Case, FunctionModel, Prompt, checks

@pytest.fixture
def llmops_model():
    return FunctionModel(lambda text, rng: "call 555-123-4567" if rng.random() < 0.08 else "no")

def test_pii(llmops):
    llmops.sample(Prompt("p", "{x}"), Case({"x": 1})).expect(checks.pii(), at_most=0.01)
"""
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)  # leaking 8% of the time passed "at most 1%" with tolerance 0.1
    result.stdout.fnmatch_lines(["*requirement at most 1%, tested 1% against 2% violations; FAIL*"])


def test_family_false_alarm_is_split_and_stated(gate):
    result = gate.runpytest("--llmops-family-false-alarm=0.02", "--llmops-report-json=r.json")
    results = json.loads((gate.path / "r.json").read_text())["results"]
    assert [r["false_alarm"] for r in results] == [0.005, 0.005]  # 2 tests: 1% each, halved for the first requirement
    result.stdout.fnmatch_lines(["family error rates of this session: a false alarm anywhere <= 1%*"])
