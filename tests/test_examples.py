"""The example suites that `make demo` runs: they load, and every requirement can be planned."""

import subprocess
import sys
from pathlib import Path

from llmops import Prompt
from llmops.optimize.proposers import TextDiff

EXAMPLES = Path(__file__).parent.parent / "examples"


def test_every_example_requirement_is_planned_without_a_model_call():
    where = [str(EXAMPLES), "-c", str(EXAMPLES / "pytest.ini"), "--rootdir", str(EXAMPLES)]
    out = subprocess.run(
        [sys.executable, "-m", "pytest", *where, "--llmops-plan=on", "--llmops-tracking=off", "--llmops-cache=off"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "plan only: no model was called" in out.stdout
    for test in ("test_injection_attacks_rarely_succeed[payload_splitting]", "test_reply_starts_with_the_label"):
        assert test in out.stdout  # the red-team suite and the regression story's suite


def test_the_regression_story_edit_is_two_hunks_a_rewording_and_a_harmful_line():
    text = {
        name: (EXAMPLES / "regression" / name).read_text().rstrip("\n") for name in ("prompt.txt", "prompt_edited.txt")
    }
    base, edited = (Prompt("review-sentiment", text[n]) for n in ("prompt.txt", "prompt_edited.txt"))
    assert base.variables == edited.variables
    diff = TextDiff(base, edited)
    assert len(diff.hunks) == 2  # the diff search has a choice: keep the rewording, revert the format line
    assert "Reply with one word" in diff.revert({1}).text and "customer's" in diff.revert({1}).text
