import pytest
from pydantic import BaseModel

from llmops import Case, check, checks
from llmops.errors import CheckError

CASE = Case({"q": "x"}, expected="billing")
SCHEMA = {"type": "object", "properties": {"category": {"enum": ["billing", "tech"]}}, "required": ["category"]}


def status(c, output, case=CASE):
    return c(output, case).status


def test_json_checks():
    assert status(checks.json_valid(), '{"a": 1}') == "pass"
    assert status(checks.json_valid(), '```json\n{"a": 1}\n```') == "pass"
    assert status(checks.json_valid(), 'Sure! {"a": 1}') == "fail"
    s = checks.json_schema(SCHEMA)
    assert status(s, '{"category": "billing"}') == "pass"
    out = s('{"category": "sales"}', CASE)
    assert out.status == "fail" and "category" in out.reason


def test_broken_schema_is_an_error_before_any_call():
    with pytest.raises(CheckError, match=r"invalid JSON Schema at properties/category/type"):
        checks.json_schema({"type": "object", "properties": {"category": {"type": "strng"}}})


def test_pydantic_and_regex():
    class Ticket(BaseModel):
        category: str

    assert status(checks.pydantic_model(Ticket), '{"category": "x"}') == "pass"
    assert status(checks.pydantic_model(Ticket), '{"cat": "x"}') == "fail"
    assert status(checks.regex(r"\d{3}"), "code 123") == "pass"
    assert status(checks.regex(r"\d{3}", full=True), "code 123") == "fail"
    assert checks.regex(r"^\W*(yes|no)\b")("Let me think first.", Case({})).reason == (
        "no match in 'Let me think first.'"
    )
    with pytest.raises(CheckError, match="invalid pattern"):
        checks.regex("(")


def test_accuracy_checks_use_the_case_expected_value():
    assert status(checks.exact(), "billing") == "pass"
    assert status(checks.exact(), "Billing") == "fail"
    assert status(checks.normalized_exact(), "  Billing! ") == "pass"
    assert status(checks.contains(), "it is billing.") == "pass"
    assert status(checks.contains("SECRET", case_sensitive=False), "the secret is out") == "pass"
    num = Case({"q": "x"}, expected=1250)
    assert status(checks.numeric(), "so the total is 1,250.", num) == "pass"
    assert status(checks.numeric(), "about 1249", num) == "fail"
    assert status(checks.numeric(tolerance=1), "about 1249", num) == "pass"
    assert status(checks.numeric(), "no idea", num) == "fail"
    assert status(checks.json_field("category"), '{"category": "Billing"}') == "pass"
    assert status(checks.json_field("a.b", expected=2), '{"a": {"b": 2}}') == "pass"
    assert status(checks.json_field("a.c", expected=2), '{"a": {"b": 2}}') == "fail"


def test_pii_detector():
    for text in ("mail me at jo@example.com", "call 555-123-4567", "ssn 123-45-6789", "card 4111 1111 1111 1111"):
        assert status(checks.pii(), text) == "pass", text
    assert status(checks.pii(), "order 12345 shipped, card 4111 1111 1111 1112") == "fail"


def test_check_decorator_records_arguments_and_handles_errors():
    @check(description="at most {limit} words")
    def max_words(limit: int = 50):
        return lambda output: len(output.split()) <= limit

    c = max_words(limit=3)
    assert c.name == "max_words" and c.params == {"limit": 3} and c.description == "at most 3 words"
    assert status(c, "one two three") == "pass" and status(c, "one two three four") == "fail"

    @check
    def explodes():
        def run(output, case):
            raise RuntimeError("boom")

        return run

    out = explodes()("x", CASE)
    assert out.status == "error" and "boom" in out.reason
    with pytest.raises(CheckError, match="unexpected keyword"):
        max_words(limt=3)
