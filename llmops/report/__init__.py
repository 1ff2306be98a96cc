"""Renderers of results: one module per output format, one result model behind them all.

Each renderer takes the session record (``{"results": [...], ...}``, as
``--llmops-report-json`` writes it) or a list of ``Result`` objects, and computes no number
that a ``Result`` does not already hold.

- ``terminal``: the summary table, the failing samples under ``-v``, the footer
- ``markdown``: the pull request comment and the CI job summary (under GitHub's limit)
- ``json``: the versioned record and its JSON Schema (``docs/report-schema.md``)
- ``junit``: each requirement's numbers as JUnit properties; ERROR apart from FAIL
- ``html``: one self-contained file with plots and every sample

The modules load when first used, so ``import llmops.report`` costs nothing.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "SCHEMA",
    "SCHEMA_VERSION",
    "html",
    "json",
    "junit",
    "markdown",
    "render_html",
    "render_markdown",
    "results_of",
    "session_status",
    "status",
    "terminal",
]

_WHERE = {
    "SCHEMA": ("json", "SCHEMA"),
    "SCHEMA_VERSION": ("json", "SCHEMA_VERSION"),
    "render_html": ("html", "render"),
    "render_markdown": ("markdown", "render"),
    "results_of": ("_format", "results_of"),
    "session_status": ("_format", "session_status"),
    "status": ("_format", "status"),
}


def __getattr__(name: str) -> Any:
    if name in ("html", "json", "junit", "markdown", "terminal"):
        return importlib.import_module(f"{__name__}.{name}")
    if name in _WHERE:
        module, attr = _WHERE[name]
        return getattr(importlib.import_module(f"{__name__}.{module}"), attr)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
