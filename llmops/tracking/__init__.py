"""Tracking: session records, MLflow runs and prompt registry, and the local spool."""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from llmops.tracking import spool
from llmops.tracking.record import finish, new_record, redact


@contextlib.contextmanager
def quiet_mlflow() -> Iterator[None]:
    """Around MLflow calls made for the user: fail fast, and keep MLflow's own noise out.

    MLflow's HTTP client retries for minutes by default (a dead server should cost
    seconds), and its SQLAlchemy and pandas deprecation warnings are not the user's to fix.
    """
    saved = {k: os.environ.get(k) for k in _QUICK_HTTP}
    os.environ.update({k: v for k, v in _QUICK_HTTP.items() if saved[k] is None})
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)


_QUICK_HTTP = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "15"}


def publish(record: dict[str, Any], uri: str | None, experiment: str, spool_dir: Path) -> tuple[str | None, str]:
    """Log a finished record to MLflow; on any failure keep it in the spool.

    Returns (run id or None, a line for the summary).  Never raises: the session's results
    matter more than the tracking server's health.
    """
    from llmops.tracking.mlflow_store import MlflowStore, tracking_uri

    resolved = uri
    try:
        with quiet_mlflow():
            resolved = tracking_uri(uri)
            store = MlflowStore(resolved, experiment)
            store.check_reachable()
            run_id = store.log_session(record)
    except Exception as e:  # any tracking failure spools the record
        path = spool.write(record, spool_dir)
        why = str(e).splitlines()[0][:200]
        return None, f"MLflow at {resolved} failed ({why}); results kept in {path}; upload later with `llmops sync`"
    return run_id, f"MLflow run {run_id} in experiment '{experiment}' at {resolved}"


__all__ = ["finish", "new_record", "publish", "quiet_mlflow", "redact", "spool"]
