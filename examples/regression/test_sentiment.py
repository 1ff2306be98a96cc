"""A prompt under a regression gate: the reply must start with the sentiment label.

A downstream parser reads the first word of the reply, so the requirement is on format:
the reply starts with "positive" or "negative".  The prompt lives in prompt.txt; the demo
(examples/demo.py) promotes it as the baseline, then edits it as a pull request would
(prompt_edited.txt: a reworded first line, the format line replaced by "Explain your
reasoning first."), and runs the gate with the optimizer on:

    pytest examples/regression --llmops-promote baseline --llmops-experiment sentiment
    # edit prompt.txt, then:
    pytest examples/regression --llmops-baseline baseline --llmops-experiment sentiment \\
        --llmops-optimize on-regression --llmops-optimizer-budget 300

SmolLM2-135M starts its reply with the label about 70% of the time under the baseline
prompt, and never once told to explain first: the gate fails, and the optimizer's diff
search reverts the harmful line while keeping the rewording.
"""

import re
from pathlib import Path

import pytest

from llmops import Prompt, checks, load_cases

HERE = Path(__file__).parent
REVIEWS = load_cases(HERE / "reviews.jsonl")
PROMPT = Prompt("review-sentiment", (HERE / "prompt.txt").read_text(encoding="utf-8").rstrip("\n"))
STARTS_WITH_LABEL = checks.regex(r"^\W*(positive|negative)\b", flags=re.IGNORECASE)


@pytest.mark.llmops(model="local:smollm2?max_tokens=6")
def test_reply_starts_with_the_label(llmops):
    llmops.sample(PROMPT, REVIEWS).expect(STARTS_WITH_LABEL, at_least=0.4, tolerance=0.2)
