"""A model that fails permanently is not called again: a 401 on every call costs a few calls, not all."""

import json

from fake_openai import FakeOpenAI

SUITE = """
import os
import pytest
from langchain_openai import ChatOpenAI
from llmops import Case, Prompt, checks

@pytest.fixture
def llmops_model():
    return ChatOpenAI(model="gpt-test", api_key="sk-wrong-key-0123456789abcdef", base_url=os.environ["BASE_URL"], max_retries=0)

@pytest.mark.parametrize("i", range(6))
def test_many(llmops, i):
    llmops.sample(Prompt("p", "question {x}"), Case({"x": i})).expect(checks.json_valid(), at_least=0.9)
"""


def test_a_401_on_every_call_stops_the_model_for_the_session(pytester, monkeypatch):
    with FakeOpenAI(behaviour="401") as server:
        monkeypatch.setenv("BASE_URL", server.base_url)
        pytester.makepyfile(test_doomed=SUITE)
        result = pytester.runpytest("--llmops-report-json=r.json", "--llmops-concurrency=2")
        requests = server.requests
    result.assert_outcomes(errors=6)  # every requirement is an ERROR, none a PASS or FAIL
    # Three permanent errors in a row stop the model; a batch in flight may add one more.
    assert requests <= 4, requests
    results = json.loads((pytester.path / "r.json").read_text())["results"]
    assert sum(r["calls"] for r in results) == requests  # every call accounted for, once
    later = [r for r in results if r["calls"] == 0]
    assert len(later) >= 5 and all("not called again in this session" in r["stopped"] for r in later)
    assert "401" in later[0]["stopped"] or "AuthenticationError" in later[0]["stopped"]
    assert "sk-wrong-key" not in result.stdout.str()  # the echoed key stays redacted
    result.stdout.fnmatch_lines(["*not called again in this session after * permanent errors in a row*"])
