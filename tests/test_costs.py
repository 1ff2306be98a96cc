"""Prices, the session budget and the plan, as a user sees them."""

import json

import pytest

from llmops.costs import Budget, BudgetSpent, price_of, price_table
from llmops.errors import ConfigError
from llmops.stats import sequential_design


def test_prices_come_from_the_session_then_the_users_table_then_the_built_in_one(tmp_path):
    assert price_of("openai:gpt-4o-mini") == (0.15, 0.60)
    assert price_of("ChatOpenAI:gpt-4o-mini-2024-07-18") == (0.15, 0.60)  # a dated name, by its prefix
    assert price_of("ChatOpenAI:gpt-4o-2024-08-06") == (2.50, 10.00)  # not gpt-4o-mini's price
    assert price_of("local:smollm2?max_tokens=8") == (0.0, 0.0)
    assert price_of("acme:unheard-of") is None  # unknown: never $0
    table = tmp_path / "prices.json"
    table.write_text(json.dumps({"prices": {"unheard-of": [1, 2], "gpt-4o-mini": [9, 9]}}))
    assert price_of("acme:unheard-of", table_path=str(table)) == (1.0, 2.0)
    assert price_of("openai:gpt-4o-mini", table_path=str(table)) == (9.0, 9.0)
    assert price_of("openai:gpt-4o-mini", given=(1.0, 1.0), table_path=str(table)) == (1.0, 1.0)
    table.write_text("{not json")
    price_table.cache_clear()
    with pytest.raises(ConfigError, match=r"prices file .*prices.json: expected JSON"):
        price_of("acme:x", table_path=str(table))


def test_a_calls_budget_is_shared_through_its_file(tmp_path):
    path = tmp_path / "budget.json"
    a, b = Budget("calls", 10, path), Budget("calls", 10, path)
    a.reserve(6)
    with pytest.raises(BudgetSpent, match="budget of 10 calls is spent \\(6 calls made; 5 more were needed\\)"):
        b.reserve(5)
    b.reserve(4)
    a.refund(2)  # two of a's were replayed from the cache
    assert b.spent()["calls"] == 8


def test_a_dollar_budget_stops_once_spent(tmp_path):
    budget = Budget("usd", 0.01, tmp_path / "b.json")
    budget.reserve(100)
    budget.charge(100, 0.012)
    with pytest.raises(BudgetSpent, match=r"\$0.01 is spent"):
        budget.reserve(1)


SUITE = """
import os, threading
import pytest
from llmops import Case, FunctionModel, Prompt, checks

lock = threading.Lock()

@pytest.fixture
def llmops_model():
    def model(text, rng):
        with lock, open(os.environ["CALL_LOG"], "a") as f:
            f.write("call\\n")
        return "yes" if rng.random() < 0.85 else "no"
    return FunctionModel(model, id="sim")

@pytest.mark.parametrize("i", range(4))
def test_many(llmops, i):
    llmops.sample(Prompt("p", "{x}"), Case({"x": i})).expect(checks.exact("yes"), at_least=0.9)
"""


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one process", "xdist"])
def test_the_budget_stops_the_session_and_undecided_requirements_are_errors(pytester, tmp_path, monkeypatch, workers):
    log = tmp_path / "calls.log"
    monkeypatch.setenv("CALL_LOG", str(log))  # the subprocess (and its workers) inherit it
    pytester.makepyfile(test_budget=SUITE)
    run = pytester.runpytest_subprocess if workers else pytester.runpytest
    result = run("--llmops-budget=60", "--llmops-report-json=r.json", *workers)
    calls = len(log.read_text().splitlines())
    assert calls <= 60  # never more than the budget, across workers
    results = json.loads((pytester.path / "r.json").read_text())["results"]
    assert sum(r["calls"] for r in results) == calls
    stopped = [r for r in results if r["verdict"] == "ERROR"]
    assert stopped and all("budget of 60 calls is spent" in r["stopped"] for r in stopped)
    assert result.parseoutcomes().get("errors", 0) == len(stopped)  # ERROR, never PASS
    assert "budget of 60 calls is spent" in result.stdout.str()


def test_the_plan_says_what_each_requirement_would_cost_without_calling_a_model(pytester, tmp_path, monkeypatch):
    log = tmp_path / "calls.log"
    monkeypatch.setenv("CALL_LOG", str(log))
    pytester.makepyfile(test_budget=SUITE)
    result = pytester.runpytest("--llmops-plan=on", "--llmops-price=1,2")
    result.assert_outcomes(passed=4)
    assert not log.exists()  # no model call
    d = sequential_design(0.9, 0.1, 0.01, 0.05)
    expected = round(max(d.operating(p).expected_n for p in (0.9, 0.85, 0.8)))
    result.stdout.fnmatch_lines(
        [
            "*llmops plan*",
            "test*requirement*cases*expected calls*p95*max*",
            f"test_many?0?*exactly the expected answer >= 90%*1*{expected}*{d.calls_quantile(0.85, 0.95)}*{d.max_n}*unknown*",
            f"total*4 requirements*{4 * expected}*{4 * d.max_n}*unknown*unknown",
            "plan only: no model was called*",
        ]
    )
