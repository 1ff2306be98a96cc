"""Bad input that docs/errors.md lists and no other test covers: each gets a clear error that
names the thing and the fix, or is handled without harm."""

from __future__ import annotations

import json

import pytest
from fake_openai import FakeOpenAI

from llmops import Case, FunctionModel, Prompt, Session, checks
from llmops.errors import CaseFileError, ConfigError, ErrorBudgetExceeded, ModelError, PromptError
from llmops.models import CallableModel, resolve_model


@pytest.mark.parametrize(
    ("template", "why"),
    [
        ("Hello {name", "malformed template (expected '}' before end of string)"),
        ("Hello } there", "malformed template (Single '}' encountered in format string)"),
        ("Hello {0}", "template field {0} is not a plain variable name"),
    ],
)
def test_a_malformed_template_names_the_prompt_and_the_fix(template, why):
    with pytest.raises(PromptError) as e:
        Prompt("greeting", template)
    assert str(e.value).startswith(f"prompt 'greeting': {why}")
    assert str(e.value).endswith("use {name} for variables and {{ }} for literal braces")


def test_an_empty_case_list_is_an_error_before_any_call():
    calls = []
    session = Session(model=FunctionModel(lambda text, rng: calls.append(text) or "x"))
    with pytest.raises(ConfigError, match="no cases given: pass a Case, a list of cases or a case file"):
        session.sample(Prompt("p", "{q}"), [])
    with pytest.raises(ConfigError, match="case id 'a' appears more than once; give each case a unique id"):
        session.sample(Prompt("p", "{q}"), [Case({"q": 1}, id="a"), Case({"q": 2}, id="a")])
    assert calls == []


def test_an_empty_case_file_names_the_file(tmp_path):
    empty = tmp_path / "cases.jsonl"
    empty.write_text("\n")
    with pytest.raises(CaseFileError, match=r"case file .*cases.jsonl holds no cases"):
        Session(model=FunctionModel(lambda text, rng: "x")).sample(Prompt("p", "{q}"), empty)


def test_a_model_that_returns_non_utf8_bytes_is_an_error_never_a_pass():
    session = Session(model=CallableModel(lambda text: b"\xff\xfe{}", id="bytes-model"), retries=0)
    with pytest.raises(ErrorBudgetExceeded) as e:
        session.sample(Prompt("p", "{q}"), Case({"q": 1})).expect(checks.json_valid(), at_least=0.9)
    r = e.value.result
    assert r.verdict == "ERROR" and r.k == r.n == 0 and r.model_errors + r.unused == r.calls
    assert "MalformedResponse: model bytes-model returned bytes, not str" in r.message


def test_a_model_string_with_an_unknown_provider_names_the_model_and_the_providers():
    with pytest.raises(
        ModelError, match=r"(?s)model 'nosuch:model' could not be created: .*Supported providers: .*openai"
    ):
        resolve_model("nosuch:model")
    with pytest.raises(ModelError, match=r"model 'gpt-4o': use 'provider:model', e.g. 'openai:gpt-4o-mini'"):
        resolve_model("gpt-4o")


SUITE = """
import os
import pytest
from langchain_openai import ChatOpenAI
from llmops import Case, Prompt, checks

@pytest.fixture
def llmops_model():
    return ChatOpenAI(model="gpt-test", api_key="sk-bad-output-0123456789", base_url=os.environ["BASE_URL"])

def test_outputs(llmops):
    llmops.sample(Prompt("p", "say {x}"), Case({"x": 1})).expect(checks.json_valid(), at_least=0.8)
"""


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [
        ('{"text": "caf\udce9 \ud800"}', "PASS"),  # lone surrogates: what a bad decoder upstream leaves
        ("x" * 2_000_000, "FAIL"),  # 2 MB of output per sample
        ('{"big": "' + "y" * 1_000_000 + '"}', "PASS"),
    ],
    ids=["surrogates", "huge-fail", "huge-pass"],
)
def test_non_utf8_and_huge_outputs_are_judged_and_reported(pytester, monkeypatch, reply, verdict):
    """Every output channel (terminal, JSON, Markdown, HTML, the sqlite cache) takes them."""
    with FakeOpenAI(reply) as server:
        monkeypatch.setenv("BASE_URL", server.base_url)
        pytester.makepyfile(test_bad=SUITE)
        args = ["--llmops-report-json=r.json", "--llmops-report-md=r.md", "--llmops-report-html=r.html", "-v"]
        result = pytester.runpytest(*args)
        again = pytester.runpytest(*args)  # replayed from the cache
    outcomes = {"PASS": {"passed": 1}, "FAIL": {"failed": 1}}[verdict]
    result.assert_outcomes(**outcomes)
    again.assert_outcomes(**outcomes)
    report = (pytester.path / "r.json").read_text(encoding="utf-8")
    if "\udce9" in reply:  # each lone surrogate became U+FFFD, the replacement character
        assert "caf\ufffd \ufffd" in json.dumps(json.loads(report), ensure_ascii=False)
    (r,) = json.loads(report)["results"]
    assert r["verdict"] == verdict and r["replayed"] == r["n"] + r["unused"] and r["calls"] == 0
    assert (pytester.path / "r.md").stat().st_size < 200_000  # a PR comment stays postable
