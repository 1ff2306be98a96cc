"""A loopback OpenAI-compatible chat server for the benchmarks, in its own process.

    python benchmarks/loopback.py --latency 0.1             # fixed 100 ms
    python benchmarks/loopback.py --latency lognormal:0.5:3  # median 0.5 s, p99 3 s

Prints ``PORT <n>`` when it listens on 127.0.0.1, answers ``POST /v1/chat/completions``
(and ``/chat/completions``) with ``--reply`` after the latency (or, for a share
``1 - --valid-rate`` of the requests, with a refusal that is not JSON), and ``GET /stats`` with the
number of completions served so far.  It is a single asyncio process (no thread per
connection, unlike tests/fake_openai.py), so the client under test, not the server, is what a
benchmark measures; it stops after ``--max-seconds``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import time
from collections.abc import Callable
from typing import Any

_Z99 = 2.3263478740408408  # the standard normal's 99th percentile


def latency_sampler(spec: str, seed: int = 0) -> Callable[[], float]:
    """``0.1`` (fixed seconds) or ``lognormal:MEDIAN:P99``."""
    rng = random.Random(seed)
    if spec.startswith("lognormal:"):
        median, p99 = (float(x) for x in spec.split(":")[1:3])
        mu, sigma = math.log(median), math.log(p99 / median) / _Z99
        return lambda: rng.lognormvariate(mu, sigma)
    fixed = float(spec)
    return lambda: fixed


class Server:
    def __init__(self, latency: str, reply: str, seed: int, valid_rate: float = 1.0) -> None:
        self.latency = latency_sampler(latency, seed)
        self.reply = reply
        self.valid_rate = valid_rate  # the share of answers that are ``reply``; the others are not JSON
        self.rng = random.Random(seed + 1)
        self.served = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:] if x)}
                body = await reader.readexactly(int(headers.get("content-length", 0)))
                if method == "GET" and path == "/stats":
                    self._send(writer, {"served": self.served})
                elif method == "POST" and path.rstrip("/").endswith("/chat/completions"):
                    request = json.loads(body or b"{}")
                    await asyncio.sleep(self.latency())
                    self.served += 1
                    self._send(writer, self._completion(request))
                else:
                    self._send(writer, {"error": {"message": f"no route {path}"}}, 404)
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    break
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    def _completion(self, request: dict[str, Any]) -> dict[str, Any]:
        words = sum(len(str(m.get("content", "")).split()) for m in request.get("messages", []))
        return {
            "id": f"chatcmpl-{self.served}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.get("model", "gpt-test"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": self._text()},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": {"prompt_tokens": words, "completion_tokens": 1, "total_tokens": words + 1},
        }

    def _text(self) -> str:
        return self.reply if self.valid_rate >= 1 or self.rng.random() < self.valid_rate else "Sorry, I cannot"

    @staticmethod
    def _send(writer: asyncio.StreamWriter, payload: dict[str, Any], status: int = 200) -> None:
        data = json.dumps(payload).encode()
        reason = "OK" if status == 200 else "Not Found"
        writer.write(
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n"
            f"Connection: keep-alive\r\n\r\n".encode()
            + data
        )


async def main(args: argparse.Namespace) -> None:
    server = Server(args.latency, args.reply, args.seed, args.valid_rate)
    tcp = await asyncio.start_server(server.handle, "127.0.0.1", args.port, backlog=1024)
    print("PORT", tcp.sockets[0].getsockname()[1], flush=True)
    async with tcp:
        await asyncio.sleep(args.max_seconds)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--latency", default="0.1", help="seconds, or lognormal:MEDIAN:P99")
    p.add_argument("--reply", default='{"answer": "ok"}')
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--valid-rate", type=float, default=1.0, help="share of answers that are --reply (else not JSON)")
    p.add_argument("--max-seconds", type=float, default=3600.0)
    asyncio.run(main(p.parse_args()))
