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
from typing import Any

import llmops
from llmops.redact import redact


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


def run_name(git: dict[str, str], session_id: str = "") -> str:
    """``pr-12@1a2b3c4`` on a pull request, ``main@1a2b3c4`` on a branch: what a person looks for."""
    where = f"pr-{git['pull_request']}" if git.get("pull_request") else git.get("branch") or "session"
    commit = git.get("commit", "")[:7] or session_id[:7]
    return f"{where}@{commit}" if commit else where


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


def finish(
    record: dict[str, Any], results: list[dict[str, Any]], *, exit_status: int | None = None, partial: str | None = None
) -> dict[str, Any]:
    """The finished record, redacted: results, and how the session ended (for ``promote``).

    ``exit_status`` is pytest's; ``partial`` says why not every test ran (interrupted,
    stopped after failures), None when it ran to the end.
    """
    record = dict(record)
    record["results"] = results
    record["finished"] = int(1000 * time.time())
    record["outcome"] = outcome(results, exit_status, partial)
    return redact(record)


def outcome(results: list[dict[str, Any]], exit_status: int | None, partial: str | None) -> dict[str, Any]:
    counts = {v: sum(r.get("verdict") == v for r in results) for v in ("PASS", "FAIL", "ERROR")}
    regressed = sum((r.get("comparison") or {}).get("verdict") == "regressed" for r in results)
    return {"counts": counts, "regressed": regressed, "exit_status": exit_status, "partial": partial}


_EXIT = {1: "some tests failed", 2: "it was interrupted", 3: "pytest hit an internal error", 4: "a usage error"}


def problems(record: dict[str, Any]) -> list[str]:
    """Why this session should not become a baseline: failures, errors, regressions, a partial run.

    Empty for a clean session.  Records written before ``outcome`` existed are judged by
    their results alone.
    """
    o = record.get("outcome") or outcome(record.get("results", []), None, None)
    out = []
    counts = o.get("counts", {})
    if counts.get("FAIL"):
        out.append(f"{counts['FAIL']} requirement(s) FAILED")
    if counts.get("ERROR"):
        out.append(f"{counts['ERROR']} requirement(s) ended in ERROR")
    if o.get("regressed"):
        out.append(f"{o['regressed']} requirement(s) REGRESSED against the baseline")
    status = o.get("exit_status")
    if status not in (None, 0, 5):
        out.append(f"pytest exited with status {status} ({_EXIT.get(status, 'not a clean run')})")
    if o.get("partial"):
        out.append(f"the session was partial ({o['partial']})")
    return out
