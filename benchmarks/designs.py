"""Sequential designs: build time, load time, exact error rates and expected calls.

For each design (threshold theta, tolerance delta, false alarm alpha, miss beta) it builds
the truncated SPRT cold (no cache), stores it and loads it back from disk, and prints the
exact false-alarm and miss rates with the expected calls, as a percentage of the fixed-size
design's N, at theta, at theta - delta and at the worst rate on a grid between them.
Times are CPU seconds of this process.

    .venv/bin/python benchmarks/designs.py          # about a minute

Writes the tables to benchmarks/results/designs.md as well.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from llmops.stats import fixed_n
from llmops.stats import sequential as seq

GRID = [(0.95, 0.01), (0.99, 0.01), (0.5, 0.05), (0.9, 0.1), (0.8, 0.1), (0.5, 0.1), (0.95, 0.05), (0.99, 0.005)]
ALPHAS = (0.01, 0.05, 0.001)
BETAS = (0.05, 0.1)
USUAL = [0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99]  # default tolerance min(0.1, 1 - theta)
TIGHT = [(0.9, 0.1, 0.01, 0.05), (0.5, 0.1, 0.01, 0.05), (0.95, 0.01, 0.01, 0.05)]
HEADER = (
    "| theta | delta | alpha | beta | fixed N | cap | build s | load s | false alarm | miss "
    "| calls at theta | calls at theta - delta | worst calls between |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def row(theta: float, delta: float, alpha: float, beta: float, max_n: int | None = None) -> tuple[str, float]:
    n_fixed = fixed_n(theta, delta, alpha, beta)[0]
    cap = math.ceil(seq.CAP_FACTOR * n_fixed) if max_n is None else max_n
    start = time.process_time()
    fixed_n.cache_clear()  # the build includes finding the fixed N
    fixed_n(theta, delta, alpha, beta)
    d = seq._build(theta, delta, alpha, beta, cap, n_fixed)
    build = time.process_time() - start

    path = seq._cache_path(theta, delta, alpha, beta, cap)
    assert path is not None
    seq._store(path, d)
    start = time.perf_counter()
    loaded = seq._load(path, theta, delta, alpha, beta, cap)
    load = time.perf_counter() - start
    assert loaded == d, "the design read back from disk differs"

    def pct(p: float) -> float:
        return 100 * d.operating(p).expected_n / n_fixed

    worst = max(pct(p) for p in np.linspace(theta - delta, theta, 21))
    text = (
        f"| {theta:g} | {delta:g} | {alpha:g} | {beta:g} | {n_fixed} | {cap} | {build:.2f} | {load:.4f} "
        f"| {d.false_alarm:.5f} | {d.miss:.5f} | {pct(theta):.1f}% | {pct(theta - delta):.1f}% | {worst:.1f}% |"
    )
    print(text, flush=True)
    return text, build


def table(title: str, note: str, rows: list[tuple[float, float, float, float, int | None]]) -> tuple[str, float]:
    print(f"\n## {title}\n\n{HEADER}", flush=True)
    built = [row(*r) for r in rows]
    slowest = max(b for _, b in built)
    return "\n".join([f"## {title}", "", note, "", HEADER, *(t for t, _ in built)]), slowest


def main() -> None:
    start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["LLMOPS_CACHE_DIR"] = tmp  # never touch the user's cache
        usual, s1 = table(
            "Usual designs",
            "Default tolerance min(0.1, 1 - theta), false alarm 0.01, miss 0.05, cap 1.2 x fixed N. "
            "Calls are expected calls as % of the fixed N.",
            [(t, round(min(0.1, 1 - t), 6), 0.01, 0.05, None) for t in USUAL],
        )
        grid, s2 = table(
            "Grid, including tight tolerances",
            "Cap 1.2 x fixed N.  Calls are expected calls as % of the fixed N.",
            [(t, d, a, b, None) for t, d in GRID for a in ALPHAS for b in BETAS],
        )
        tight, s3 = table(
            "Caps close to the fixed N",
            "Caps from the fixed N up: the design must exist for each (the binomial saw-tooth makes "
            "some caps decide by a smaller size, e.g. 392 for 0.5 / 0.1 decides by 391).",
            [
                (*args, n + extra)
                for args in TIGHT
                for n in [fixed_n(*args)[0]]
                for extra in (0, 1, 3, math.ceil(0.05 * n), math.ceil(0.1 * n))
            ],
        )
    text = (
        "# Sequential designs\n\n"
        f"Build: CPU seconds, cold (no cache), including the fixed N; load: seconds to read the design "
        f"back from its cache file.  DESIGN_VERSION {seq.DESIGN_VERSION}, CAP_FACTOR {seq.CAP_FACTOR}.\n\n"
        f"{usual}\n\n{grid}\n\n{tight}\n\n"
        f"Slowest build: {max(s1, s2, s3):.2f} s CPU.  ({time.time() - start:.0f} s in all)\n"
    )
    out = Path(__file__).parent / "results" / "designs.md"
    out.write_text(text)
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
