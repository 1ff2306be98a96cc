"""The one redaction step that every output channel goes through.

Terminal lines, the Result (and so every report built from it), the session record (and so
MLflow params and artifacts, the spool and ``--llmops-report-json``) and the ``llmops``
loggers all pass through ``redact``.  A secret is:

- the value (8 characters or more) of an environment variable named like a key, token,
  secret, password or credential;
- a secret held by a model object: a field named like one, or a pydantic ``SecretStr``,
  registered with ``register_secrets`` when a session resolves its model;
- anything shaped like a credential: ``sk-...``, ``Bearer ...``, AWS ``AKIA...``, GitHub
  ``gh[pousr]_...``/``github_pat_...``, Slack ``xox?-...``, Google ``AIza...``, and the
  ``user:password@`` part of a URL.

It runs over every sample row, so it is one precompiled expression, rebuilt only when the
secrets change (the environment is compared, not rescanned, on each call).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import threading
from collections.abc import Iterator
from typing import Any, TypeVar

REDACTED = "[REDACTED]"
MIN_LENGTH = 8  # shorter values ("EMPTY", "dummy") are too common to replace everywhere

SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)
_HELD_NAME = re.compile(SECRET_NAME.pattern + "|AUTH", re.IGNORECASE)  # + headers such as Authorization
_SHAPES = (
    r"(?<![A-Za-z0-9])sk-[A-Za-z0-9_-]{16,}",  # OpenAI, Anthropic (sk-ant-...)
    r"(?i:\bbearer)\s+[A-Za-z0-9._~+/-]{16,}=*",
    r"\bAKIA[0-9A-Z]{16}\b",  # AWS access key id
    r"\bgh[pousr]_[A-Za-z0-9]{20,}",  # GitHub tokens
    r"\bgithub_pat_[A-Za-z0-9_]{22,}",
    r"\bxox[abposr]-[A-Za-z0-9-]{10,}",  # Slack
    r"\bAIza[0-9A-Za-z_-]{35}",  # Google API key
    r"(?<=://)[^\s/@:]+:[^\s/@]+(?=@)",  # https://user:password@host
)

# Substrings (lower case) one of which every shape contains: a string with none of them and
# no known secret skips the regular expression (most sample rows).
_TRIGGERS = ("sk-", "bearer", "akia", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "xox", "aiza", "://")

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class _Redactor:
    literals: tuple[str, ...]  # known secret values, longest first
    regex: re.Pattern[str]

    def text(self, s: str) -> str:
        if not any(lit in s for lit in self.literals):
            low = s.lower()
            if not any(t in low for t in _TRIGGERS):
                return s
        return self.regex.sub(REDACTED, s)


_lock = threading.Lock()
_registered: tuple[str, ...] = ()
_env_seen: dict[Any, Any] | None = None
_env_values: tuple[str, ...] = ()
_built_for: tuple[tuple[str, ...], tuple[str, ...]] | None = None
_built = _Redactor((), re.compile("|".join(_SHAPES)))


def _env_secrets() -> tuple[str, ...]:
    """Values of secret-named environment variables; rescanned only when the environment changed."""
    global _env_seen, _env_values
    data = getattr(os.environ, "_data", None)  # CPython's raw mapping: compared without decoding
    if data is None:  # pragma: no cover - other Pythons
        data = dict(os.environ)
    if data != _env_seen:
        values = tuple(v for k, v in os.environ.items() if SECRET_NAME.search(k) and len(v) >= MIN_LENGTH)
        _env_seen, _env_values = dict(data), values
    return _env_values


def _redactor() -> _Redactor:
    """The redactor for every secret known now (known values first, longest first)."""
    global _built_for, _built
    key = (_env_secrets(), _registered)
    if key != _built_for:
        literals = tuple(sorted(set(key[0]) | set(key[1]), key=len, reverse=True))
        regex = re.compile("|".join([*(re.escape(s) for s in literals), *_SHAPES]))
        _built_for, _built = key, _Redactor(literals, regex)
    return _built


def redact(value: T) -> T:
    """A copy of ``value`` (str, dict, list, tuple, dataclass, nested) with every secret replaced.

    Returns ``value`` itself when nothing needed replacing, so clean data costs no copies.
    """
    return _walk(value, _redactor())  # type: ignore[no-any-return]


def _walk(value: Any, r: _Redactor) -> Any:
    if isinstance(value, str):
        return r.text(value)
    if isinstance(value, dict):
        items = {k: _walk(v, r) for k, v in value.items()}
        return items if any(items[k] is not v for k, v in value.items()) else value
    if isinstance(value, (list, tuple)):
        seq = [_walk(v, r) for v in value]
        if all(a is b for a, b in zip(seq, value, strict=True)):
            return value
        if isinstance(value, list):
            return seq
        return type(value)(*seq) if hasattr(value, "_fields") else tuple(seq)  # a NamedTuple keeps its type
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changed = {}
        for f in dataclasses.fields(value):
            old = getattr(value, f.name)
            new = _walk(old, r)
            if new is not old and f.init:
                changed[f.name] = new
        return dataclasses.replace(value, **changed) if changed else value
    return value


# -- secrets held by a model object -------------------------------------------------------


def register_secret(value: str) -> None:
    """Redact ``value`` from now on (in this process), wherever it appears."""
    global _registered
    if isinstance(value, str) and len(value) >= MIN_LENGTH and value not in _registered:
        with _lock:
            _registered = (*_registered, value)


def register_secrets(obj: Any) -> int:
    """Register the secrets a model object holds: SecretStr values and key/token-named strings.

    Looks through LangChain models and wrappers (pydantic fields, nested runnables, llmops
    adapters) a few levels deep.  Returns how many secrets it found.
    """
    found = list(held_secrets(obj))
    for s in found:
        register_secret(s)
    return len(found)


def held_secrets(obj: Any, name: str = "", depth: int = 0, seen: set[int] | None = None) -> Iterator[str]:
    """The secret values in ``obj`` (``name`` is the field or key that holds it)."""
    seen = set() if seen is None else seen
    if depth > 5 or id(obj) in seen:
        return
    seen.add(id(obj))
    if callable(getattr(obj, "get_secret_value", None)):  # pydantic SecretStr / SecretBytes
        value = obj.get_secret_value()
        if isinstance(value, bytes):
            value = value.decode(errors="ignore")
        if isinstance(value, str):
            yield value
        return
    if isinstance(obj, str):
        if name and _HELD_NAME.search(name):
            yield obj
        return
    if isinstance(obj, dict):
        children: Any = obj.items()
    elif isinstance(obj, (list, tuple)):
        children = ((name, v) for v in obj)
    elif _is_model_like(obj):
        children = vars(obj).items()
    else:
        return
    for key, child in list(children):
        yield from held_secrets(child, str(key), depth + 1, seen)


def _is_model_like(obj: Any) -> bool:
    """Objects worth looking into: pydantic models (LangChain's) and llmops's own adapters."""
    cls = type(obj)
    return hasattr(obj, "__dict__") and (hasattr(cls, "model_fields") or cls.__module__.split(".")[0] == "llmops")


# -- logs ---------------------------------------------------------------------------------


class RedactingFilter(logging.Filter):
    """Redacts a log record's message and traceback before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to logging's own error path
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


_FILTER = RedactingFilter()


def get_logger(name: str = "llmops") -> logging.Logger:
    """A logger under ``llmops`` whose records are redacted.

    (A filter on a logger does not apply to its children's records, so each llmops logger
    gets the filter here.)
    """
    log = logging.getLogger(name)
    if _FILTER not in log.filters:
        log.addFilter(_FILTER)
    return log


get_logger("llmops")

__all__ = [
    "REDACTED",
    "RedactingFilter",
    "get_logger",
    "held_secrets",
    "redact",
    "register_secret",
    "register_secrets",
]
