"""Provider faults: one suite run at several fault rates, and the request-count reconciliation.

The model is LangChain's real ``ChatOpenAI`` (with its default ``max_retries``: llmops turns the
client's own retries off) against the loopback fault server of ``tests/fake_openai.py``, which
injects, at the given total rate, a mix of 429 (Retry-After 0.2 s), 500, 502, 503, timeouts,
connection resets, malformed bodies, empty choices and slow streams.  Each run is a fresh
pytest process (concurrency 4, llmops's default backoff, ``--llmops-timeout 2``) over six
tests: two whose answers always pass, two that always fail, and two over ten cases of which
one or three always fail.

For each run the table shows the requests the server saw against llmops's calls + retries
(they must agree), the samples looked at as pass, fail or error (each once; ``unused`` were
drawn in a batch and not needed), and whether each verdict is the no-fault run's.

    .venv/bin/python benchmarks/faults.py            # about two minutes
    .venv/bin/python benchmarks/faults.py --rates 0 0.1 0.3

Writes the table to benchmarks/results/faults.md as well.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from fake_openai import FakeOpenAI  # noqa: E402  (the test suite's fault server)

SUITE = """
import os
import pytest
from langchain_openai import ChatOpenAI
from llmops import Case, Prompt, checks

@pytest.fixture
def llmops_model():
    return ChatOpenAI(model="gpt-test", api_key="sk-bench-faults", base_url=os.environ["BASE_URL"])

PROMPT = Prompt("answer", "answer for {kind} {i}")

@pytest.mark.parametrize("kind", ["good-a", "good-b", "bad-a", "bad-b"])
def test_one_case(llmops, kind):
    llmops.sample(PROMPT, Case({"kind": kind, "i": 0})).expect(checks.json_valid(), at_least=0.8)

@pytest.mark.parametrize("bad", [1, 3])
def test_ten_cases(llmops, bad):
    cases = [Case({"kind": "bad" if i < bad else "good", "i": i}, id=f"c{i}") for i in range(10)]
    llmops.sample(PROMPT, cases).expect(checks.json_valid(), at_least=0.8)
"""

# The share of each fault in the mix; scaled to the total rate of a run.
MIX = {
    "429": 4,
    "500": 2,
    "502": 1,
    "503": 2,
    "timeout": 1,
    "reset": 2,
    "malformed": 2,
    "empty_choices": 2,
    "slow_stream": 2,
}


def reply(request: dict) -> str:
    text = request["messages"][-1]["content"]
    return "not json" if " bad" in text else '{"ok": true}'


def run(project: Path, rate: float, *args: str) -> dict[str, object]:
    faults = {name: rate * share / sum(MIX.values()) for name, share in MIX.items()} if rate else None
    with FakeOpenAI(reply, faults=faults, seed=7, retry_after=0.2, hang=5, stream_delay=0.02) as server:
        env = {
            **os.environ,
            "BASE_URL": server.base_url,
            "LLMOPS_TRACKING": "off",
            "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
        }
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "pytest_plugin.plugin"]
        command += ["--llmops-report-json=r.json", "--llmops-cache=off", "--llmops-timeout=2", *args]
        start = time.perf_counter()
        proc = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=900)
        wall = time.perf_counter() - start
        counts = server.counts()
        requests = server.requests
    if proc.returncode not in (0, 1):
        sys.exit(f"pytest failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    results = json.loads((project / "r.json").read_text())["results"]
    return {
        "requests": requests,
        "faults": requests - counts["ok"] - counts["slow_stream"],
        "calls": sum(r["calls"] for r in results),
        "retries": sum(r["retries"] for r in results),
        "pass": sum(r["k"] for r in results),
        "fail": sum(r["n"] - r["k"] for r in results),
        "error": sum(r["errors"] for r in results),
        "unused": sum(r["unused"] for r in results),
        "verdicts": {r["test_id"].split("::")[-1]: r["verdict"] for r in results},
        "wall": wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[0.0, 0.05, 0.1, 0.2, 0.3])
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        (project / "test_suite.py").write_text(SUITE)
        (project / "pytest.ini").write_text("[pytest]\n")
        os.environ.setdefault("LLMOPS_CACHE_DIR", str(project / "designs"))
        runs = [(rate, "3 (default)", run(project, rate)) for rate in args.rates]
        top = max(args.rates)
        runs.append((top, "0", run(project, top, "--llmops-retries=0", "--llmops-error-budget=0.5")))
        runs.append((top, "0, error budget 10%", run(project, top, "--llmops-retries=0")))

    reference = runs[0][2]["verdicts"]
    header = (
        "| fault rate | retries | server requests | of them faults | llmops calls | retries | calls + retries "
        "| agree | samples pass / fail / error | unused | verdicts as without faults | wall |"
    )
    lines = [header, "|" + "---|" * 12]
    for rate, retries, r in runs:
        total = int(r["calls"]) + int(r["retries"])  # type: ignore[call-overload]
        verdicts: dict[str, str] = r["verdicts"]  # type: ignore[assignment]
        same = sum(verdicts.get(k) == v for k, v in reference.items())  # type: ignore[union-attr]
        changed = [f"{k}: {reference[k]} -> {v}" for k, v in verdicts.items() if reference.get(k) != v]  # type: ignore[index]
        if len(changed) == len(reference) and len(set(verdicts.values())) == 1:
            changed = [f"all {next(iter(verdicts.values()))}"]
        lines.append(
            f"| {rate:.0%} | {retries} | {r['requests']} | {r['faults']} | {r['calls']} | {r['retries']} | {total} "
            f"| {'yes' if total == r['requests'] else 'NO'} | {r['pass']} / {r['fail']} / {r['error']} | {r['unused']} "
            f"| {same} of {len(reference)}{' (' + '; '.join(changed) + ')' if changed else ''} "  # type: ignore[arg-type]
            f"| {float(r['wall']):.1f} s |"  # type: ignore[arg-type]
        )
    verdict_line = ", ".join(f"{k} {v}" for k, v in reference.items())  # type: ignore[union-attr]
    text = "\n".join(
        [
            "Fault mix (shares of the rate): " + ", ".join(f"{k} {v}" for k, v in MIX.items()) + ".",
            f"No-fault verdicts: {verdict_line}.",
            "",
            *lines,
            "",
            f"Python {sys.version.split()[0]}, {time.strftime('%Y-%m-%d')}; `python benchmarks/faults.py`.",
        ]
    )
    print(text)
    out = ROOT / "benchmarks" / "results" / "faults.md"
    out.write_text("# Provider faults: request-count reconciliation\n\n" + text + "\n", encoding="utf-8")
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
