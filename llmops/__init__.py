"""llmops: statistical regression tests for LLM prompts.

Public names load lazily, so importing the pytest plugin (which needs only the settings)
does not pull in scipy, LangChain or MLflow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Case": "llmops.cases",
    "load_cases": "llmops.cases",
    "Check": "llmops.checks",
    "Outcome": "llmops.checks",
    "check": "llmops.checks",
    "Settings": "llmops.config",
    "ErrorBudgetExceeded": "llmops.errors",
    "LlmopsError": "llmops.errors",
    "RequirementFailed": "llmops.errors",
    "Result": "llmops.evaluation",
    "Run": "llmops.evaluation",
    "FunctionModel": "llmops.models",
    "Model": "llmops.models",
    "Prompt": "llmops.prompts",
    "Session": "llmops.session",
}

__all__ = [
    "Case",
    "Check",
    "ErrorBudgetExceeded",
    "FunctionModel",
    "LlmopsError",
    "Model",
    "Outcome",
    "Prompt",
    "RequirementFailed",
    "Result",
    "Run",
    "Session",
    "Settings",
    "__version__",
    "check",
    "checks",
    "load_cases",
]


def __getattr__(name: str) -> Any:
    if name == "checks":
        return importlib.import_module("llmops.checks")
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'llmops' has no attribute {name!r}")


if TYPE_CHECKING:
    from llmops import checks
    from llmops.cases import Case, load_cases
    from llmops.checks import Check, Outcome, check
    from llmops.config import Settings
    from llmops.errors import ErrorBudgetExceeded, LlmopsError, RequirementFailed
    from llmops.evaluation import Result, Run
    from llmops.models import FunctionModel, Model
    from llmops.prompts import Prompt
    from llmops.session import Session
