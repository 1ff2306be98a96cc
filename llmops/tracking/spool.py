"""The local spool: session records that could not reach MLflow wait here for `llmops sync`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llmops.errors import LlmopsError
from llmops.redact import redact

DEFAULT_SPOOL = Path(".llmops") / "spool"


class SpoolFileError(LlmopsError):
    """A spool file that is not a session record."""


def write(record: dict[str, Any], directory: Path = DEFAULT_SPOOL) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{record['session_id']}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(redact(record)), encoding="utf-8")
    tmp.replace(path)  # never a half-written record
    return path


def pending(directory: Path = DEFAULT_SPOOL) -> list[Path]:
    return sorted(directory.glob("*.json")) if directory.exists() else []


def upload(store: Any, path: Path) -> tuple[str, str]:
    """Upload one spooled record; the file is removed once its run is complete in MLflow.

    Logging is idempotent by session id, so uploading again (or after a crash half-way)
    never duplicates a run.  Returns (session id, run id).
    """
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        record["session_id"], record["results"]  # what a record must have
    except (ValueError, KeyError, TypeError) as e:
        raise SpoolFileError(
            f"spool file {path} is not a session record ({type(e).__name__}: {e}); move it out of {path.parent} "
            "and run `llmops sync` again"
        ) from None
    run_id = store.log_session(record)
    path.unlink()
    return record["session_id"], run_id


def sync(store: Any, directory: Path = DEFAULT_SPOOL) -> list[tuple[str, str]]:
    """Upload every spooled record, oldest name first; returns (session id, run id) pairs."""
    return [upload(store, path) for path in pending(directory)]
