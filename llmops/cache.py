"""The response cache: model answers kept in a local sqlite file, replayed instead of called.

One entry stands for one call the sampler would make: the same model (``model_identity``:
class, model name, base URL, sampling settings), the same rendered messages, and the same
sample (prompt version, case, sample index, session seed; a seeded local model's answer
depends on the seed).  Sample 0 and sample 1 of one prompt and case are different entries,
so repeated samples stay independent draws and the statistics mean what they say.  Models
that cannot be named (plain functions, simulations) are never cached, and neither are
errors.

Modes (the ``cache`` setting): ``off``; ``read`` replays what is there and never writes
(a gate that must not grow the cache); ``write`` calls the model every time and records
the answers (refreshing the cache); ``readwrite`` (the default) replays hits and records
misses.

The file is safe under pytest-xdist: WAL mode (readers never wait for a writer), a busy
timeout for writers, and one connection per process and thread, as sqlite requires.  The
sampler looks a whole batch up before drawing it and writes after, in the calling thread,
so no sqlite I/O ever runs on the sampler's event loop.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sqlite3
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmops.errors import ConfigError, LlmopsError

MODES = ("off", "read", "write", "readwrite")
DEFAULT_PATH = Path(".llmops") / "cache.sqlite"
SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 30.0  # a writer waits this long for another process's write to finish
_CHUNK = 500  # keys per SELECT (sqlite's parameter limit is 32766 since 3.32, 999 before)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    output TEXT NOT NULL,
    input_tokens INTEGER,
    output_tokens INTEGER,
    latency_s REAL NOT NULL,
    created REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS responses_created ON responses (created);
"""


@dataclass(frozen=True)
class Response:
    """What the cache keeps of one successful call."""

    output: str
    input_tokens: int | None = None
    output_tokens: int | None = None
    latency_s: float = 0.0  # of the original call


@dataclass(frozen=True)
class CacheStats:
    path: Path
    responses: int
    models: int
    size_bytes: int  # the file with its write-ahead log
    oldest: float | None  # unix time of the oldest entry
    newest: float | None


def cache_key(
    identity: dict[str, Any],
    messages: Sequence[tuple[str, str]],
    *,
    prompt_version: str,
    case_key: str,
    index: int,
    seed: int,
) -> str:
    """The entry for one call: model identity, messages, and which sample of which prompt and case.

    Canonical JSON (sorted keys) hashed with SHA-256, so the key does not depend on dict
    order and the file holds no prompt text in its keys.
    """
    payload = {
        "v": SCHEMA_VERSION,
        "model": identity,
        "messages": [[role, text] for role, text in messages],
        "prompt_version": prompt_version,
        "case": case_key,
        "index": index,
        "seed": seed,
    }
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class ResponseCache:
    """A sqlite file of responses, read and written according to ``mode``.

    ``get_many`` returns nothing unless the mode reads; ``put_many`` does nothing unless it
    writes.  The file is created on the first write, never by a lookup.
    """

    def __init__(self, path: str | os.PathLike[str], mode: str = "readwrite") -> None:
        if mode not in MODES:
            raise ConfigError(f"cache: expected one of {', '.join(MODES)}, got {mode!r}")
        self.path = Path(path)
        self.mode = mode
        self._local = threading.local()
        self._ready = False  # schema created (by this object, in this process)
        self._lock = threading.Lock()

    @property
    def reads(self) -> bool:
        return self.mode in ("read", "readwrite")

    @property
    def writes(self) -> bool:
        return self.mode in ("write", "readwrite")

    def __repr__(self) -> str:
        return f"ResponseCache({str(self.path)!r}, mode={self.mode!r})"

    # -- connections: one per process and thread ------------------------------------------

    def _connect(self, create: bool) -> sqlite3.Connection | None:
        local = self._local
        conn: sqlite3.Connection | None = getattr(local, "conn", None)
        if conn is not None and getattr(local, "pid", None) == os.getpid():
            if create and not self._ready:
                self._create(conn)
            return conn
        # A connection inherited through fork() must not be used: open a new one.
        if not create and not self.path.exists():
            return None
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            if create:
                self._create(conn)
            else:
                self._check_version(conn)
        except sqlite3.DatabaseError as e:
            raise self._unusable(e) from None
        local.conn, local.pid = conn, os.getpid()
        return conn

    def _create(self, conn: sqlite3.Connection) -> None:
        with self._lock:
            self._check_version(conn)
            # WAL: readers in other processes never wait for a writer; NORMAL sync is
            # durable enough for a cache (a power cut can lose the last commits, not corrupt).
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.executescript(_SCHEMA)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            self._ready = True

    def _check_version(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise ConfigError(
                f"response cache {self.path} was written by a newer llmops (schema {version}); "
                "upgrade llmops, or use another --llmops-cache-path"
            )

    def _unusable(self, e: Exception) -> ConfigError:
        return ConfigError(
            f"response cache {self.path} cannot be used ({e}); delete the file, or turn the cache off "
            "with --llmops-cache off"
        )

    def close(self) -> None:
        """Close this thread's connection (others close when their thread ends)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "pid", None) == os.getpid():
            conn.close()
        self._local.conn = None

    # -- the two operations the sampler needs ----------------------------------------------

    def get_many(self, keys: Iterable[str]) -> dict[str, Response]:
        """The cached responses among ``keys`` (none unless the mode reads)."""
        wanted = list(dict.fromkeys(keys))
        if not self.reads or not wanted:
            return {}
        conn = self._connect(create=False)
        if conn is None:
            return {}
        found: dict[str, Response] = {}
        try:
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start : start + _CHUNK]
                rows = conn.execute(
                    "SELECT key, output, input_tokens, output_tokens, latency_s FROM responses "
                    f"WHERE key IN ({','.join('?' * len(chunk))})",
                    chunk,
                )
                for key, output, tokens_in, tokens_out, latency in rows:
                    found[key] = Response(output, tokens_in, tokens_out, latency)
        except sqlite3.OperationalError as e:
            if "no such table" in str(e):
                return {}  # a file created by someone else that has no entries yet
            raise self._unusable(e) from None
        except sqlite3.DatabaseError as e:
            raise self._unusable(e) from None
        return found

    def put_many(self, model: str, items: Sequence[tuple[str, Response]], *, now: float | None = None) -> None:
        """Record responses of ``model`` (nothing unless the mode writes); a key written again is replaced."""
        if not self.writes or not items:
            return
        created = time.time() if now is None else now
        conn = self._connect(create=True)
        assert conn is not None
        rows = [(k, model, r.output, r.input_tokens, r.output_tokens, r.latency_s, created) for k, r in items]
        try:
            conn.execute("BEGIN IMMEDIATE")  # take the write lock now, waiting up to the busy timeout
            try:
                conn.executemany("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.DatabaseError as e:
            raise self._unusable(e) from None

    # -- maintenance (the `llmops cache` command) ------------------------------------------

    def stats(self) -> CacheStats:
        conn = self._connect(create=False)
        if conn is None:
            return CacheStats(self.path, 0, 0, 0, None, None)
        try:
            count, models, oldest, newest = conn.execute(
                "SELECT COUNT(*), COUNT(DISTINCT model), MIN(created), MAX(created) FROM responses"
            ).fetchone()
        except sqlite3.OperationalError as e:
            if "no such table" not in str(e):
                raise self._unusable(e) from None
            count, models, oldest, newest = 0, 0, None, None
        except sqlite3.DatabaseError as e:
            raise self._unusable(e) from None
        size = sum(p.stat().st_size for p in (self.path, Path(f"{self.path}-wal")) if p.exists())
        return CacheStats(self.path, count, models, size, oldest, newest)

    def prune(self, older_than_s: float, *, now: float | None = None) -> int:
        """Delete entries recorded more than ``older_than_s`` seconds ago; returns how many."""
        cutoff = (time.time() if now is None else now) - older_than_s
        return self._delete("DELETE FROM responses WHERE created < ?", (cutoff,))

    def clear(self) -> int:
        """Delete every entry; returns how many."""
        return self._delete("DELETE FROM responses", ())

    def _delete(self, sql: str, params: tuple[Any, ...]) -> int:
        if not self.path.exists():
            return 0
        conn = self._connect(create=True)
        assert conn is not None
        try:
            removed = conn.execute(sql, params).rowcount
            if removed:
                try:
                    conn.execute("VACUUM")  # give the space back to the disk
                except sqlite3.OperationalError:
                    pass  # another process has the file open; the space is reused by later writes
        except sqlite3.DatabaseError as e:
            raise self._unusable(e) from None
        return int(removed)


_open: dict[tuple[str, str], ResponseCache] = {}
_open_lock = threading.Lock()


def open_cache(mode: str, path: str | os.PathLike[str] | None) -> ResponseCache | None:
    """The process's ResponseCache for ``path`` and ``mode``; None when off or without a path.

    One object per file and mode, so every Run of a session (and of the process) shares its
    connections.  Under pytest the plugin sets the path (``<rootdir>/.llmops/cache.sqlite``);
    a library user gives ``cache_path=`` to turn the cache on.
    """
    if mode == "off" or path is None:
        return None
    if mode not in MODES:
        raise ConfigError(f"cache: expected one of {', '.join(MODES)}, got {mode!r}")
    key = (str(Path(path).resolve()), mode)
    with _open_lock:
        if key not in _open:
            _open[key] = ResponseCache(key[0], mode)
        return _open[key]


# -- `llmops cache stats | clear | prune --older-than DURATION` ------------------------------

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> float:
    """'7d', '12h', '30m', '90s', '2w' (or a sum such as '1d12h') in seconds."""
    raw = str(text).strip().lower()
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([smhdw])", raw)
    if not raw or not parts or re.sub(r"(\d+(?:\.\d+)?)\s*([smhdw])", "", raw).strip():
        raise ConfigError(f"--older-than: expected a duration such as 7d, 12h, 30m or 90s, got {text!r}")
    return sum(float(n) * _UNITS[u] for n, u in parts)


def _ago(t: float | None, now: float) -> str:
    if t is None:
        return "-"
    s = max(0.0, now - t)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s / size:.0f}{unit} ago"
    return f"{s:.0f}s ago"


def _size(n: int) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def cmd_stats(args: argparse.Namespace) -> int:
    cache = ResponseCache(args.path)
    if not cache.path.exists():
        print(f"{cache.path}: no response cache yet (0 responses)")
        return 0
    s = cache.stats()
    now = time.time()
    print(
        f"{s.path}: {s.responses} responses from {s.models} model{'s' if s.models != 1 else ''}, "
        f"{_size(s.size_bytes)}; oldest {_ago(s.oldest, now)}, newest {_ago(s.newest, now)}"
    )
    return 0


def cmd_clear(args: argparse.Namespace) -> int:
    cache = ResponseCache(args.path)
    if not cache.path.exists():
        print(f"{cache.path}: no response cache, nothing to clear")
        return 0
    removed = cache.clear()
    print(f"{cache.path}: removed {removed} responses")
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    seconds = parse_duration(args.older_than)
    cache = ResponseCache(args.path)
    if not cache.path.exists():
        print(f"{cache.path}: no response cache, nothing to prune")
        return 0
    removed = cache.prune(seconds)
    left = cache.stats().responses
    print(f"{cache.path}: removed {removed} responses older than {args.older_than}; {left} left")
    return 0


def _one_line_errors(fn: Any, action: str) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            return int(fn(args))
        except (LlmopsError, sqlite3.Error, OSError) as e:
            print(f"llmops cache {action}: {e}", file=sys.stderr)
            return 2

    return run


def add_cli(subparsers: Any) -> None:
    """Register ``llmops cache stats|clear|prune`` on the ``llmops`` command's subparsers.

    Each handler is ``args.fn(args) -> exit code``, prints one line, and reports errors
    as one line on stderr (exit code 2).
    """
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--path", type=Path, default=DEFAULT_PATH, help=f"the cache file (default {DEFAULT_PATH}, as under pytest)"
    )
    p = subparsers.add_parser("cache", help="the response cache: stats, clear, prune")
    actions = p.add_subparsers(dest="cache_command", required=True)
    a = actions.add_parser("stats", parents=[common], help="how many responses, from how many models, how big")
    a.set_defaults(fn=_one_line_errors(cmd_stats, "stats"))
    a = actions.add_parser("clear", parents=[common], help="delete every response")
    a.set_defaults(fn=_one_line_errors(cmd_clear, "clear"))
    a = actions.add_parser("prune", parents=[common], help="delete responses recorded before a given age")
    a.add_argument("--older-than", required=True, metavar="DURATION", help="e.g. 7d, 12h, 30m, 90s")
    a.set_defaults(fn=_one_line_errors(cmd_prune, "prune"))


def main(argv: list[str] | None = None) -> int:
    """``llmops cache ...`` on its own: ``main(["prune", "--older-than", "7d"])``."""
    parser = argparse.ArgumentParser(prog="llmops")
    add_cli(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["cache", *(argv or [])])
    return int(args.fn(args))
