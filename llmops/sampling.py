"""Sampler: draws model completions with bounded concurrency, timeouts and retries.

Transient errors (timeouts, connection problems, rate limits, 5xx, malformed response
bodies) are retried with exponential backoff and full jitter, honouring Retry-After when
the client exposes it (capped at ``backoff_max``).  Permanent ones (auth, bad request, not
found) are not retried.  A call that still fails becomes a Sample with ``error`` set: never a
crash of the session, never counted as a pass.  llmops owns the retry policy: the clients'
own retries are turned off where it can (``llmops.models.without_client_retries``), so a
sample's ``attempts`` are its HTTP requests, and a call takes at most ``max_call_seconds``.

With a response cache (``llmops.cache``), requests are looked up before they are drawn: hits
are replayed as samples with ``cached=True`` (no call, no cost; their futures are done when
``submit()`` returns), misses are called, and the successful calls are written by
``flush()``, all in the caller's thread.

``submit()`` starts requests and returns a future per request at once, so a caller that
consumes results in its own order (the sequential tests, in stream order) keeps
``concurrency`` calls in flight without waiting for a batch's slowest call; ``draw()`` waits
for all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import email.utils
import hashlib
import json
import random
import threading
import time
import warnings
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

from llmops.cache import Response, ResponseCache, cache_key, open_cache
from llmops.errors import LlmopsError
from llmops.models import Model, model_identity
from llmops.prompts import Message

T = TypeVar("T")

_PERMANENT_STATUS = {400, 401, 402, 403, 404, 405, 413, 422}
_PERMANENT_NAMES = (
    "AuthenticationError",
    "PermissionDeniedError",
    "BadRequestError",
    "NotFoundError",
    "UnprocessableEntityError",
    "InvalidRequestError",
)


@dataclass(frozen=True)
class Sample:
    """One model call for one case: its output or its error, plus cost and timing."""

    case_id: str
    index: int  # the draw order within the case; statistics walk samples in this order
    output: str | None
    error: str | None = None
    latency_s: float = 0.0
    input_tokens: int | None = None
    output_tokens: int | None = None
    attempts: int = 1
    prompt_version: str = ""
    cached: bool = False  # replayed from the response cache: a sample, but no call and no cost


@dataclass(frozen=True)
class Request:
    case_id: str
    index: int
    messages: list[Message]


#: Permanent errors in a row after which a model is not called again in the session.
PERMANENT_LIMIT = 3

#: Backoff between attempts: full jitter up to BACKOFF_BASE_S * 2**(attempt-1), at most
#: BACKOFF_MAX_S; a Retry-After longer than BACKOFF_MAX_S is cut to it.
BACKOFF_BASE_S = 0.5
BACKOFF_MAX_S = 20.0


class Breaker:
    """Stops calling a model after PERMANENT_LIMIT permanent errors in a row (a wrong key, an
    unknown model): every further call would fail the same way.  One per session."""

    def __init__(self, limit: int = PERMANENT_LIMIT) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._runs: dict[str, tuple[int, str]] = {}  # model id -> (permanent errors in a row, last)

    def record(self, model_id: str, permanent_error: str | None) -> None:
        with self._lock:
            if permanent_error is None:
                self._runs.pop(model_id, None)
            else:
                count, _ = self._runs.get(model_id, (0, ""))
                self._runs[model_id] = (count + 1, permanent_error)

    def cause(self, model_id: str) -> str | None:
        """Why the model is not called any more, or None."""
        with self._lock:
            count, last = self._runs.get(model_id, (0, ""))
        if count < self.limit:
            return None
        return f"the model is not called again in this session after {count} permanent errors in a row: {last}"


class Limit:
    """The session's limit on model calls in flight, shared by every sampler of the session.

    pytest runs a process's tests one after another, so within one process calls overlap
    only within a test (a requirement and its re-sampled baseline, several runs of an async
    test, a judge); under pytest-xdist each worker gets an equal share, so the whole session
    never has more than the limit in flight at the provider.
    """

    def __init__(self, calls: int) -> None:
        self.calls = calls
        self._gate: asyncio.Semaphore | None = None

    def gate(self) -> asyncio.Semaphore:
        """The semaphore, made on the sampler's loop on first use."""
        if self._gate is None:
            self._gate = asyncio.Semaphore(self.calls)
        return self._gate


def _drawn(sample: Sample | None) -> Sample:
    assert sample is not None, "a request that was not withdrawn always ends as a sample"
    return sample


def status_code(exc: BaseException) -> int | None:
    for obj in (exc, getattr(exc, "response", None)):
        code = getattr(obj, "status_code", None) or getattr(obj, "status", None)
        if isinstance(code, int):
            return code
    return None


def is_transient(exc: BaseException) -> bool:
    code = status_code(exc)
    if code is not None:
        return code not in _PERMANENT_STATUS
    if any(cls.__name__ in _PERMANENT_NAMES for cls in type(exc).__mro__):
        return False
    # Programming errors in a user's callable will not fix themselves on retry.
    return not isinstance(exc, (TypeError, AttributeError, NameError, NotImplementedError))


def retry_after(exc: BaseException) -> float | None:
    value = getattr(exc, "retry_after", None)
    headers = getattr(getattr(exc, "response", None), "headers", None)
    if value is None and headers is not None:
        try:
            value = headers.get("retry-after")
        except Exception:
            value = None
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        pass
    try:  # the other form HTTP allows: a date (RFC 9110, 10.2.3)
        when = email.utils.parsedate_to_datetime(str(value))
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - datetime.datetime.now(datetime.UTC)).total_seconds())


def sample_seed(base: int, *parts: object) -> int:
    """A stable per-sample seed from the session seed and the sample's identity."""
    text = "\x1f".join(map(str, (base, *parts)))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


class Sampler:
    def __init__(
        self,
        model: Model,
        *,
        concurrency: int = 4,
        timeout: float = 60.0,
        retries: int = 3,
        seed: int = 0,
        backoff_base: float | None = None,
        backoff_max: float | None = None,
        on_sample: Callable[[Sample], None] | None = None,
        cache: ResponseCache | str | None = None,
        cache_path: str | None = None,
        breaker: Breaker | None = None,
        limit: Limit | None = None,
    ) -> None:
        self.model = model
        self.breaker = breaker  # records permanent errors in a row, to stop calling a doomed model
        self.concurrency = concurrency
        self.timeout = timeout
        self.retries = retries
        self.seed = seed
        self.backoff_base = BACKOFF_BASE_S if backoff_base is None else backoff_base
        self.backoff_max = BACKOFF_MAX_S if backoff_max is None else backoff_max
        self.on_sample = on_sample  # called as each sample completes, replayed ones too (in the sampler's thread)
        # ``cache``: a ResponseCache, or a mode (off, read, write, readwrite) for the file at
        # ``cache_path``.  A model that cannot be named is never cached.
        self.identity = model_identity(model)
        # What the breaker knows a model by: its settings (two clients of one model at two base
        # URLs are two models), else its id.
        self.breaker_key = json.dumps(self.identity, sort_keys=True, default=str) if self.identity else model.id
        if isinstance(cache, str):
            cache = open_cache(cache, cache_path)
        self.cache = cache if self.identity is not None else None
        self.limit = limit  # the session-wide limit on calls in flight, shared with other samplers
        self._gate: asyncio.Semaphore | None = None
        self._fresh: deque[tuple[str, Response]] = deque()  # new answers for the cache, until flush()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def max_call_seconds(self) -> float:
        """The longest one call can take: every attempt timing out, every wait at its cap."""
        return (self.retries + 1) * self.timeout + self.retries * self.backoff_max

    def draw(self, requests: Sequence[Request], seed_key: str = "") -> list[Sample]:
        """Draw all requests (at most ``concurrency`` in flight); results in request order."""
        return self.draw_many({seed_key: list(requests)})[seed_key]

    def draw_many(self, requests: dict[str, list[Request]]) -> dict[str, list[Sample]]:
        """Requests of several prompts (keyed by prompt version) in one batch, interleaved.

        Each sample's seed comes from the session seed, the prompt version, the case and the
        index, so a sample is the same whichever batch draws it.
        """
        futures = self.submit(requests)
        out = {version: [_drawn(f.result()) for f in fs] for version, fs in futures.items()}
        self.flush()
        return out

    # -- streaming: the scheduling loop ------------------------------------------------------

    def submit(self, requests: dict[str, list[Request]]) -> dict[str, list[Future[Sample | None]]]:
        """Start drawing the requests and return at once: a future per request, in request order.

        Calls start as soon as this sampler's ``concurrency`` and the session's ``limit``
        allow, so a caller that keeps submitting keeps the pipe full.  With a cache, the
        requests are looked up here, in the caller's thread (hits are replayed, no call), and
        the new answers are written by ``flush()``, also in the caller's thread: the sqlite
        I/O never runs on the sampler's event loop.  A future cancelled before its call
        starts ends without a call (``Future.cancel()``).
        """
        keys = self._cache_keys(requests)
        hits: dict[tuple[str, int], Response] = {}
        if keys and self.cache is not None:
            try:
                found = self.cache.get_many(keys.values())
            except LlmopsError as e:
                found = self._cache_failed(e)
            hits = {slot: found[key] for slot, key in keys.items() if key in found}
        out: dict[str, list[Future[Sample | None]]] = {version: [] for version in requests}
        jobs = []
        for version, reqs in requests.items():
            for i, r in enumerate(reqs):
                future = Future[Sample | None]()
                out[version].append(future)
                hit = hits.get((version, i))
                if hit is not None:  # replayed here and now: no call, no trip through the event loop
                    self._replay(version, r, hit, future)
                else:
                    jobs.append((version, r, keys.get((version, i)), future))
        if jobs:
            loop = _background_loop()
            loop.call_soon_threadsafe(self._start, loop, jobs)
        return out

    def _replay(self, version: str, r: Request, hit: Response, future: Future[Sample | None]) -> None:
        """A cached answer as a sample (``cached=True``: no call, no cost), its future done at once."""
        future.set_running_or_notify_cancel()
        sample = Sample(
            r.case_id,
            r.index,
            hit.output,
            None,
            hit.latency_s,
            hit.input_tokens,
            hit.output_tokens,
            prompt_version=version,
            cached=True,
        )
        if self.on_sample is not None:
            self.on_sample(sample)
        future.set_result(sample)

    def _start(self, loop: asyncio.AbstractEventLoop, jobs: list[Any]) -> None:
        """On the sampler's loop: a task per job, held until done (the loop keeps only weak references)."""
        for job in jobs:
            task = loop.create_task(self._one(*job))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def flush(self) -> None:
        """Write the answers drawn since the last flush to the response cache (errors never are)."""
        fresh = []
        while self._fresh:
            fresh.append(self._fresh.popleft())
        if fresh and self.cache is not None and self.cache.writes:
            try:
                self.cache.put_many(self.model.id, fresh)
            except LlmopsError as e:
                self._cache_failed(e)

    def _cache_keys(self, requests: dict[str, list[Request]]) -> dict[tuple[str, int], str]:
        """The cache key of each request, by (prompt version, position in its list); {} without a cache."""
        if self.cache is None or self.identity is None:
            return {}
        return {
            (version, i): cache_key(
                self.identity, r.messages, prompt_version=version, case_key=r.case_id, index=r.index, seed=self.seed
            )
            for version, reqs in requests.items()
            for i, r in enumerate(reqs)
        }

    def _cache_failed(self, error: LlmopsError) -> dict[str, Response]:
        """A cache that fails (a broken or foreign file) does not fail the session: sample without it."""
        warnings.warn(f"llmops: {error}; sampling without the response cache", RuntimeWarning, stacklevel=3)
        self.cache = None
        return {}

    @contextlib.asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        """A place among this sampler's ``concurrency`` calls in flight, and among the session's."""
        if self._gate is None:  # made on the sampler's loop, where it is used
            self._gate = asyncio.Semaphore(self.concurrency)
        async with self._gate:
            if self.limit is None:
                yield
            else:
                async with self.limit.gate():
                    yield

    async def _one(self, version: str, r: Request, key: str | None, future: Future[Sample | None]) -> None:
        """One call, on the sampler's loop, when a slot is free; its future gets the sample."""
        try:
            async with self._slot():
                if not future.set_running_or_notify_cancel():
                    return  # cancelled while it waited for a slot: never called
                sample = await self._call(r, sample_seed(self.seed, version, r.case_id, r.index), version)
            if key is not None and sample.error is None and sample.output is not None:  # errors are never cached
                self._fresh.append(
                    (key, Response(sample.output, sample.input_tokens, sample.output_tokens, sample.latency_s))
                )
            if self.on_sample is not None:
                self.on_sample(sample)
        except BaseException as e:  # the caller's thread raises it from the future, never waits forever
            if not future.done():
                if not future.running():
                    future.set_running_or_notify_cancel()
                future.set_exception(e)
            if not isinstance(e, Exception):
                raise
            return
        future.set_result(sample)

    async def _call(self, r: Request, seed: int, version: str = "") -> Sample:
        jitter = random.Random(seed)
        attempt = 0
        while True:
            attempt += 1
            start = time.perf_counter()
            try:
                async with asyncio.timeout(self.timeout):  # no task of its own, unlike wait_for
                    c = await self.model.generate(r.messages, seed=seed)
                if self.breaker is not None:
                    self.breaker.record(self.breaker_key, None)
                return Sample(
                    r.case_id,
                    r.index,
                    c.text,
                    None,
                    time.perf_counter() - start,
                    c.input_tokens,
                    c.output_tokens,
                    attempt,
                    version,
                )
            except Exception as exc:
                if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
                    message = f"timed out after {self.timeout:g}s"
                    transient = True
                else:
                    message = f"{type(exc).__name__}: {exc}"
                    transient = is_transient(exc)
                if not transient or attempt > self.retries:
                    kind = "permanent" if not transient else f"after {attempt} attempts"
                    if self.breaker is not None:
                        self.breaker.record(self.breaker_key, None if transient else message)
                    return Sample(
                        r.case_id,
                        r.index,
                        None,
                        f"{message} ({kind})",
                        time.perf_counter() - start,
                        attempts=attempt,
                        prompt_version=version,
                    )
                await asyncio.sleep(self._backoff(attempt, exc, jitter))

    def _backoff(self, attempt: int, exc: BaseException, jitter: random.Random) -> float:
        """Seconds to wait after failed attempt ``attempt``: jittered exponential, or the server's
        Retry-After when longer, never more than ``backoff_max``."""
        delay = jitter.uniform(0, min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1)))
        return min(self.backoff_max, max(delay, retry_after(exc) or 0.0))


# One event loop in a daemon thread runs every draw: LangChain/httpx async clients bind to
# the loop they first ran on, so a fresh asyncio.run() per draw would break them, and a
# test that is itself async (pytest-asyncio) cannot call asyncio.run() at all.
_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()


def _background_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _loop_lock:
        if _loop is None or _loop.is_closed():
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, name="llmops-sampler", daemon=True).start()
        return _loop


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    future = asyncio.run_coroutine_threadsafe(coro, _background_loop())
    try:
        return future.result()
    except BaseException:
        future.cancel()  # Ctrl-C or SIGTERM while waiting: the calls in flight stop too
        raise
