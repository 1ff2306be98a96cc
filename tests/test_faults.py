"""Provider faults against the real client: LangChain's ChatOpenAI talking to the loopback server.

Every fault the server injects is raised by the real client as what it is, classified as
transient or permanent, retried by llmops alone (the client's own retries are off), and
every sample is accounted for once: the server's request log agrees with llmops's counts.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter, defaultdict

import pytest
from fake_openai import FAULTS, FakeOpenAI

from llmops.models import resolve_model, without_client_retries
from llmops.sampling import Request, Sampler, is_transient, retry_after, run_sync

# What the real client (langchain-openai + openai) raises for each fault, non-streaming and
# streaming, and whether llmops retries it.
RAISED = {
    "401": ("OpenAIAuthenticationError", "OpenAIAuthenticationError", False),
    "429": ("OpenAIRateLimitError", "OpenAIRateLimitError", True),
    "500": ("OpenAIAPIError", "OpenAIAPIError", True),  # openai.InternalServerError
    "502": ("OpenAIAPIError", "OpenAIAPIError", True),
    "503": ("OpenAIAPIError", "OpenAIAPIError", True),
    "timeout": ("OpenAITimeoutError", "OpenAITimeoutError", True),  # the client's own timeout
    "reset": ("OpenAIConnectionError", "OpenAIConnectionError", True),
    "malformed": ("JSONDecodeError", "ValueError", True),  # streamed: "No generations found in stream."
    "empty_choices": ("IndexError", "ValueError", True),
}


def chat(base_url: str, **kw):
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(model="gpt-test", api_key="sk-fault-test-0123456789abcdef", base_url=base_url, **kw)


@pytest.mark.parametrize("streaming", [False, True], ids=["plain", "streamed"])
def test_each_fault_is_raised_by_the_real_client_and_classified(streaming):
    assert set(RAISED) | {"slow_stream"} == set(FAULTS)
    with FakeOpenAI(reply="hi there", hang=3, stream_delay=0.02, retry_after=0.5) as fake:
        user = chat(fake.base_url, timeout=0.5, streaming=streaming)  # the client's default: max_retries 2
        model = resolve_model(user)
        for fault, (plain, streamed, transient) in RAISED.items():
            fake.queue(fault)
            before = fake.requests
            with pytest.raises(Exception) as raised:
                run_sync(model.generate([("human", "hello")], seed=0))
            name = type(raised.value).__name__
            if fault == "timeout" and name == "ReadTimeout":  # seen unwrapped (httpx's) in a loaded full run
                name = "OpenAITimeoutError"
            assert name == (streamed if streaming else plain), fault
            assert is_transient(raised.value) is transient, fault
            assert fake.requests - before == 1, f"{fault}: the client retried by itself"
            if fault == "429":
                assert retry_after(raised.value) == 0.5
        fake.queue("slow_stream")
        assert run_sync(model.generate([("human", "hello")], seed=0)).text == "hi there"
    # The user's object is untouched: llmops used a copy without the client's retries.
    assert user.max_retries is None and user.root_async_client.max_retries == 2
    assert model.runnable is not user and model.runnable.root_async_client.max_retries == 0


def test_without_client_retries_keeps_the_model_and_is_made_once():
    with FakeOpenAI() as fake:
        user = chat(fake.base_url, temperature=0.3, max_retries=5)
        copy = without_client_retries(user)
        assert copy is without_client_retries(user)  # one copy per model object
        assert (copy.model_name, copy.temperature, copy.openai_api_base) == ("gpt-test", 0.3, fake.base_url)
        assert copy.openai_api_key.get_secret_value() == user.openai_api_key.get_secret_value()
        assert user.max_retries == 5 and copy.max_retries == 0 and copy.root_client.max_retries == 0
        already = chat(fake.base_url, max_retries=0)
        assert without_client_retries(already) is already


def test_a_model_inside_a_binding_or_a_chain_loses_its_client_retries_too():
    from langchain_core.runnables import RunnableLambda

    with FakeOpenAI(reply="hi") as fake:
        user = chat(fake.base_url)
        bound = user.bind(stop=["never"])
        chain = RunnableLambda(lambda messages: messages) | bound | RunnableLambda(lambda message: message)
        for wrapped in (bound, chain):
            model = resolve_model(wrapped)
            fake.queue("500")
            with pytest.raises(Exception, match="Error code: 500"):
                run_sync(model.generate([("human", "hello")], seed=0))
            assert fake.requests == 1, "the client retried by itself"
            assert run_sync(model.generate([("human", "hello")], seed=0)).text == "hi"
            fake.log.clear()
        assert bound.bound is user and chain.middle[0] is bound  # the user's objects are unchanged
        assert user.root_async_client.max_retries == 2


def test_sampler_retries_every_fault_alone_and_counts_each_request(quick_backoff):
    """Mixed faults at 40%: each request on the server is one attempt in llmops, retries are
    bounded, Retry-After is waited for, and no errored sample carries an output."""
    faults = {
        "429": 0.1,
        "500": 0.05,
        "502": 0.05,
        "503": 0.05,
        "reset": 0.05,
        "malformed": 0.05,
        "empty_choices": 0.05,
    }
    with FakeOpenAI(reply="fine", faults=faults, seed=3, retry_after=0.2) as fake:
        sampler = Sampler(resolve_model(chat(fake.base_url)), concurrency=4, retries=2, timeout=5)
        requests = [Request(f"c{i}", 0, [("human", f"question {i}")]) for i in range(60)]
        samples = sampler.draw(requests)
        log = list(fake.log)
    assert [s.case_id for s in samples] == [r.case_id for r in requests]  # one sample per request, in order
    assert sum(s.attempts for s in samples) == len(log)  # llmops's attempts are the server's requests
    assert all(1 <= s.attempts <= 3 for s in samples)  # bounded by retries=2
    assert all((s.output is None) == (s.error is not None) for s in samples)  # an answer or an error, never both
    assert any(s.attempts > 1 for s in samples) and sum(s.output == "fine" for s in samples) >= 48
    by_text = defaultdict(list)
    for entry in log:
        by_text[entry.text].append(entry)
    for sample, request in zip(samples, requests, strict=True):
        tries = by_text[request.messages[0][1]]
        assert len(tries) == sample.attempts
        assert (tries[-1].behaviour in ("ok", "slow_stream")) == (sample.error is None)
        for before, after in itertools.pairwise(tries):
            if before.behaviour == "429":  # the server said when to come back
                assert after.at - before.at >= 0.2
    assert len({entry.behaviour for entry in log}) >= 6  # the faults really were injected


def test_retry_after_in_seconds_or_as_an_http_date():
    import email.utils
    import time
    from types import SimpleNamespace

    def raised(value):
        return SimpleNamespace(response=SimpleNamespace(headers={"retry-after": value}))

    assert retry_after(raised("2.5")) == 2.5
    in_a_minute = email.utils.formatdate(time.time() + 60, usegmt=True)
    assert 55 <= retry_after(raised(in_a_minute)) <= 60
    assert retry_after(raised(email.utils.formatdate(time.time() - 60, usegmt=True))) == 0.0  # past: at once
    assert retry_after(raised("soon")) is None and retry_after(raised("Mon, 99 Foo 2026")) is None


def test_a_long_retry_after_is_capped(quick_backoff):
    with FakeOpenAI(reply="fine", retry_after=3600) as fake:
        fake.queue("429")
        sampler = Sampler(resolve_model(chat(fake.base_url)), retries=1, backoff_max=0.1)
        (sample,) = sampler.draw([Request("c", 0, [("human", "hi")])])
        gap = fake.log[1].at - fake.log[0].at
    assert sample.output == "fine" and sample.attempts == 2
    assert gap < 60  # waited the cap (0.1 s), not the hour the server asked for
    assert sampler.max_call_seconds == 2 * sampler.timeout + 0.1


SUITE = """
import os
import pytest
from langchain_openai import ChatOpenAI
from llmops import Case, Prompt, checks

@pytest.fixture
def llmops_model():
    # the client's defaults (max_retries=2): llmops turns its retries off and owns them
    return ChatOpenAI(model="gpt-test", api_key="sk-fault-suite-0123456789", base_url=os.environ["BASE_URL"])

@pytest.mark.parametrize("kind", ["good", "fine", "bad", "broken"])
def test_gate(llmops, kind):
    llmops.sample(Prompt("p", "answer for {kind}"), Case({"kind": kind})).expect(checks.json_valid(), at_least=0.8)
"""


def _reply(request):
    text = request["messages"][-1]["content"]
    return "not json" if ("bad" in text or "broken" in text) else '{"ok": true}'


def run_suite(pytester, monkeypatch, *args, faults=None, seed=0):
    """The suite against a fault server; returns (pytest result, results by test, requests seen, log)."""
    with FakeOpenAI(_reply, faults=faults, seed=seed, retry_after=0.05, hang=5, stream_delay=0.01) as server:
        monkeypatch.setenv("BASE_URL", server.base_url)
        pytester.makepyfile(test_suite=SUITE)
        out = pytester.runpytest(
            "--llmops-report-json=r.json", "--llmops-cache=off", "--llmops-timeout=2", "-p", "no:randomly", *args
        )
        log = list(server.log)
    results = json.loads((pytester.path / "r.json").read_text())["results"]
    return out, {r["test_id"].split("[")[-1].rstrip("]"): r for r in results}, log


def reconciled(results: dict, log: list) -> None:
    """The server's requests for each test are that test's calls plus retries."""
    seen = Counter(entry.text.removeprefix("answer for ") for entry in log)
    assert dict(seen) == {name: r["calls"] + r["retries"] for name, r in results.items()}, log


def accounted(results: dict) -> None:
    """Every sample once: looked at (pass, fail or error) or drawn and not looked at."""
    for name, r in results.items():
        assert r["n"] + r["errors"] + r["unused"] == r["calls"] + r["replayed"] + r["reused"], name
        assert r["errors"] == r["model_errors"] + r["check_errors"] and 0 <= r["k"] <= r["n"], name


MIXED = {"429": 0.04, "500": 0.03, "502": 0.02, "503": 0.02, "reset": 0.02, "malformed": 0.02}
MIXED |= {"empty_choices": 0.02, "timeout": 0.01, "slow_stream": 0.02}


def test_faults_change_no_verdict_and_every_request_is_counted(pytester, monkeypatch, quick_backoff):
    _, clean, clean_log = run_suite(pytester, monkeypatch)
    verdicts = {name: r["verdict"] for name, r in clean.items()}
    assert verdicts == {"good": "PASS", "fine": "PASS", "bad": "FAIL", "broken": "FAIL"}
    reconciled(clean, clean_log)

    # 20% of requests fail in nine ways; llmops retries them (3 retries by default).
    out, faulty, log = run_suite(pytester, monkeypatch, faults=MIXED, seed=1)
    assert {name: r["verdict"] for name, r in faulty.items()} == verdicts
    reconciled(faulty, log)  # the server agrees with llmops, test by test
    accounted(faulty)
    retries = sum(r["retries"] for r in faulty.values())
    assert retries >= sum(e.behaviour not in ("ok", "slow_stream") for e in log) - 4  # only last attempts go unretried
    out.stdout.fnmatch_lines([f"*model calls, {retries} retries ({len(log)} requests to the model)*"])

    # No retries: the faults become error samples, left out of the verdicts, never passes.
    out, errored, log = run_suite(
        pytester, monkeypatch, "--llmops-retries=0", "--llmops-error-budget=0.5", faults=MIXED
    )
    assert {name: r["verdict"] for name, r in errored.items()} == verdicts
    reconciled(errored, log)
    assert not any(r["retries"] for r in errored.values())
    assert sum(r["model_errors"] for r in errored.values()) > 0
    assert all(r["errors"] <= 0.5 * (r["n"] + r["errors"]) for r in errored.values())
    assert errored["bad"]["k"] == errored["broken"]["k"] == 0  # an error is never a pass
    accounted(errored)


def test_over_the_error_budget_the_requirement_is_an_error_with_the_reason(pytester, monkeypatch, quick_backoff):
    out, results, log = run_suite(pytester, monkeypatch, "--llmops-retries=0", faults={"503": 0.6}, seed=2)
    out.assert_outcomes(errors=4)
    assert {r["verdict"] for r in results.values()} == {"ERROR"}
    reconciled(results, log)
    accounted(results)
    out.stdout.fnmatch_lines(["*ended in errors, more than the error budget 10%*OpenAIAPIError*503*"])


def test_a_provider_that_never_answers_ends_within_the_configured_bound(pytester, monkeypatch, quick_backoff):
    """Every call times out: each makes exactly retries+1 attempts of at most the timeout each
    (``Sampler.max_call_seconds``), the budget stops each requirement, and the session ends."""
    out, results, log = run_suite(
        pytester, monkeypatch, "--llmops-retries=1", "--llmops-timeout=0.5", faults={"timeout": 1}
    )
    out.assert_outcomes(errors=4)
    calls = sum(r["calls"] for r in results.values())
    assert sum(r["retries"] for r in results.values()) == calls  # every call: 2 attempts, no more
    # An attempt cut off by the timeout before the server read it is not in the server's log.
    assert calls <= len(log) <= 2 * calls
    assert all("timed out after 0.5s" in r["first_error"] for r in results.values())
