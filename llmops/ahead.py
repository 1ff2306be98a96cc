"""Look-ahead (``--llmops-prefetch``): every test's requirements sampled side by side.

pytest runs a process's tests one after another, and a sequential test keeps only the
calls in flight that could decide it (a handful, early on), so a suite of short tests
leaves most of ``--llmops-concurrency`` idle and waits on each test's slowest call in turn.
With the look-ahead, before the tests run, the plugin runs each llmops test's body once
with a session whose ``expect()`` only records the requirement (no verdict, nothing
reported), then decides every recorded requirement in a background thread, all under the
session's one limit on calls in flight.  When the test itself runs, its run asks for the
same samples (same prompt version, case, index and seed) and takes them from here instead
of calling the model: each key is drawn once, by whichever of the two runs asks first, and
the other waits for that call.  The test's verdict is then its own, computed in the test
from the same samples, so it is the verdict it would have given without the look-ahead.

Accounting: a call is charged to the budget by the run that made it and counted in the
Result of the test that looked at it; calls the look-ahead made that its test never took
are counted here (``unused``) and shown in the summary.  Requirements whose check asks a
judge are not looked ahead (the judge's calls would be made twice without a cache).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Mapping
from concurrent.futures import Future, wait
from typing import Any

from llmops.errors import StopSampling

Key = Hashable


class AheadStopped(StopSampling):
    """The look-ahead of a test stops: the test itself ran, or the session ends."""


class Ahead:
    """The samples two runs of one test share: the look-ahead's and the test's own."""

    def __init__(self) -> None:
        self.lock = threading.RLock()  # held across take-or-submit, so a key is never drawn twice
        self._open: dict[str, dict[Key, tuple[Future[Any], bool]]] = {}  # test -> key -> (future, made ahead)
        self._closed: set[str] = set()
        self._left: list[Future[Any]] = []  # made ahead, never taken by the test
        self._threads: list[threading.Thread] = []
        self.tests = 0  # tests whose requirements were looked ahead
        self.stopped = False

    # -- the runs' side ----------------------------------------------------------------------

    def take(self, test_id: str, keys: Mapping[Any, Key], ahead: bool) -> dict[Any, Future[Any]]:
        """The futures the other run of this test made for these keys (removed from here).

        Call with ``lock`` held, then ``offer`` what was submitted for the rest.  A look-ahead
        run whose test has run (or a session that ends) is stopped here.
        """
        if ahead and (self.stopped or test_id in self._closed):
            raise AheadStopped("the test ran: its look-ahead stops")
        shared = self._open.get(test_id, {})
        found = {}
        for slot, key in keys.items():
            entry = shared.get(key)
            if entry is not None and entry[1] != ahead:  # made by the other run
                found[slot] = shared.pop(key)[0]
        return found

    def offer(self, test_id: str, futures: Mapping[Key, Future[Any]], ahead: bool) -> None:
        """Futures this run submitted, for the other run of the test to take (call with ``lock`` held)."""
        if test_id in self._closed:
            return
        self._open.setdefault(test_id, {}).update((key, (f, ahead)) for key, f in futures.items())

    # -- the plugin's side -------------------------------------------------------------------

    def start(self, test_id: str, jobs: list[Callable[[], Any]]) -> None:
        """Run a test's recorded requirements in a background thread (daemon: never holds up exit)."""
        if not jobs or self.stopped:
            return
        self.tests += 1

        def work() -> None:
            for job in jobs:
                try:
                    job()
                except StopSampling:
                    return
                except Exception:  # the test itself meets the same error and reports it
                    pass

        thread = threading.Thread(target=work, name=f"llmops-ahead {test_id}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def running(self, test_id: str) -> bool:
        return not self.stopped and test_id not in self._closed

    def close(self, test_id: str) -> None:
        """The test has run: its look-ahead stops, and what it drew that the test did not take is left over."""
        with self.lock:
            self._closed.add(test_id)
            for future, made_ahead in self._open.pop(test_id, {}).values():
                if made_ahead:
                    self._left.append(future)

    def finish(self, timeout: float) -> tuple[int, int, int]:
        """End the look-ahead: stop every test's, wait up to ``timeout`` seconds for calls in flight.

        Returns the calls made ahead that no test took, their requests (retries included), and
        the calls still in flight when it gave up.
        """
        with self.lock:
            self.stopped = True
            for test_id in list(self._open):
                self.close(test_id)
            left = [f for f in self._left if not f.cancel()]  # queued, never started: no call
        deadline = time.monotonic() + timeout
        for thread in self._threads:  # each drains its calls in flight as it stops
            thread.join(max(0.0, deadline - time.monotonic()))
        done, pending = wait(left, timeout=max(0.0, deadline - time.monotonic()))
        calls = [f.result() for f in done if not f.cancelled() and f.exception() is None]
        calls = [x for x in calls if x is not None and not x.cached]  # a replayed sample is no call
        return len(calls), sum(x.attempts for x in calls), len(pending)
