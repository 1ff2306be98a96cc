"""The GEPA backend: GEPA's winner re-scored on llmops's held-out test split, within llmops's budgets."""

from __future__ import annotations

import random
import sys
import time

import pytest

from llmops import FunctionModel
from llmops.errors import ConfigError
from llmops.optimize import Budget, Problem, Search, optimize_with_gepa, split_cases
from llmops.optimize.backends import _Adapter
from llmops.optimize.evaluate import Evaluator
from llmops.optimize.simulate import SimulatedTask
from llmops.sampling import run_sync


class Counting:
    """The simulated model, counting calls and keeping the prompts it saw."""

    def __init__(self, task: SimulatedTask) -> None:
        self.task = task
        self.seen: list[str] = []
        self.model = FunctionModel(self, id="counting")

    def __call__(self, text: str, rng: random.Random) -> str:
        self.seen.append(text)
        return self.task._answer(text, rng)


def _problem(task: SimulatedTask, model, seed: int = 1, **kw) -> Problem:
    return Problem(
        prompt=task.regressed,
        baseline=task.baseline,
        cases=task.cases,
        requirements=[task.requirement],
        model=model,
        seed=seed,
        concurrency=64,
        **kw,
    )


def test_gepa_winner_is_scored_on_test_cases_gepa_never_saw_within_the_budgets():
    pytest.importorskip("gepa")
    task = SimulatedTask(1)
    counting = Counting(task)
    result = optimize_with_gepa(
        _problem(task, counting.model, test_units=50),
        task.rewriter(),
        budget=Budget(max_calls=1500, max_proposer_calls=40),
    )
    assert len(counting.seen) == result.calls <= 1500 and result.proposer_calls <= 40
    assert result.candidate is not None and result.recovery is not None
    assert result.test_calls == 50 * 3 and result.calls_by_purpose["test"] == result.test_calls
    test_questions = {str(c.inputs["question"]) for c in result.split.test}
    search_prompts = counting.seen[: result.calls - result.test_calls]
    assert not any(q + "\n" in t or t.endswith(q) for t in search_prompts for q in test_questions)
    assert any(q in t for t in counting.seen[result.calls - result.test_calls :] for q in test_questions)
    (score,) = result.test_scores
    assert score.n == 50 and score.regressed_rate < score.rate
    rows = result.trajectory
    assert rows[0].proposer == "regressed" and rows[0].version == task.regressed.version
    assert [r.status for r in rows].count("gepa best") == 1
    best = next(r for r in rows if r.status == "gepa best")
    assert best.version == result.candidate.version and best.validation is not None
    assert result.settings["backend"] == "gepa" and result.settings["reflection_model"] == "scripted-rewriter"
    assert "optimizer: candidate support-bot@" in result.summary() and "on test" in result.summary()


def test_gepa_reflection_budget_stops_it():
    pytest.importorskip("gepa")
    task = SimulatedTask(2)
    result = optimize_with_gepa(
        _problem(task, task.model), task.rewriter(), budget=Budget(max_calls=5000, max_proposer_calls=3)
    )
    assert result.proposer_calls <= 3 and result.calls < 5000 and result.stopped_because == "budget"


def test_a_gepa_text_that_drops_a_variable_scores_zero_without_a_model_call():
    task = SimulatedTask(0)
    counting = Counting(task)
    problem = _problem(task, counting.model)
    ev = Evaluator(problem, split_cases(problem.cases, 0), Budget(), Search(), time.monotonic())
    adapter = _Adapter(problem, ev)
    batch = list(ev.split.train[:3])
    out = adapter.evaluate(batch, {"prompt": task.regressed.text.replace("{question}", "the question")}, True)
    assert out.scores == [0.0, 0.0, 0.0] and ev.calls == 0 and not counting.seen
    assert "keep {question}" in out.trajectories[0]["feedback"]
    good = adapter.evaluate(batch, {"prompt": task.regressed.text}, True)
    assert ev.calls == 3 == len(counting.seen) and len(good.scores) == 3
    again = adapter.evaluate(batch, {"prompt": task.regressed.text})
    assert ev.calls == 6 and again.trajectories is None  # each metric call is a fresh sample
    rows = adapter.make_reflective_dataset({"prompt": task.regressed.text}, good, ["prompt"])["prompt"]
    assert rows[0]["Inputs"] == {"question": batch[0].inputs["question"]} and rows[0]["Feedback"]


def test_without_gepa_installed_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "gepa", None)  # import gepa now raises ImportError
    task = SimulatedTask(0)
    with pytest.raises(ConfigError, match=r"pip install 'llmops\[gepa\]'"):
        optimize_with_gepa(_problem(task, task.model))


def test_gepa_reflects_with_a_real_langchain_chat_model_over_http():
    pytest.importorskip("gepa")
    from fake_openai import FakeOpenAI
    from langchain_openai import ChatOpenAI

    task = SimulatedTask(1)
    scripted = task.rewriter().fn  # the same edits, answered over HTTP by the loopback server
    rng = random.Random(0)

    def reply(request: dict) -> str:
        return scripted("\n".join(str(m["content"]) for m in request["messages"]), rng)

    with FakeOpenAI(reply) as server:
        model = ChatOpenAI(model="gpt-test", api_key="sk-test-key", base_url=server.base_url, max_retries=0)
        result = optimize_with_gepa(
            _problem(task, task.model, test_units=50), model, budget=Budget(max_calls=1200, max_proposer_calls=12)
        )
        run_sync(model.root_async_client.close())  # the pooled connection, on the loop that opened it
    assert server.requests == result.proposer_calls <= 12 and result.calls <= 1200
    asks = [str(body["messages"][-1]["content"]) for _, body in server.received]
    assert all("Provide the new instructions within ``` blocks" in a and "{question}" in a for a in asks)
    assert any("exactly the expected answer" in a for a in asks)  # the checks' reasons are GEPA's feedback
    assert result.settings["reflection_model"] != "scripted-rewriter" and result.test_scores
