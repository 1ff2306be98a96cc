"""Memory: peak RSS of a whole pytest session by the number of samples it draws.

A generated suite of T tests, each one requirement ("valid JSON at least 90%") over one
case, sampled to its cap of 1000 samples from an in-process model that answers at once
(``harness.PatternModel``: the sequential test stays undecided up to the cap, so every
sample is drawn, checked and looked at).  10 tests are 10,000 samples, 100 tests 100,000.
Tracking off, reports off: what is measured is what llmops keeps per sample (results,
the per-test report properties that carry results to the summary, progress).

Target (issue 12): 100,000 samples in under 300 MB peak RSS.

    .venv/bin/python benchmarks/memory.py          # about a minute
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from harness import HERE, PYTHON, bench_env, machine, measure, median, table

CONFTEST = f"""
import sys
import pytest

sys.path.insert(0, {str(HERE)!r})

@pytest.fixture
def llmops_model():
    from harness import PatternModel

    return PatternModel()
"""

TEST = """
import pytest
from llmops import Prompt, checks

PROMPT = Prompt("memory", "Reply in JSON to: {question}")

@pytest.mark.parametrize("t", range(TESTS))
def test_memory(llmops, t):
    run = llmops.sample(PROMPT, {"question": f"question {t}"}, max_samples=SAMPLES)
    run.evaluate(checks.json_valid(), at_least=0.9)
"""


def session(tests: int, samples: int, rounds: int) -> tuple[float, float, str]:
    """(median peak RSS in MB, median wall s, last output line) of a pytest session of tests x samples."""
    project = Path(tempfile.mkdtemp(prefix="llmops-memory-"))
    (project / "pytest.ini").write_text("[pytest]\n")
    (project / "conftest.py").write_text(CONFTEST)
    (project / "test_memory.py").write_text(TEST.replace("TESTS", str(tests)).replace("SAMPLES", str(samples)))
    cmd = [PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--llmops-tracking", "off", "--llmops-cache", "off"]
    runs = [measure(cmd, cwd=project, env=bench_env()) for _ in range(rounds)]
    for m in runs:
        if m.returncode != 0:
            raise SystemExit(f"the memory suite failed (exit {m.returncode}):\n{m.output[-2000:]}")
    tail = runs[-1].output.strip().splitlines()[-1]
    return median([m.rss_mb for m in runs]), median([m.wall for m in runs]), tail


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=1000, help="samples per test")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    rows, rss = [], {}
    for tests in (0, 10, 100):
        if tests == 0:  # the same session with no llmops sample: pytest, plugins and imports
            mb, wall, tail = session(1, 200, args.rounds)
            label = "1 test x 200 samples (start-up)"
            total = 200
        else:
            mb, wall, tail = session(tests, args.samples, args.rounds)
            total = tests * args.samples
            label = f"{tests} tests x {args.samples} samples"
        rss[total] = mb
        rows.append([label, f"{total:,}", f"{mb:.0f} MB", f"{wall:.1f} s", tail])
    grow = rss[100 * args.samples] - rss[10 * args.samples]
    per = 1e6 * grow / (90 * args.samples)  # bytes per sample, MB -> bytes ~ 1e6
    print("## Memory: peak RSS of a pytest session by samples drawn (in-process zero-latency model)\n")
    print(f"{machine()}; median of {args.rounds}\n")
    print(table(["session", "samples", "peak RSS", "wall", "pytest says"], rows))
    print(
        f"\ngrowth from {10 * args.samples:,} to {100 * args.samples:,} samples: {grow:+.0f} MB (about {per:.0f} bytes per sample)"
    )
    print(f"100,000 samples under 300 MB: {'yes' if rss[100 * args.samples] < 300 else 'NO'}")


if __name__ == "__main__":
    main()
