import asyncio

import pytest

from llmops.models import CallableModel, Completion, MalformedResponse
from llmops.sampling import Request, Sampler, is_transient, retry_after

REQ = [Request("c", 0, [("human", "hi")])]


class Flaky:
    """Fails with the given exceptions first, then answers."""

    id = "flaky"

    def __init__(self, *errors):
        self.errors = list(errors)
        self.calls = 0

    async def generate(self, messages, *, seed):
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return Completion("ok", 3, 1)


class StatusError(Exception):
    def __init__(self, status_code, headers=None):
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code
        self.response = type("R", (), {"status_code": status_code, "headers": headers or {}})()


class AuthenticationError(Exception):
    pass


@pytest.fixture
def no_sleep(monkeypatch):
    slept = []

    async def fake_sleep(d):
        slept.append(d)

    monkeypatch.setattr("llmops.sampling.asyncio.sleep", fake_sleep)
    return slept


def test_transient_errors_are_retried_then_answered(no_sleep):
    m = Flaky(ConnectionError("reset"), StatusError(503), MalformedResponse("garbage body"))
    (s,) = Sampler(m, retries=3).draw(REQ)
    assert s.output == "ok" and s.error is None and s.attempts == 4 and m.calls == 4
    assert (s.input_tokens, s.output_tokens) == (3, 1)
    assert len(no_sleep) == 3


def test_permanent_errors_are_not_retried(no_sleep):
    for exc in (StatusError(401), StatusError(400), AuthenticationError("bad key")):
        m = Flaky(exc)
        (s,) = Sampler(m, retries=3).draw(REQ)
        assert s.output is None and "permanent" in s.error and m.calls == 1


def test_exhausted_retries_become_an_error_sample(no_sleep):
    m = Flaky(*[StatusError(500)] * 5)
    (s,) = Sampler(m, retries=2).draw(REQ)
    assert s.error is not None and "after 3 attempts" in s.error and m.calls == 3


def test_retry_after_is_honoured(no_sleep):
    m = Flaky(StatusError(429, {"retry-after": "7"}))
    Sampler(m, retries=1, backoff_base=0.01).draw(REQ)
    assert no_sleep == [7.0]
    assert retry_after(StatusError(429, {"retry-after": "x"})) is None
    assert is_transient(StatusError(429)) and not is_transient(StatusError(403))


def test_timeout_is_an_error_not_a_hang(no_sleep):
    async def slow(text):
        await asyncio.Event().wait()

    (s,) = Sampler(CallableModel(slow), timeout=0.05, retries=1).draw(REQ)
    assert s.error is not None and "timed out" in s.error


def test_concurrency_is_bounded():
    state = {"now": 0, "peak": 0}

    async def fn(text):
        state["now"] += 1
        state["peak"] = max(state["peak"], state["now"])
        await asyncio.sleep(0.01)
        state["now"] -= 1
        return "x"

    reqs = [Request("c", i, [("human", "hi")]) for i in range(12)]
    out = Sampler(CallableModel(fn), concurrency=3).draw(reqs)
    assert [s.index for s in out] == list(range(12)) and state["peak"] == 3


def test_non_text_answer_is_malformed_and_retried(no_sleep):
    (s,) = Sampler(CallableModel(lambda text: 42), retries=1).draw(REQ)
    assert "MalformedResponse" in s.error and s.attempts == 2
