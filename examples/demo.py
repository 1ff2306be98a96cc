"""`make demo`: run the example suites against the embedded model and explain what happened."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent

INTRO = """\
llmops demo: three example suites (examples/) sampled from SmolLM2-135M-Instruct, a real
LLM running on this CPU (llama.cpp).  Each requirement is sampled only until the
sequential test can decide it with the stated error rates.  A 135M model is weak: several
requirements FAIL on purpose.  The point is that every verdict and number is right.
"""

OUTRO = """\
Demo finished.  The FAILs above are expected (a 135M model leaks its secret and cannot
answer in JSON); the PASSes are real too.  "calls" is how many samples each verdict
needed; "saved vs fixed-N" compares with a fixed-size test with the same error rates.
Run one suite against a hosted model with, e.g.:
    .venv/bin/pytest examples/triage --llmops-model openai:gpt-4o-mini
The session is logged to MLflow (the run id is printed above); browse it with:
    .venv/bin/mlflow ui --backend-store-uri sqlite:///mlflow.db
"""


def main(argv: list[str]) -> int:
    print(INTRO, flush=True)
    args = [str(HERE), "-c", str(HERE / "pytest.ini"), "--rootdir", str(HERE), "--tb=line", *argv]
    code = pytest.main(args)
    if code not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        return int(code)  # a broken run is not a demo of failures
    print("\n" + OUTRO, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
