"""Tracking: session records, MLflow runs and prompt registry, and the local spool."""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops.redact import get_logger, redact
from llmops.tracking import spool
from llmops.tracking.record import finish, new_record, problems

if TYPE_CHECKING:
    from llmops.tracking.uploader import Uploader

#: How long the session waits for the uploader's answer before uploading in its own process.
UPLOADER_TIMEOUT_S = 120.0

log = get_logger("llmops.tracking")

# Fail fast (MLflow's HTTP client retries for minutes by default; a dead server should cost
# seconds) and print no "View run ..." links into pytest's output.  Defaults: a user's own
# setting of these variables wins.
_QUIET_ENV = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}
_NOISY_LOGGERS = ("mlflow", "alembic")  # INFO lines about database tables, migrations, runs


@contextlib.contextmanager
def quiet_mlflow() -> Iterator[None]:
    """Around MLflow calls made for the user: fail fast, and keep MLflow's own noise out.

    MLflow's INFO lines (creating tables, migrations, run links) and its SQLAlchemy and
    pandas deprecation warnings are not the user's to read or fix; its warnings and errors
    still show.
    """
    saved = {k: os.environ.get(k) for k in _QUIET_ENV}
    os.environ.update({k: v for k, v in _QUIET_ENV.items() if saved[k] is None})
    loggers = [logging.getLogger(name) for name in _NOISY_LOGGERS]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import mlflow  # noqa: F401  (configures its loggers on first import: quieten them after)

            levels = [lg.level for lg in loggers]
            for lg in loggers:
                if lg.getEffectiveLevel() < logging.WARNING:
                    lg.setLevel(logging.WARNING)
            try:
                yield
            finally:
                for lg, level in zip(loggers, levels, strict=True):
                    lg.setLevel(level)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)


def _open(uri: str | None, experiment: str) -> Any:
    from llmops.tracking.mlflow_store import MlflowStore, tracking_uri

    with quiet_mlflow():
        store = MlflowStore(tracking_uri(uri), experiment)
        store.check_reachable()
        store.experiment_id()  # creates the store's tables and the experiment on first use
    return store


def publish(
    record: dict[str, Any], uri: str | None, experiment: str, spool_dir: Path, uploader: Uploader | None = None
) -> tuple[str | None, str]:
    """Log a finished record to MLflow through the spool: on any failure it stays there.

    The record is spooled before the upload and removed after it, so an upload cut short
    (Ctrl-C, SIGTERM, a crash) is finished by ``llmops sync``.  With an ``uploader`` (the
    helper process that opened the store while the tests sampled) it uploads the spool
    file; when it cannot, this process does.  Returns (run id or None, a line for the
    summary).  Never raises: the session's results matter more than the tracking server's
    health.
    """
    path = spool.write(record, spool_dir)
    answer = uploader.upload(path, timeout=UPLOADER_TIMEOUT_S) if uploader is not None else None
    if answer is None or answer.get("opened"):  # no answer, or the store changed since it opened: here
        answer = upload_file(path, uri, experiment)
    resolved = answer.get("uri") or uri
    if "run_id" in answer:
        return answer["run_id"], redact(f"MLflow run {answer['run_id']} in experiment '{experiment}' at {resolved}")
    why = answer["error"]
    log.warning("MLflow at %s failed (%s); session %s kept in %s", resolved, why, record["session_id"], path)
    return None, redact(f"MLflow at {resolved} failed ({why}); results kept in {path}; upload later with `llmops sync`")


def upload_file(path: Path, uri: str | None, experiment: str, store: Any = None) -> dict[str, str]:
    """Upload a spool file to ``store`` (opened here when None).

    Returns ``{"run_id", "uri"}``, or ``{"error", "uri"}`` with ``"opened"`` when the store
    had opened and only the upload failed.  A failure leaves the file in the spool.
    """
    try:
        if store is None:
            store = _open(uri, experiment)
    except Exception as e:  # the store did not open: name where it was looked for
        resolved = uri
        with contextlib.suppress(Exception):
            from llmops.tracking.mlflow_store import tracking_uri

            resolved = tracking_uri(uri)
        log.debug("MLflow failure", exc_info=True)
        return {"error": failure(e), "uri": resolved or ""}
    try:
        with quiet_mlflow():
            _, run_id = spool.upload(store, path)
        return {"run_id": run_id, "uri": store.uri}
    except Exception as e:
        log.debug("MLflow failure", exc_info=True)
        return {"error": failure(e), "uri": store.uri, "opened": "yes"}


def failure(e: BaseException) -> str:
    """An exception as the one line the summary shows."""
    return str(e).splitlines()[0][:400] if str(e).strip() else type(e).__name__


def promote_session(record: dict[str, Any], run_id: str | None, uri: str | None, experiment: str, alias: str) -> str:
    """``--llmops-promote``: make this session's run the baseline, unless it should not be one.

    A session that failed, errored, regressed or was partial is not promoted (the line says
    why and how to promote it anyway); neither is one that was not logged.  Never raises.
    Returns a line for the summary.
    """
    issues = problems(record)
    if run_id is None:
        return f"not promoted as @{alias}: the session was not logged to MLflow (tracking off, or the server failed)"
    if issues:
        return (
            f"not promoted as @{alias}: {'; '.join(issues)}; a failed or partial session is no baseline "
            f"(if it should be: `llmops promote {run_id} --alias {alias} --experiment {experiment} --force`)"
        )
    from llmops.tracking.mlflow_store import MlflowStore, tracking_uri

    try:
        with quiet_mlflow():
            lines = MlflowStore(tracking_uri(uri), experiment).promote(run_id, alias)
    except Exception as e:
        return redact(f"not promoted as @{alias}: {failure(e)[:300]}")
    return redact(f"promoted run {run_id} as baseline @{alias}: " + "; ".join(lines))


__all__ = [
    "finish",
    "new_record",
    "problems",
    "promote_session",
    "publish",
    "quiet_mlflow",
    "redact",
    "spool",
]
