"""A fake OpenAI chat-completions server on 127.0.0.1, for tests that use a real ChatOpenAI.

    with FakeOpenAI(reply="hello") as server:
        model = ChatOpenAI(model="gpt-test", api_key="sk-...", base_url=server.base_url, max_retries=0)

Behaviours (``behaviour=``, ``queue(...)`` for the next requests, or ``faults=`` rates):

- ``"ok"``: a chat completion with ``reply`` (a string, or ``fn(request_json) -> str``) and
  usage tokens (words in the messages, words in the reply); streamed as server-sent events
  when the request asks for a stream;
- ``"401"``: an authentication error whose message echoes the key from the Authorization
  header, as OpenAI's does;
- ``"429"``: rate limited, with ``Retry-After: retry_after``;
- ``"500"``, ``"502"``, ``"503"``: server errors;
- ``"timeout"``: no answer for ``hang`` seconds, then the connection closes;
- ``"reset"``: the connection is reset (TCP RST) without an answer;
- ``"malformed"``: status 200 with a body that is not JSON;
- ``"empty_choices"``: status 200, a well-formed completion with no choices;
- ``"slow_stream"``: the answer trickles out in pieces, ``stream_delay`` seconds apart.

``faults={"429": 0.1, "reset": 0.05}`` gives each request that behaviour with that chance
(seeded by ``seed`` and the request's arrival number), and ``behaviour`` otherwise.

Bounded: at most ``max_requests`` requests are answered (the rest get a 503 and are logged
as ``"over_limit"``), and the server stops itself ``lifetime`` seconds after it starts.
``latency`` seconds pass before each answer.  ``log`` is the request log: one
``Logged`` per request, in arrival order; ``requests`` counts
them and ``received`` keeps (headers with lower-case names, body) of each.  The server
stops when the ``with`` block (or the ``fake_openai`` fixture) ends.
"""

from __future__ import annotations

import json
import random
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

FAULTS = ("401", "429", "500", "502", "503", "timeout", "reset", "malformed", "empty_choices", "slow_stream")
BEHAVIOURS = ("ok", *FAULTS)
_STATUS = {"401": 401, "429": 429, "500": 500, "502": 502, "503": 503, "timeout": 0, "reset": 0}


@dataclass(frozen=True)
class Logged:
    """One request as the server saw it: its arrival number, what it got, the HTTP status (0: none),
    when it arrived (time.monotonic()) and the text of its last message."""

    number: int
    behaviour: str
    status: int
    at: float
    text: str


class FakeOpenAI:
    def __init__(
        self,
        reply: str | Callable[[dict[str, Any]], str] = "ok",
        *,
        behaviour: str = "ok",
        latency: float = 0.0,
        retry_after: float = 1,
        faults: dict[str, float] | None = None,
        seed: int = 0,
        hang: float = 5.0,
        stream_delay: float = 0.05,
        max_requests: int = 5000,
        lifetime: float = 300.0,
    ) -> None:
        faults = dict(faults or {})
        for name in [behaviour, *faults]:
            if name not in BEHAVIOURS:
                raise ValueError(f"behaviour {name!r}: use one of {BEHAVIOURS}")
        if sum(faults.values()) > 1 or any(rate < 0 for rate in faults.values()):
            raise ValueError(f"fault rates {faults}: each at least 0, together at most 1")
        self.reply, self.behaviour, self.latency, self.retry_after = reply, behaviour, latency, retry_after
        self.faults, self.seed, self.hang, self.stream_delay = faults, seed, hang, stream_delay
        self.max_requests, self.lifetime = max_requests, lifetime
        self.received: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.log: list[Logged] = []
        self._script: list[str] = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._http: ThreadingHTTPServer | None = None

    @property
    def requests(self) -> int:
        return len(self.log)

    def counts(self) -> Counter[str]:
        """Requests by the behaviour they got."""
        with self._lock:
            return Counter(entry.behaviour for entry in self.log)

    @property
    def base_url(self) -> str:
        """What ChatOpenAI takes as ``base_url``."""
        assert self._http is not None, "start() the server first"
        return f"http://127.0.0.1:{self._http.server_address[1]}/v1"

    def queue(self, *behaviours: str) -> None:
        """Answer the next requests with these behaviours, in order, then with ``behaviour``."""
        assert all(b in BEHAVIOURS for b in behaviours), behaviours
        with self._lock:
            self._script.extend(behaviours)

    def start(self) -> FakeOpenAI:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as httpx expects
            disable_nagle_algorithm = True  # headers and body go out at once, no delayed-ACK stall

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._send(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})
                    return
                try:
                    request = json.loads(body or b"{}")
                except ValueError:
                    request = {}
                fake._answer(self, {k.lower(): v for k, v in self.headers.items()}, request)

            def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self._head(status, len(data), headers)
                self.wfile.write(data)

            def _head(self, status: int, length: int | None, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                if length is None:  # server-sent events until the connection closes
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Connection", "close")
                    self.close_connection = True
                else:
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(length))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.flush()

            def _reset(self) -> None:
                """Close with a TCP RST: what a crashed proxy or a dropped connection looks like."""
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.close_connection = True
                self.connection.close()

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

        self._http = _Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._http.serve_forever, name="fake-openai", daemon=True).start()
        timer = threading.Timer(self.lifetime, self.stop)  # bounded in time, whatever the test does
        timer.daemon = True
        timer.start()
        return self

    def stop(self) -> None:
        self._stopped.set()  # hanging answers end now
        http, self._http = self._http, None
        if http is not None:
            http.shutdown()
            http.server_close()

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _pick(self, request: dict[str, Any]) -> tuple[int, str]:
        with self._lock:
            number = len(self.log)
            if number >= self.max_requests:
                behaviour = "over_limit"
            elif self._script:
                behaviour = self._script.pop(0)
            else:
                behaviour = self.behaviour
                u = random.Random(f"{self.seed}:{number}").random()
                for name, rate in sorted(self.faults.items()):
                    if u < rate:
                        behaviour = name
                        break
                    u -= rate
            status = _STATUS.get(behaviour, 503 if behaviour == "over_limit" else 200)
            messages = request.get("messages") or [{}]
            self.log.append(Logged(number, behaviour, status, time.monotonic(), str(messages[-1].get("content", ""))))
            return number, behaviour

    def _answer(self, handler: Any, headers: dict[str, str], request: dict[str, Any]) -> None:
        number, behaviour = self._pick(request)
        with self._lock:
            self.received.append((headers, request))
        if self.latency:
            self._stopped.wait(self.latency)
        if behaviour == "over_limit":
            handler._send(503, _error(f"fake server: more than {self.max_requests} requests", "server_error", None))
        elif behaviour == "401":
            key = headers.get("authorization", "").removeprefix("Bearer ").strip()
            message = (
                f"Incorrect API key provided: {key}. You can find your API key at "
                "https://platform.openai.com/account/api-keys."
            )
            handler._send(401, _error(message, "invalid_request_error", "invalid_api_key"))
        elif behaviour == "429":
            handler._send(
                429,
                _error("Rate limit reached for requests", "requests", "rate_limit_exceeded"),
                {"Retry-After": f"{self.retry_after:g}"},
            )
        elif behaviour in ("500", "502", "503"):
            message = "The server had an error while processing your request."
            handler._send(int(behaviour), _error(message, "server_error", None))
        elif behaviour == "timeout":
            self._stopped.wait(self.hang)
            handler.close_connection = True
        elif behaviour == "reset":
            handler._reset()
        elif behaviour == "malformed":
            handler._send(200, b'{"id": "chatcmpl-broken", "choices": [')
        elif behaviour == "empty_choices":
            handler._send(200, self._completion(number, request, None))
        elif request.get("stream"):
            self._stream(handler, number, request, slow=behaviour == "slow_stream")
        elif behaviour == "slow_stream":  # a plain answer, a few bytes at a time
            data = json.dumps(self._completion(number, request, self._text(request))).encode()
            handler._head(200, len(data))
            step = max(1, len(data) // 5)
            for i in range(0, len(data), step):
                if self._stopped.wait(self.stream_delay):
                    return
                handler.wfile.write(data[i : i + step])
                handler.wfile.flush()
        else:
            handler._send(200, self._completion(number, request, self._text(request)))

    def _text(self, request: dict[str, Any]) -> str:
        return self.reply(request) if callable(self.reply) else self.reply

    def _completion(self, number: int, request: dict[str, Any], text: str | None) -> dict[str, Any]:
        """A chat completion with ``text``, or with no choices at all when ``text`` is None."""
        prompt_words = sum(len(str(m.get("content", "")).split()) for m in request.get("messages", []))
        words = len(text.split()) if text is not None else 0
        choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        return {
            "id": f"chatcmpl-{number}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.get("model", "gpt-test"),
            "choices": [] if text is None else [{**choice, "logprobs": None}],
            "usage": {"prompt_tokens": prompt_words, "completion_tokens": words, "total_tokens": prompt_words + words},
        }

    def _stream(self, handler: Any, number: int, request: dict[str, Any], *, slow: bool) -> None:
        """The answer as server-sent events, a word per chunk (``stream_delay`` apart when slow)."""
        handler._head(200, None)
        base = {"id": f"chatcmpl-{number}", "object": "chat.completion.chunk", "created": int(time.time())}
        base["model"] = request.get("model", "gpt-test")
        words = self._text(request).split(" ")
        for i, word in enumerate(words):
            if slow and self._stopped.wait(self.stream_delay):
                return
            delta = {"role": "assistant", "content": word} if i == 0 else {"content": " " + word}
            chunk = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
            handler.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            handler.wfile.flush()
        done = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        handler.wfile.write(f"data: {json.dumps(done)}\n\ndata: [DONE]\n\n".encode())
        handler.wfile.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet about clients that hang up (a timed-out call, an interrupted session)."""
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


def _error(message: str, type_: str, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    """A running FakeOpenAI (behaviour "ok"); set ``.behaviour``/``.reply`` or ``queue(...)`` in the test."""
    with FakeOpenAI() as server:
        yield server
