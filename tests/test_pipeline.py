"""Keeping the pipe full: calls in flight while results are observed in stream order, one
session-wide limit on calls in flight, and small per-test report properties."""

import asyncio
import json

from conftest import bernoulli_model

from llmops import Case, Prompt, Session, checks
from llmops.models import Completion
from llmops.sampling import Limit, Request, Sampler

P = Prompt("p", "Q: {q}")
ONE = Case({"q": "x"}, id="only")


class HeldFirst:
    """The first call waits until `after` later calls have finished (at most 5 s, then gives up)."""

    id = "held-first"

    def __init__(self, after: int) -> None:
        self.after = after
        self.started = 0
        self.finished = 0
        self.released: asyncio.Event | None = None
        self.waited_for_others = False

    async def generate(self, messages, *, seed):
        self.started += 1
        if self.released is None:
            self.released = asyncio.Event()
            try:
                await asyncio.wait_for(self.released.wait(), 5)
                self.waited_for_others = True
            except TimeoutError:
                pass
        else:
            self.finished += 1
            if self.finished >= self.after:
                self.released.set()
        return Completion('{"ok": true}', 3, 2)


def test_calls_keep_flowing_while_the_first_one_is_slow():
    # The sequential test observes the first sample first, but does not wait for it to draw
    # more: calls after the first batch start (and finish) while the first is in flight.
    model = HeldFirst(after=6)
    r = Session(model=model, concurrency=4, overshoot=3).sample(P, ONE).evaluate(checks.json_valid(), at_least=0.9)
    assert model.waited_for_others  # 6 later calls finished while the first one waited (4 in flight at most)
    assert r.passed and r.calls == r.n + r.unused


def test_overshoot_changes_calls_never_verdicts():
    # Samples are seeded by (seed, prompt version, case, index) and observed in stream order:
    # drawing further ahead leaves every verdict and count the same, and reports what it drew.
    for p, seed in ((0.97, 1), (0.85, 2), (0.9, 3)):
        base = Session(model=bernoulli_model(p), seed=seed).sample(P, ONE)
        ahead = Session(model=bernoulli_model(p), seed=seed, concurrency=16, overshoot=8).sample(P, ONE)
        a = base.evaluate(checks.json_valid(), at_least=0.9)
        b = ahead.evaluate(checks.json_valid(), at_least=0.9)
        assert (a.verdict, a.k, a.n, a.errors) == (b.verdict, b.k, b.n, b.errors)
        assert a.unused == 0 and a.calls == a.n  # by default nothing is drawn that could not matter
        assert b.calls == b.n + b.unused and 0 <= b.unused <= 8  # the overshoot is bounded and reported


class Counting:
    id = "counting"

    def __init__(self) -> None:
        self.now = 0
        self.most = 0

    async def generate(self, messages, *, seed):
        self.now += 1
        self.most = max(self.most, self.now)
        await asyncio.sleep(0.001)
        self.now -= 1
        return Completion("ok")


def test_the_session_limit_bounds_calls_in_flight_across_samplers():
    model = Counting()
    limit = Limit(3)
    one, two = Sampler(model, concurrency=8, limit=limit), Sampler(model, concurrency=8, limit=limit)
    requests = {"v": [Request("c", i, [("human", "hi")]) for i in range(40)]}
    futures = [*one.submit(requests)["v"], *two.submit(requests)["v"]]
    assert all(f.result().output == "ok" for f in futures)
    assert model.most == 3  # 80 calls from two samplers, never more than the session's 3 at once


def test_a_cancelled_request_is_never_called():
    model = Counting()
    sampler = Sampler(model, concurrency=1)
    futures = sampler.submit({"v": [Request("c", i, [("human", "hi")]) for i in range(50)]})["v"]
    cancelled = sum(f.cancel() for f in futures[10:])
    drawn = [f.result() for f in futures if not f.cancelled()]
    assert cancelled > 0 and len(drawn) == 50 - cancelled and all(s.output == "ok" for s in drawn)


def test_report_properties_carry_counts_and_the_reports_still_have_every_row(pytester):
    pytester.makeconftest(
        """
import json
import pytest
from llmops import FunctionModel

@pytest.fixture
def llmops_model():
    return FunctionModel(lambda text, rng: '{"ok": 1}' if rng.random() < 0.97 else "no")

def pytest_runtest_logreport(report):
    if report.when == "call":
        with open("properties.jsonl", "a") as f:
            for k, v in report.user_properties:
                f.write(json.dumps([k, len(v), json.loads(v).get("samples") if k == "llmops_result" else None]) + "\\n")
"""
    )
    pytester.makepyfile(
        """
from llmops import Case, Prompt, checks

def test_many(llmops):
    llmops.sample(Prompt("p", "Q: {q}"), Case({"q": "x"})).expect(checks.json_valid(), at_least=0.9)
"""
    )
    result = pytester.runpytest("--llmops-report-json=r.json", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    (prop,) = [json.loads(line) for line in (pytester.path / "properties.jsonl").read_text().splitlines()]
    (r,) = json.loads((pytester.path / "r.json").read_text())["results"]
    assert prop[0] == "llmops_result" and prop[2] == [] and prop[1] < 4000  # no rows on the report
    assert len(r["samples"]) == r["n"] + r["errors"] > 20 and "samples_ref" not in r  # the report has them all
