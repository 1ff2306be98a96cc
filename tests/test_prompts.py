import pytest
from langchain_core.prompts import ChatPromptTemplate

from llmops import Prompt
from llmops.errors import PromptError


def test_variables_are_known_up_front_and_version_is_a_content_hash():
    p = Prompt("triage", "Ticket: {ticket}\nLanguage: {lang} {{literal}}", system="You are {role}.")
    assert p.variables == ("role", "ticket", "lang")
    assert (
        p.version
        == Prompt("triage", "Ticket: {ticket}\nLanguage: {lang} {{literal}}", system="You are {role}.").version
    )
    assert p.version != Prompt("triage", "Ticket: {ticket}\nLang: {lang} {{literal}}", system="You are {role}.").version
    assert p.render({"role": "a bot", "ticket": "hi", "lang": "en"}) == [
        ("system", "You are a bot."),
        ("human", "Ticket: hi\nLanguage: en {literal}"),
    ]


def test_missing_and_unknown_variables_name_the_prompt_the_case_and_the_variable():
    p = Prompt("triage", "Ticket: {ticket}")
    with pytest.raises(PromptError, match=r"prompt 'triage' needs variable 'ticket'.*case 'c1'"):
        p.check_inputs({"body": "x"}, "c1")
    with pytest.raises(PromptError, match=r"case 'c2' supplies 'extra'.*prompt 'triage'"):
        p.check_inputs({"ticket": "x", "extra": 1}, "c2")


def test_langchain_chat_prompt_template():
    t = ChatPromptTemplate.from_messages([("system", "Be {tone}."), ("human", "{question}")])
    p = Prompt("qa", t)
    assert set(p.variables) == {"tone", "question"}
    assert p.render({"tone": "brief", "question": "2+2?"}) == [("system", "Be brief."), ("human", "2+2?")]
    t2 = ChatPromptTemplate.from_messages([("system", "Be {tone}!"), ("human", "{question}")])
    assert Prompt("qa", t2).version != p.version


def test_bad_templates_are_rejected():
    with pytest.raises(PromptError, match="plain variable"):
        Prompt("x", "Hello {0}")
    with pytest.raises(PromptError, match="must be a str"):
        Prompt("x", 42)
