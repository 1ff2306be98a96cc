"""The optimizer as a user sees it: triggered by a regression, proposing, never applying."""

import json

SUITE = """
import os
import pytest
from llmops import checks
from llmops.optimize.simulate import SimulatedTask

TASK = SimulatedTask(seed=1)
PROMPT = TASK.baseline if os.environ.get("WHICH") == "baseline" else TASK.regressed

@pytest.fixture
def llmops_model():
    return TASK.model

def test_support_bot(llmops):
    llmops.sample(PROMPT, TASK.cases).expect(checks.exact(), at_least=0.5)
"""


def test_a_regression_starts_the_search_and_the_candidate_is_proposed_not_applied(pytester, monkeypatch):
    pytester.makepyfile(test_bot=SUITE)
    monkeypatch.setenv("WHICH", "baseline")
    pytester.runpytest("--llmops-report-json=base.json").assert_outcomes(passed=1)
    monkeypatch.setenv("WHICH", "regressed")
    off = pytester.runpytest("--llmops-baseline=base.json", "--llmops-report-json=off.json")
    off.assert_outcomes(failed=1)
    assert "candidates" not in json.loads((pytester.path / "off.json").read_text())
    source = (pytester.path / "test_bot.py").read_text()
    on = pytester.runpytest(
        "--llmops-baseline=base.json",
        "--llmops-optimize=on-regression",
        "--llmops-report-json=on.json",
        "--llmops-report-md=on.md",
    )
    on.assert_outcomes(failed=1)  # the test's own verdict is unchanged
    record = json.loads((pytester.path / "on.json").read_text())
    (candidate,) = record["candidates"]
    assert candidate["prompt"] == "support-bot" and candidate["calls"] > 0
    assert candidate.get("version"), candidate["message"]  # the simulated regression is recoverable
    assert (pytester.path / ".llmops" / "candidates" / "support-bot.txt").exists()
    assert (pytester.path / "test_bot.py").read_text() == source  # the user's files are never written
    on.stdout.fnmatch_lines(
        ["*llmops candidate for support-bot*", "optimizer: candidate support-bot@*", "*never applied*"]
    )
    assert "```diff" in (pytester.path / "on.md").read_text()


def test_llmops_optimize_runs_the_named_tests_with_the_optimizer_on(pytester, monkeypatch):
    import subprocess
    import sys

    pytester.makepyfile(test_bot=SUITE)
    monkeypatch.setenv("WHICH", "regressed")
    monkeypatch.setenv("LLMOPS_TRACKING", "off")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "llmops.cli",
            "optimize",
            "test_bot.py::test_support_bot",
            "--pytest-args",
            "-p no:cacheprovider",
        ],
        cwd=pytester.path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 1, out.stdout[-2000:]  # the test still fails: a candidate is only proposed
    assert "llmops candidate for support-bot" in out.stdout  # on-fail: no baseline needed
    assert (pytester.path / ".llmops" / "candidates" / "support-bot.txt").exists()


def test_the_optimizer_budget_stops_the_search(pytester, monkeypatch):
    pytester.makepyfile(test_bot=SUITE)
    monkeypatch.setenv("LLMOPS_TRACKING", "off")
    monkeypatch.setenv("WHICH", "baseline")
    pytester.runpytest("--llmops-report-json=base.json").assert_outcomes(passed=1)
    monkeypatch.setenv("WHICH", "regressed")
    run = pytester.runpytest(
        "--llmops-baseline=base.json",
        "--llmops-optimize=on-regression",
        "--llmops-optimizer-budget=400",
        "--llmops-report-json=on.json",
    )
    run.assert_outcomes(failed=1)
    (candidate,) = json.loads((pytester.path / "on.json").read_text())["candidates"]
    assert candidate["stopped_because"] == "budget", candidate["message"]
    assert candidate["result"]["stop_detail"] == "model calls"
    assert 0 < candidate["calls"] <= 400
    assert "registry" not in candidate  # tracking is off: nothing was registered


def test_a_bad_optimizer_budget_is_rejected_quoting_the_value(pytester):
    pytester.makepyfile(test_bot=SUITE)
    result = pytester.runpytest("--llmops-optimizer-budget=lots")
    assert result.ret == 4  # a usage error, before any test runs
    result.stderr.fnmatch_lines(["*optimizer_budget: expected a int, got 'lots'*"])
    pytester.makeini("[pytest]\nllmops_optimizer_budget = 0\n")
    result = pytester.runpytest()
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*optimizer_budget: expected a positive int, got '0'*"])
