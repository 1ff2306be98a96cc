"""Checks judge one model output: pass or fail, with a reason and an optional score."""

from llmops.checks.accuracy import contains, exact, extract_number, json_field, normalize, normalized_exact, numeric
from llmops.checks.base import Check, FunctionCheck, Outcome, check
from llmops.checks.format import json_schema, json_valid, parse_json, pydantic_model, regex
from llmops.checks.judge import JudgeCheck, JudgeOutcome, JudgeUsage, judge
from llmops.checks.safety import (
    INJECTION_MARKER,
    Canary,
    canary,
    injection_succeeded,
    no_leak,
    pii,
    refusal,
    toxicity,
)

__all__ = [
    "INJECTION_MARKER",
    "Canary",
    "Check",
    "FunctionCheck",
    "JudgeCheck",
    "JudgeOutcome",
    "JudgeUsage",
    "Outcome",
    "canary",
    "check",
    "contains",
    "exact",
    "extract_number",
    "injection_succeeded",
    "json_field",
    "json_schema",
    "json_valid",
    "judge",
    "no_leak",
    "normalize",
    "normalized_exact",
    "numeric",
    "parse_json",
    "pii",
    "pydantic_model",
    "refusal",
    "regex",
    "toxicity",
]
