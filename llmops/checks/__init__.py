"""Checks judge one model output: pass or fail, with a reason and an optional score."""

from llmops.checks.accuracy import contains, exact, extract_number, json_field, normalize, normalized_exact, numeric
from llmops.checks.base import Check, FunctionCheck, Outcome, check
from llmops.checks.format import json_schema, json_valid, parse_json, pydantic_model, regex
from llmops.checks.safety import pii

__all__ = [
    "Check",
    "FunctionCheck",
    "Outcome",
    "check",
    "contains",
    "exact",
    "extract_number",
    "json_field",
    "json_schema",
    "json_valid",
    "normalize",
    "normalized_exact",
    "numeric",
    "parse_json",
    "pii",
    "pydantic_model",
    "regex",
]
