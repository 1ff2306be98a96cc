"""A realistic suite: 10 tests, each one prompt on one case, against a model with long-tailed latency.

The loopback server answers valid JSON 95% of the time (the true rate) after a lognormal
latency with median 500 ms and 99th percentile 3 s.  Each test requires valid JSON at
least 90% of the time.

- llmops: 10 pytest tests, ``run.expect(checks.json_valid(), at_least=0.9)`` each (default
  tolerance, false-alarm and miss rates), concurrency 32; in one process (no call drawn
  that the test could not need), in one process with ``--llmops-overshoot 8`` (up to 8
  samples drawn ahead of need, to wait less on slow calls), and with pytest-xdist ``-n 2``
  (the 32 calls in flight shared by the two workers, which run tests side by side);
- promptfoo: the same 10 prompts and cases, ``eval --repeat 100 -j 32 --no-cache`` with an
  ``is-json`` assertion: a fixed 100 samples per test, what a team would run without a
  sequential test.

Wall time is the whole process; calls are what the server counted; verdicts are llmops's
PASS count and promptfoo's pass rate.  Median of ``--rounds`` paired rounds.  Target (issue
12): llmops's wall time at most promptfoo's, with at least 50% fewer calls.

    .venv/bin/python benchmarks/suite_latency.py        # about 5 minutes
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path

import harness as h

TESTS = 10
TEST = """
import pytest
from llmops import Prompt, checks

PROMPT = Prompt("suite", "Reply in JSON to: {question}")

@pytest.mark.parametrize("t", range(TESTS))
def test_suite(llmops, t):
    llmops.sample(PROMPT, {"question": f"question {t}"}).expect(checks.json_valid(), at_least=0.9)
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("-c", "--concurrency", type=int, default=32)
    p.add_argument("--repeat", type=int, default=100, help="promptfoo's samples per test")
    p.add_argument("--only", nargs="*", help="run only the rows whose label contains one of these words")
    args = p.parse_args()
    c = args.concurrency
    work = Path(tempfile.mkdtemp(prefix="llmops-suite-"))
    (work / "pytest.ini").write_text("[pytest]\n")
    (work / "conftest.py").write_text(h.LANGCHAIN_CONFTEST)
    (work / "test_suite.py").write_text(TEST.replace("TESTS", str(TESTS)))
    pf_cmd, pf_version = h.promptfoo()
    pytest_cmd = [h.PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--llmops-concurrency={c}"]
    pytest_cmd += ["--llmops-tracking", "off", "--llmops-cache", "off", "--llmops-report-json", "r.json"]
    rows: dict[str, list[str] | None] = {
        f"llmops, one process, concurrency {c}": pytest_cmd,
        f"llmops, one process, concurrency {c}, overshoot 8": [*pytest_cmd, "--llmops-overshoot=8"],
        f"llmops, pytest-xdist -n 2, concurrency {c} shared": [*pytest_cmd, "-n", "2"],
        f"llmops, one process, concurrency {c}, `--llmops-prefetch on`": [*pytest_cmd, "--llmops-prefetch=on"],
    }
    if args.only:
        rows = {k: v for k, v in rows.items() if any(word in k for word in args.only)}
    pf_label = f"{pf_version} `--repeat {args.repeat} -j {c} --no-cache`"
    with h.loopback("lognormal:0.5:3", valid_rate=0.95) as url:
        env = h.bench_env(BENCH_BASE_URL=url, OPENAI_BASE_URL=url, PROMPTFOO_CONFIG_DIR=str(work / "promptfoo-home"))
        if pf_cmd is not None:
            config = work / "promptfooconfig.yaml"
            config.write_text(h.promptfoo_config(url, [f"question {t}" for t in range(TESTS)]))
            rows[pf_label] = [*pf_cmd, "eval", "-c", str(config), "--repeat", str(args.repeat), "-j", str(c)]
            rows[pf_label] += ["--no-cache", "--no-progress-bar", "--no-table", "-o", str(work / "pf.json")]
        walls: dict[str, list[float]] = {k: [] for k in rows}
        calls: dict[str, list[int]] = {k: [] for k in rows}
        verdicts: dict[str, str] = {}
        for r in range(args.rounds):
            for label, cmd in rows.items():
                assert cmd is not None
                before = h.served(url)
                m = h.measure(cmd, cwd=work, env=env)
                made = h.served(url) - before
                walls[label].append(m.wall)
                calls[label].append(made)
                verdicts[label] = _verdicts(label, work, m.output)
                print(f"round {r + 1}: {label}: {m.wall:.1f} s, {made} calls, {verdicts[label]}", file=sys.stderr)
    out = []
    for label in rows:
        out.append([label, f"{h.median(walls[label]):.1f} s", f"{h.median(calls[label]):.0f}", verdicts[label]])
    if pf_cmd is None:
        out.append([f"promptfoo: {pf_version}", "cannot run here", "", ""])
    print(
        f"## Suite latency: {TESTS} tests, true rate 0.95 against 'at least 0.9', lognormal latency (median 0.5 s, p99 3 s)\n"
    )
    print(f"{h.machine()}; median of {args.rounds} paired rounds; peer: {pf_version}\n")
    print(h.table(["system", "wall", "calls", "verdicts (last round)"], out))


def _verdicts(label: str, work: Path, output: str) -> str:
    if label.startswith("llmops"):
        try:
            results = json.loads((work / "r.json").read_text())["results"]
        except (OSError, ValueError, KeyError):
            return "no results: " + " ".join(output.strip().splitlines()[-2:])[:200]
        passed = sum(r["verdict"] == "PASS" for r in results)
        return f"{passed} of {len(results)} PASS"
    try:
        stats = json.loads((work / "pf.json").read_text())["results"]["stats"]
        return f"{stats['successes']} of {stats['successes'] + stats['failures'] + stats.get('errors', 0)} samples pass"
    except (OSError, ValueError, KeyError):
        return "no results: " + re.sub(r"\s+", " ", output.strip()[-200:])


if __name__ == "__main__":
    main()
