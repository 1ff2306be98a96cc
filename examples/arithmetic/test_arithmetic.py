"""Arithmetic: accuracy of a number extracted from free text, for two prompt variants.

SmolLM2-135M gets a bare sum right most of the time (PASS) but not word problems, with or
without step-by-step reasoning (FAIL).  Against a hosted model:
    pytest examples/arithmetic --llmops-model openai:gpt-4o-mini
"""

from pathlib import Path

import pytest

from llmops import Case, Prompt, checks, load_cases

PROBLEMS = load_cases(Path(__file__).with_name("problems.yaml"))

PLAIN = Prompt("arithmetic-plain", "{problem}\nAnswer with the number only.")
STEPS = Prompt("arithmetic-steps", "{problem}\nThink step by step, then give the final answer as a number.")


@pytest.mark.llmops(model="local:smollm2?max_tokens=24")
def test_adds_two_small_numbers(llmops):
    sum_prompt = Prompt("sum", "What is {a} + {b}? Reply with just the number.")
    llmops.sample(sum_prompt, Case({"a": 2, "b": 3}, expected=5)).expect(checks.numeric(), at_least=0.5, tolerance=0.2)


@pytest.mark.parametrize("prompt,max_tokens", [(PLAIN, 24), (STEPS, 64)], ids=["plain", "step-by-step"])
def test_word_problems(llmops, prompt, max_tokens):
    run = llmops.sample(prompt, PROBLEMS, model=f"local:smollm2?max_tokens={max_tokens}")
    run.expect(checks.numeric(), at_least=0.6)
