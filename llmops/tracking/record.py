"""The session record: everything one pytest session produced, as plain JSON.

It is what goes to MLflow (``llmops/results.json`` in the run), what the spool keeps when
the tracking server is down, and what a baseline is loaded from.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
import uuid
from collections.abc import Sequence
from typing import Any

import llmops

_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)
_SECRET_SHAPES = [
    re.compile(r"sk-[A-Za-z0-9_-]{16,}"),
    re.compile(r"(?i)bearer\s+[A-Za-z0-9._~+/-]{16,}=*"),
    re.compile(r"AKIA[0-9A-Z]{16}"),
    re.compile(r"gh[pousr]_[A-Za-z0-9]{20,}"),
]
REDACTED = "[REDACTED]"


def _secret_values() -> list[str]:
    return sorted(
        (v for k, v in os.environ.items() if _SECRET_NAME.search(k) and len(v) >= 8),
        key=len,
        reverse=True,
    )


def redact(value: Any, secrets: Sequence[str] | None = None) -> Any:
    """A copy with API keys and the values of *KEY*/*TOKEN*-like env vars replaced."""
    secrets = _secret_values() if secrets is None else secrets
    if isinstance(value, str):
        for s in secrets:
            value = value.replace(s, REDACTED)
        for shape in _SECRET_SHAPES:
            value = shape.sub(REDACTED, value)
        return value
    if isinstance(value, dict):
        return {k: redact(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v, secrets) for v in value]
    return value


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=5, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def git_info() -> dict[str, str]:
    """Commit, branch and pull-request number, from CI variables or git itself."""
    env = os.environ
    info = {
        "commit": env.get("GITHUB_SHA") or env.get("CI_COMMIT_SHA") or _git("rev-parse", "HEAD"),
        "branch": env.get("GITHUB_HEAD_REF")
        or env.get("GITHUB_REF_NAME")
        or env.get("CI_COMMIT_REF_NAME")
        or _git("rev-parse", "--abbrev-ref", "HEAD"),
    }
    pr = env.get("LLMOPS_PR_NUMBER") or env.get("CI_MERGE_REQUEST_IID")
    m = re.match(r"refs/pull/(\d+)/", env.get("GITHUB_REF", ""))
    info["pull_request"] = pr or (m.group(1) if m else None)
    return {k: v for k, v in info.items() if v}


def new_record(settings: dict[str, Any], started: float | None = None) -> dict[str, Any]:
    return {
        "session_id": uuid.uuid4().hex,
        "started": int(1000 * (started or time.time())),
        "finished": None,
        "llmops_version": llmops.__version__,
        "settings": settings,
        "git": git_info(),
        "results": [],
    }


def finish(record: dict[str, Any], results: list[dict[str, Any]]) -> dict[str, Any]:
    record = dict(record)
    record["results"] = redact(results)
    record["finished"] = int(1000 * time.time())
    return record
