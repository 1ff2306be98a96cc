"""A fake OpenAI chat-completions server on 127.0.0.1, for tests that use a real ChatOpenAI.

    with FakeOpenAI(reply="hello") as server:
        model = ChatOpenAI(model="gpt-test", api_key="sk-...", base_url=server.base_url, max_retries=0)

Behaviours (``behaviour=``, or ``queue(...)`` for the next requests, then back to it):

- ``"ok"``: a chat completion with ``reply`` (a string, or ``fn(request_json) -> str``) and
  usage tokens (words in the messages, words in the reply);
- ``"401"``: an authentication error whose message echoes the key from the Authorization
  header, as OpenAI's does;
- ``"429"``: rate limited, with ``Retry-After: retry_after``;
- ``"500"``: a server error;
- ``"malformed"``: status 200 with a body that is not JSON.

``latency`` seconds pass before each answer.  ``requests`` counts the requests and
``received`` keeps (headers with lower-case names, body) of each.  The server stops when the ``with`` block (or
the ``fake_openai`` fixture) ends.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

BEHAVIOURS = ("ok", "401", "429", "500", "malformed")


class FakeOpenAI:
    def __init__(
        self,
        reply: str | Callable[[dict[str, Any]], str] = "ok",
        *,
        behaviour: str = "ok",
        latency: float = 0.0,
        retry_after: float = 1,
    ) -> None:
        if behaviour not in BEHAVIOURS:
            raise ValueError(f"behaviour {behaviour!r}: use one of {BEHAVIOURS}")
        self.reply, self.behaviour, self.latency, self.retry_after = reply, behaviour, latency, retry_after
        self.received: list[tuple[dict[str, str], dict[str, Any]]] = []
        self._script: list[str] = []
        self._lock = threading.Lock()
        self._http: ThreadingHTTPServer | None = None

    @property
    def requests(self) -> int:
        return len(self.received)

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
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._http.daemon_threads = True
        threading.Thread(target=self._http.serve_forever, name="fake-openai", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _answer(self, handler: Any, headers: dict[str, str], request: dict[str, Any]) -> None:
        with self._lock:
            self.received.append((headers, request))
            behaviour = self._script.pop(0) if self._script else self.behaviour
        if self.latency:
            time.sleep(self.latency)
        if behaviour == "401":
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
        elif behaviour == "500":
            handler._send(500, _error("The server had an error while processing your request.", "server_error", None))
        elif behaviour == "malformed":
            handler._send(200, b'{"id": "chatcmpl-broken", "choices": [')
        else:
            text = self.reply(request) if callable(self.reply) else self.reply
            prompt_words = sum(len(str(m.get("content", "")).split()) for m in request.get("messages", []))
            completion = {
                "id": f"chatcmpl-{self.requests}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": request.get("model", "gpt-test"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                        "logprobs": None,
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_words,
                    "completion_tokens": len(text.split()),
                    "total_tokens": prompt_words + len(text.split()),
                },
            }
            handler._send(200, completion)


def _error(message: str, type_: str, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    """A running FakeOpenAI (behaviour "ok"); set ``.behaviour``/``.reply`` or ``queue(...)`` in the test."""
    with FakeOpenAI() as server:
        yield server
