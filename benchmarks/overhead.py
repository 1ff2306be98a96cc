"""Overhead: llmops's own time per sample, with an in-process model that answers at once.

The model (``harness.PatternModel``) returns a fixed answer with no latency, so what is
measured is llmops's work per sample: scheduling on the sampler's loop, the check, the
sequential statistics, the results and the bookkeeping.  Per sample: (wall - the model's own
time for the same calls) / samples, median of 5 repetitions, in this process (no pytest).

- verdict loop: one requirement ("valid JSON at least 90%") whose answers keep the
  sequential test undecided up to its cap of N samples: every sample is drawn, checked and
  observed in stream order;
- store_samples: a requirement that decides at once, then N samples drawn after it;
- ten cases: the verdict loop over ten cases (each draw a random case).

Target (issue 12): under 100 us per sample.

    .venv/bin/python benchmarks/overhead.py          # about 30 seconds
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

from harness import PatternModel, machine, median, table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from llmops import Prompt, Session, checks

PROMPT = Prompt("overhead", "Reply in JSON to: {question}")


def model_time(n: int) -> float:
    """The model's own time for n calls, without llmops."""
    model = PatternModel()

    async def calls() -> None:
        for _ in range(n):
            await model.generate([], seed=0)

    start = time.perf_counter()
    asyncio.run(calls())
    return time.perf_counter() - start


def once(kind: str, n: int, concurrency: int) -> tuple[float, int]:
    """(wall seconds, samples drawn) for one scenario."""
    session = Session(model=PatternModel(), cache="off", concurrency=concurrency)
    cases = [{"question": f"q{i}"} for i in range(10)] if kind == "ten cases" else {"question": "q"}
    start = time.perf_counter()
    if kind == "store_samples":
        run = session.sample(PROMPT, cases, store_samples=n)
        result = run.evaluate(checks.json_valid(), at_least=0.5)
    else:
        run = session.sample(PROMPT, cases, max_samples=n)
        result = run.evaluate(checks.json_valid(), at_least=0.9)
    wall = time.perf_counter() - start
    return wall, result.calls


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-n", type=int, default=5000)
    p.add_argument("-c", "--concurrency", type=int, default=32)
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    once("verdict loop", 200, args.concurrency)  # warm up: imports, the design's tables, the loop
    rows = []
    for kind in ("verdict loop", "store_samples", "ten cases"):
        per_sample, drawn = [], 0
        for _ in range(args.repeat):
            wall, drawn = once(kind, args.n, args.concurrency)
            per_sample.append((wall - model_time(drawn)) / drawn)
        us = 1e6 * median(per_sample)
        rows.append([kind, drawn, f"{us:.0f} us", "yes" if us < 100 else "NO"])
    print(f"## Overhead per sample (in-process zero-latency model, concurrency {args.concurrency})\n")
    print(f"{machine()}; median of {args.repeat}\n")
    print(table(["scenario", "samples", "llmops per sample", "< 100 us"], rows))


if __name__ == "__main__":
    main()
