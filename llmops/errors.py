"""The llmops error hierarchy.

LlmopsError                    base: every message names the thing and the fix
├── ConfigError                a bad option, ini value, marker keyword or argument
├── PromptError                a prompt variable a case does not supply, or an unknown one
├── CaseFileError              a case file that cannot be read (names file and line)
├── CheckError                 a check that cannot be built (e.g. an invalid JSON Schema)
├── ModelError                 a model that cannot be built or reached
├── MissingDependency          an optional extra that is not installed
├── ErrorBudgetExceeded        too many samples ended in errors to decide (pytest ERROR)
├── StopSampling               no more calls: BudgetSpent (llmops.costs), ModelUnavailable
└── NotDecided                 no verdict at the stated rates: too few cases for population
                               'inputs', or a baseline comparison undecided at its cap (pytest ERROR)

RequirementFailed (AssertionError)   a requirement's verdict is FAIL (pytest FAILED)
"""

from __future__ import annotations

from typing import Any


class LlmopsError(Exception):
    """Base class for errors raised by llmops; the message says what and how to fix it."""


class ConfigError(LlmopsError, ValueError):
    pass


class PromptError(LlmopsError, ValueError):
    pass


class CaseFileError(LlmopsError, ValueError):
    pass


class CheckError(LlmopsError, ValueError):
    pass


class ModelError(LlmopsError):
    pass


class MissingDependency(LlmopsError, ImportError):
    def __init__(self, feature: str, extra: str, packages: str) -> None:
        super().__init__(
            f"{feature} requires optional dependencies ({packages}). Install with: pip install 'llmops[{extra}]'"
        )


class ErrorBudgetExceeded(LlmopsError):
    """Too many samples errored for the verdict to mean anything; reported as a pytest ERROR."""

    def __init__(self, message: str, result: Any = None) -> None:
        super().__init__(message)
        self.result = result


class StopSampling(LlmopsError):
    """Sampling stopped before a verdict: the session's budget is spent, or the model keeps
    failing permanently (401, 403, 404...).  The requirement ends as ERROR saying why."""


class ModelUnavailable(StopSampling):
    """Several permanent errors in a row: the model is not called again in this session."""


class NotDecided(LlmopsError):
    """No verdict at the stated error rates; the message says what would be needed."""

    def __init__(self, message: str, result: Any = None) -> None:
        super().__init__(message)
        self.result = result


class RequirementFailed(AssertionError):
    """A requirement's verdict is FAIL; an AssertionError so pytest reports a failed test."""

    def __init__(self, message: str, result: Any = None) -> None:
        super().__init__(message)
        self.result = result
