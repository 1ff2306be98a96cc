"""Cache replay of a 1000-sample suite against its live run, at 100 ms per call.

One requirement drawn to 1000 samples (``store_samples=1000``: the verdict decides early,
the rest are drawn in stream order, so all 1000 go through llmops's draw path), from a
real LangChain ``ChatOpenAI`` against the loopback server (``benchmarks/loopback.py``, its
own process) with a fixed latency.  The live run writes the response cache (a sqlite file);
the replay is a new session on the same cache file, which makes no call.

Timed in-process, from ``sample()`` to the verdict (what a suite's tests spend; pytest's
start-up and collection are the same with or without a cache and are shown apart by
``benchmarks/throughput.py``), at llmops's default concurrency (8) and at 32.  Median of
``--rounds``; each round uses a new cache file.  Target (issue 12): replay at least 100x
faster than the live run.

    .venv/bin/python benchmarks/replay.py        # about a minute
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import harness as h

from llmops import Prompt, Session, checks

PROMPT = Prompt("replay", "Reply in JSON to: {question}")


def one(url: str, cache: str, concurrency: int, samples: int) -> tuple[float, int, int, str]:
    """One session: seconds from sample() to the verdict, calls, replayed samples, verdict."""
    from langchain_openai import ChatOpenAI

    model = ChatOpenAI(model="gpt-test", base_url=url, api_key="sk-bench", max_retries=0)
    session = Session(model=model, cache="readwrite", cache_path=cache, concurrency=concurrency, tracking=False)
    start = time.perf_counter()
    result = session.sample(PROMPT, {"question": "q"}).evaluate(
        checks.json_valid(), at_least=0.9, store_samples=samples
    )
    wall = time.perf_counter() - start
    return wall, result.calls, result.replayed, result.verdict


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--samples", type=int, default=1000)
    p.add_argument("--latency", type=float, default=0.1)
    args = p.parse_args()
    rows = []
    with h.loopback(str(args.latency)) as url, tempfile.TemporaryDirectory() as tmp:
        os.environ.update(h.bench_env())
        one(url, str(Path(tmp) / "warm.sqlite"), 8, 20)  # imports and the sequential design, untimed
        for concurrency in (8, 32):
            live, replay = [], []
            for r in range(args.rounds):
                cache = str(Path(tmp) / f"c{concurrency}-{r}.sqlite")
                wall, calls, replayed, verdict = one(url, cache, concurrency, args.samples)
                assert calls == args.samples and replayed == 0, (calls, replayed)
                live.append(wall)
                wall2, calls2, replayed2, verdict2 = one(url, cache, concurrency, args.samples)
                assert calls2 == 0 and replayed2 == args.samples and verdict2 == verdict, (calls2, replayed2)
                replay.append(wall2)
                print(
                    f"concurrency {concurrency}, round {r + 1}: live {wall:.2f} s, replay {wall2 * 1000:.1f} ms",
                    file=sys.stderr,
                )
            lm, rm = statistics.median(live), statistics.median(replay)
            rows.append(
                [
                    concurrency,
                    f"{lm:.2f} s",
                    f"{rm * 1000:.1f} ms",
                    f"{rm / args.samples * 1e6:.0f} us",
                    f"{lm / rm:.0f}x",
                    "yes" if lm / rm >= 100 else "no",
                ]
            )
    print(f"## Cache replay: {args.samples} samples, latency {args.latency * 1000:.0f} ms per call\n")
    print(f"{h.machine()}; median of {args.rounds} rounds; in-process, sample() to verdict\n")
    print(h.table(["concurrency", "live run", "replay", "replay per sample", "speed-up", ">= 100x"], rows))


if __name__ == "__main__":
    main()
