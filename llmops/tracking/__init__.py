"""Tracking: session records, MLflow runs and prompt registry, and the local spool."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from llmops.tracking import spool
from llmops.tracking.record import finish, new_record, redact


def publish(record: dict[str, Any], uri: str | None, experiment: str, spool_dir: Path) -> tuple[str | None, str]:
    """Log a finished record to MLflow; on any failure keep it in the spool.

    Returns (run id or None, a line for the summary).  Never raises: the session's results
    matter more than the tracking server's health.
    """
    from llmops.tracking.mlflow_store import MlflowStore, tracking_uri

    resolved = uri
    # MLflow's HTTP client retries for minutes by default; a dead server should cost seconds.
    saved = {k: os.environ.get(k) for k in _QUICK_HTTP}
    os.environ.update({k: v for k, v in _QUICK_HTTP.items() if saved[k] is None})
    try:
        resolved = tracking_uri(uri)
        store = MlflowStore(resolved, experiment)
        store.check_reachable()
        run_id = store.log_session(record)
    except Exception as e:
        path = spool.write(record, spool_dir)
        return (
            None,
            f"MLflow at {resolved} failed ({str(e).splitlines()[0][:200]}); results kept in {path}; upload later with `llmops sync`",
        )
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
    return run_id, f"MLflow run {run_id} in experiment '{experiment}' at {resolved}"


_QUICK_HTTP = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "15"}


__all__ = ["finish", "new_record", "publish", "redact", "spool"]
