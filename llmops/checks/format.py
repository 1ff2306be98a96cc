"""Format checks: JSON, JSON Schema, pydantic models, regular expressions."""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

from llmops.checks.base import Outcome, check
from llmops.errors import CheckError

_FENCE = re.compile(r"^```[a-zA-Z0-9_-]*\s*\n(.*?)\n?```$", re.DOTALL)


def parse_json(output: str) -> Any:
    """Parse model output as JSON, allowing surrounding whitespace and one Markdown code fence.

    Raises ValueError with the parser's message.  Nothing else is extracted: prose around
    the JSON is a format failure, as it would be for the program that reads the output.
    """
    text = output.strip()
    m = _FENCE.match(text)
    if m:
        text = m.group(1).strip()
    return json.loads(text)


@check(description="valid JSON")
def json_valid():  # type: ignore[no-untyped-def]
    def run(output: str) -> Outcome:
        try:
            parse_json(output)
        except ValueError as e:
            return Outcome("fail", f"not JSON: {e}")
        return Outcome("pass")

    return run


@check(description="JSON matching the schema")
def json_schema(schema: dict[str, Any]):  # type: ignore[no-untyped-def]
    """Output parses as JSON and validates against ``schema``.

    The schema itself is checked when the check is built, so a broken schema is a clear
    error before any model call.
    """
    from jsonschema import SchemaError
    from jsonschema.validators import validator_for

    if not isinstance(schema, dict):
        raise CheckError(f"json_schema: the schema must be a dict (a JSON Schema object), got {type(schema).__name__}")
    cls = validator_for(schema)
    try:
        cls.check_schema(schema)
    except SchemaError as e:
        where = "/".join(str(p) for p in e.absolute_path) or "(root)"
        raise CheckError(
            f"json_schema: invalid JSON Schema at {where}: {e.message}; fix the schema (checked against {cls.__name__})"
        ) from None
    validator = cls(schema)

    def run(output: str) -> Outcome:
        try:
            data = parse_json(output)
        except ValueError as e:
            return Outcome("fail", f"not JSON: {e}")
        errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
        if errors:
            first = errors[0]
            where = "/".join(str(p) for p in first.absolute_path) or "(root)"
            return Outcome("fail", f"schema: {where}: {first.message}")
        return Outcome("pass")

    return run


def _pydantic_model(model: Any):  # type: ignore[no-untyped-def]
    if not hasattr(model, "model_validate_json"):
        raise CheckError(f"pydantic_model: expected a pydantic BaseModel class, got {model!r}")

    def run(output: str) -> Outcome:
        try:
            data = parse_json(output)
        except ValueError as e:
            return Outcome("fail", f"not JSON: {e}")
        try:
            model.model_validate(data)
        except ValueError as e:  # pydantic.ValidationError is a ValueError
            errors = getattr(e, "errors", None)
            if callable(errors):  # every field that failed, not only the "1 validation error" header
                parts = [f"{'.'.join(str(p) for p in x.get('loc', ())) or '(root)'}: {x.get('msg')}" for x in errors()]
                return Outcome("fail", f"{getattr(model, '__name__', 'model')}: " + "; ".join(parts))
            return Outcome("fail", str(e))
        return Outcome("pass")

    return run


_pydantic_model.__name__ = "pydantic_model"  # the check's recorded name (baselines match on it)
_build_pydantic_model = check(description="JSON matching {model}")(_pydantic_model)


def pydantic_model(model: Any) -> Any:
    """Output parses as JSON and validates as the pydantic model; described by the class's name.

    "JSON matching Triage", not the class's repr ("<class 'test_triage.Triage'>").
    """
    built = _build_pydantic_model(model)
    name = getattr(model, "__name__", None) or repr(model)
    return dataclasses.replace(built, description=f"JSON matching {name}")


@check(description="matching /{pattern}/")
def regex(pattern: str, flags: int = 0, full: bool = False):  # type: ignore[no-untyped-def]
    try:
        compiled = re.compile(pattern, flags)
    except re.error as e:
        raise CheckError(f"regex: invalid pattern {pattern!r}: {e}") from None
    match = compiled.fullmatch if full else compiled.search

    def run(output: str) -> Outcome:
        if match(output.strip() if full else output) is not None:
            return Outcome("pass")
        return Outcome("fail", f"no {'full ' if full else ''}match in {output[:60]!r}")

    return run
