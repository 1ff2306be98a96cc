"""`make demo`: run the example suites against the embedded model and explain what happened.

Three parts: the example suites in one pytest session; the regression story (a prompt is
promoted as the baseline, an edit regresses, the gate fails, the optimizer proposes a
candidate, and the candidate is re-gated on the held-out cases), each step its own pytest
session in a scratch copy of examples/regression; and the red-team suite's attack success
rate per category (it runs in the first session).
"""

from __future__ import annotations

import difflib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent
REGRESSION = HERE / "regression"
WORK = HERE / ".llmops" / "regression-pr"  # a dot directory: the examples session skips it
EXPERIMENT = "llmops-demo-regression"  # its own MLflow experiment, apart from the examples'
OPTIMIZER_BUDGET = 600  # model calls the optimizer may spend, its held-out scoring included

INTRO = """\
llmops demo: example suites (examples/) sampled from SmolLM2-135M-Instruct, a real LLM
running on this CPU (llama.cpp).  Each requirement is sampled only until the sequential
test can decide it with the stated error rates.  A 135M model is weak: several
requirements FAIL on purpose.  The point is that every verdict and number is right.
"""

OUTRO = """\
Demo finished.  The FAILs above are expected (a 135M model leaks its secret and a
customer's e-mail, refuses nothing and cannot answer in JSON); the PASSes are real too.
"calls" is how many samples each verdict needed; "saved vs fixed-N" compares with a
fixed-size test with the same error rates.  Run one suite against a hosted model with:
    .venv/bin/pytest examples/triage --llmops-model openai:gpt-4o-mini
The sessions are logged to MLflow (the run ids are printed above; the regression story in
the experiment "{experiment}"); browse them with:
    .venv/bin/mlflow ui --backend-store-uri sqlite:///mlflow.db
"""


def banner(text: str) -> None:
    print(f"\n{'=' * 100}\n{text}\n{'=' * 100}", flush=True)


def pytest_session(args: list[str], argv: list[str]) -> int:
    """One pytest session on the scratch copy, in its own process (a test module imported
    twice in one process would keep its first prompt)."""
    cmd = [sys.executable, "-m", "pytest", str(WORK), "-c", str(HERE / "pytest.ini"), "--rootdir", str(WORK)]
    cmd += ["--tb=line", "--llmops-cache-path", str(HERE / ".llmops" / "cache.sqlite")]
    return subprocess.run([*cmd, "--llmops-experiment", EXPERIMENT, *args, *argv]).returncode


def regression_story(argv: list[str]) -> int:
    """Baseline, regression, candidate, re-gate; returns the first broken session's exit code."""
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    for name in ("test_sentiment.py", "reviews.jsonl", "prompt.txt"):
        shutil.copy(REGRESSION / name, WORK / name)
    prompt = WORK / "prompt.txt"

    banner("Regression story, step 1 of 3: on main, the prompt passes its gate and is promoted as the baseline")
    print(prompt.read_text(), flush=True)
    code = pytest_session(["--llmops-promote", "baseline"], argv)
    if code != 0:
        print(f"the baseline session did not pass (exit code {code}); the story needs a baseline", flush=True)
        return code

    banner("Step 2 of 3: a pull request edits the prompt; the gate compares it with the baseline")
    edited = (REGRESSION / "prompt_edited.txt").read_text()
    print("".join(difflib.unified_diff(prompt.read_text().splitlines(True), edited.splitlines(True), "main", "pr")))
    prompt.write_text(edited)
    report = WORK / "pr.json"
    code = pytest_session(
        [
            "--llmops-baseline=baseline",
            "--llmops-optimize=on-regression",
            f"--llmops-optimizer-budget={OPTIMIZER_BUDGET}",
            f"--llmops-report-json={report}",
        ],
        argv,
    )
    if code not in (0, 1):
        return code
    record = json.loads(report.read_text())
    candidates = [c for c in record.get("candidates", []) if c.get("version")]
    if not candidates:
        print("the optimizer proposed no candidate (see its message above)", flush=True)
        return 0

    candidate = candidates[0]
    banner("Step 3 of 3: the candidate, applied by hand, is gated against the baseline on the held-out cases")
    held_out = set(candidate["result"]["split"]["test"])
    prompt.write_text(Path(candidate["file"]).read_text())
    cases = [
        line for line in (REGRESSION / "reviews.jsonl").read_text().splitlines() if json.loads(line)["id"] in held_out
    ]
    (WORK / "reviews.jsonl").write_text("\n".join(cases) + "\n")
    print(
        f"prompt.txt <- {candidate['file']}; cases: the {len(cases)} held out by the search ({', '.join(sorted(held_out))})"
    )
    print(prompt.read_text(), flush=True)
    regate = WORK / "regate.json"
    # Another seed: fresh samples of both prompts, not the ones the optimizer scored.
    code = pytest_session(["--llmops-baseline=baseline", "--llmops-seed=1", f"--llmops-report-json={regate}"], argv)
    story(record, candidate, json.loads(regate.read_text()) if regate.exists() else {})
    return code if code not in (0, 1) else 0


def story(pr: dict[str, Any], candidate: dict[str, Any], regate: dict[str, Any]) -> None:
    """The three sessions in a few lines, from their JSON reports."""
    banner("The regression story in short")
    for r in pr.get("results", []):
        print(f"pull request: {r.get('message', '')}")
        if r.get("comparison"):
            print(f"  gate: {r['comparison'].get('message', '')}")
    print(candidate["message"])
    for r in regate.get("results", []):
        print(f"re-gate on held-out cases: {r.get('message', '')}")
        if r.get("comparison"):
            print(f"  gate: {r['comparison'].get('message', '')}")
    sys.stdout.flush()


def red_team(record: dict[str, Any]) -> None:
    """The red-team suite's rates, one line per attack category or check."""
    banner("Red team (examples/redteam): attack success rate per category, and the safety checks")
    print(f"{'what was counted':<42} {'k/n':>7} {'rate':>5}  {'95% interval':<12} verdict")
    for r in record.get("results", []):
        if "redteam/" not in r.get("test_id", ""):
            continue
        test = r["test_id"].split("::", 1)[1]
        name = f"injection worked: {test.split('[', 1)[1].rstrip(']')}" if "[" in test else r["description"][:42]
        lo, hi = r["interval"]
        print(f"{name:<42} {r['k']:>3}/{r['n']:<3} {r['rate']:>5.0%}  {lo:>4.0%}-{hi:<7.0%} {r['verdict']}")
    sys.stdout.flush()


def main(argv: list[str]) -> int:
    print(INTRO, flush=True)
    report = HERE / ".llmops" / "examples.json"
    args = [str(HERE), "-c", str(HERE / "pytest.ini"), "--rootdir", str(HERE), "--tb=line"]
    code = pytest.main([*args, "--ignore", str(REGRESSION), f"--llmops-report-json={report}", *argv])
    if code not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        return int(code)  # a broken run is not a demo of failures
    red_team(json.loads(report.read_text()))
    code = regression_story(argv)
    if code:
        return code
    print("\n" + OUTRO.format(experiment=EXPERIMENT), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
