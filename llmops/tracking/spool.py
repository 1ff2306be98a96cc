"""The local spool: session records that could not reach MLflow wait here for `llmops sync`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DEFAULT_SPOOL = Path(".llmops") / "spool"


def write(record: dict[str, Any], directory: Path = DEFAULT_SPOOL) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{record['session_id']}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record), encoding="utf-8")
    tmp.replace(path)  # never a half-written record
    return path


def pending(directory: Path = DEFAULT_SPOOL) -> list[Path]:
    return sorted(directory.glob("*.json")) if directory.exists() else []


def sync(store: Any, directory: Path = DEFAULT_SPOOL) -> list[tuple[str, str]]:
    """Upload spooled records; each is removed once its run is complete in MLflow.

    Logging is idempotent by session id, so a second sync (or a crash half-way) never
    duplicates a run.  Returns (session id, run id) pairs.
    """
    done = []
    for path in pending(directory):
        record = json.loads(path.read_text(encoding="utf-8"))
        run_id = store.log_session(record)
        path.unlink()
        done.append((record["session_id"], run_id))
    return done
