"""A simulated prompt-repair task with a known optimum: a test double for the optimizer.

A support-bot prompt is a list of sentences.  A seeded ``FunctionModel`` answers a case
right with probability sigmoid(case logit + the effects of the hidden instructions the
prompt contains + a bonus per demonstration of the case's own group); some instructions
help only some groups (tags), one is harmful.  The regression drops two helpful
instructions and adds the harmful one among harmless rewordings (8 sentence hunks); the
baseline is the optimum of what a revert can reach.  ``rewriter()`` is a scripted proposer
model (for ``ReflectiveRewrite`` without an LLM) whose edits are helpful, neutral,
harmful, break a variable or do not parse, in known proportions.

The ``no-recovery`` variant: the regressed prompt differs from the baseline only by
harmless rewordings and demonstrations do nothing, so no candidate is truly better than
the regressed prompt and any accepted candidate is a false acceptance.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from llmops.cases import Case
from llmops.checks import exact
from llmops.models import FunctionModel
from llmops.optimize.problem import Requirement
from llmops.prompts import Prompt

GROUPS = ("billing", "shipping", "returns", "account")


@dataclass(frozen=True)
class Instruction:
    text: str
    effect: float  # on the log-odds of a right answer
    groups: tuple[str, ...] = ()  # () = every group


HELP_A = Instruction("For billing and shipping questions, quote the order number first.", 1.5, ("billing", "shipping"))
HELP_B = Instruction(
    "For returns and account questions, check the policy before answering.", 1.5, ("returns", "account")
)
HELP_C = Instruction("Answer with the exact reference code only.", 1.0)
HARM = Instruction("Add a friendly joke before the answer.", -1.5)
INSTRUCTIONS = (HELP_A, HELP_B, HELP_C, HARM)

# Rewordings (baseline, regressed): no effect on the model.
REWORDINGS = (
    ("You are a support assistant for an online shop.", "You work as the support assistant of an online store."),
    ("Read the customer's question carefully.", "Read each question with care."),
    ("Keep answers short.", "Keep every answer brief."),
    ("Use plain language.", "Prefer plain words."),
)
ADDED = "Thank the customer for writing."  # an intended, harmless addition
#: The closing request of GEPA's default reflection prompt (gepa.strategies.instruction_proposal).
GEPA_ASK = "Provide the new instructions within ``` blocks"
NEUTRAL_POOL = ("Be concise.", "Use a calm tone.", "Answer in the customer's language.", "Avoid jargon.")


def _join(sentences: Sequence[str]) -> str:
    return " ".join(sentences) + "\nQuestion: {question}"


def baseline_sentences() -> list[str]:
    x = [a for a, _ in REWORDINGS]
    return [
        x[0], "Customers write in English.", x[1], "Be polite.", HELP_A.text, "Do not invent facts.", x[2],
        "Never share internal notes.", HELP_B.text, "Use the shop's own terms.", HELP_C.text, "Stay on topic.",
        "Do not mention competitors.", x[3], "If unsure, say so.",
    ]  # fmt: skip


def regressed_sentences(variant: str = "regression") -> list[str]:
    s = baseline_sentences()
    for before, after in REWORDINGS:
        s[s.index(before)] = after
    if variant == "regression":
        s.remove(HELP_A.text)
        s.remove(HELP_B.text)
        s.insert(s.index("Stay on topic.") + 1, HARM.text)
    s.append(ADDED)
    return s


class SimulatedTask:
    """Cases, baseline and regressed prompts, a model with known success rates, a requirement."""

    def __init__(
        self,
        seed: int = 0,
        *,
        cases_per_group: int = 10,
        variant: str = "regression",
        demo_effect: float | None = None,
        base: float = -0.8,
        spread: float = 0.5,
        threshold: float = 0.75,
    ) -> None:
        if variant not in ("regression", "no-recovery"):
            raise ValueError(f"variant must be 'regression' or 'no-recovery', got {variant!r}")
        self.variant = variant
        self.demo_effect = (0.4 if variant == "regression" else 0.0) if demo_effect is None else demo_effect
        rng = random.Random(f"llmops-simulated-task-{seed}")
        self.cases: list[Case] = []
        self.logit: dict[int, float] = {}
        self.group: dict[int, str] = {}
        n = 0
        for g in GROUPS:
            for _ in range(cases_per_group):
                n += 1
                self.cases.append(Case({"question": f"{g} question {n}"}, f"REF-{n:04d}", id=f"{g}-{n}", tags=(g,)))
                self.logit[n] = base + rng.gauss(0, spread)
                self.group[n] = g
        self.baseline = Prompt("support-bot", _join(baseline_sentences()))
        self.regressed = Prompt("support-bot", _join(regressed_sentences(variant)))
        self.requirement = Requirement(exact(), "at_least", threshold)
        self.model = FunctionModel(self._answer, id=f"simulated-support-bot:{seed}")

    # -- the model --------------------------------------------------------------------------

    def probability(self, text: str, n: int) -> float:
        """The true chance that a prompt with this rendered ``text`` answers case n right."""
        g = self.group[n]
        z = self.logit[n]
        for ins in INSTRUCTIONS:
            if ins.text in text and (not ins.groups or g in ins.groups):
                z += ins.effect
        if self.demo_effect:
            head = text[: text.rfind("Question: ")]
            demos = sum(1 for m in re.finditer(r"question: (\w+) question \d+", head) if m.group(1) == g)
            z += self.demo_effect * min(2, demos)
        return 1 / (1 + math.exp(-z))

    def _answer(self, text: str, rng: random.Random) -> str:
        found = re.findall(r"Question: \w+ question (\d+)", text)
        if not found:
            return "I do not see a question."
        n = int(found[-1])
        return f"REF-{n:04d}" if rng.random() < self.probability(text, n) else "Sorry, I cannot find that."

    def true_rate(self, prompt: Prompt, cases: Sequence[Case]) -> float:
        """The prompt's true pass rate, averaged over ``cases`` (what an infinite test would say)."""
        total = 0.0
        for c in cases:
            n = int(str(c.inputs["question"]).rsplit(" ", 1)[1])
            total += self.probability(prompt.render(dict(c.inputs))[-1][1], n)
        return total / len(cases)

    # -- the scripted proposer model --------------------------------------------------------

    def rewriter(
        self,
        helpful: float = 0.3,
        neutral: float = 0.4,
        harmful: float = 0.2,
        broken: float = 0.05,
        malformed: float = 0.05,
    ) -> FunctionModel:
        """A proposer model that reads ReflectiveRewrite's request (or GEPA's reflection
        prompt, answering with one text in a ``` block) and edits the current prompt.

        Each candidate gets one edit drawn with the given probabilities (helpful: add a
        missing helpful instruction or drop the harmful one, neutral when there is none
        left; neutral: reword or add/drop a harmless sentence; harmful: add the harmful
        instruction or drop a helpful one; broken: rename the variable; malformed: a block
        without its closing tag).
        """
        weights = {"helpful": helpful, "neutral": neutral, "harmful": harmful, "broken": broken, "malformed": malformed}

        def reply(request: str, rng: random.Random) -> str:
            m = re.search(r"<current>\n(.*?)\n</current>", request, re.S)
            k = re.search(r"Write exactly (\d+)", request)
            gepa = re.search(r"```\n(.*?)\n```", request, re.S)
            if (m is None or k is None) and gepa is not None and GEPA_ASK in request:
                # GEPA's reflection prompt: the current text in the first ``` block; one new text back.
                kind = rng.choices(list(weights), list(weights.values()))[0]
                text = _edit(gepa.group(1), kind, rng)
                return f"```\n{text}\n" + ("" if kind == "malformed" else "```\n")
            if m is None or k is None:
                return "I could not read the request."
            current = m.group(1)
            blocks = []
            for _ in range(int(k.group(1))):
                kind = rng.choices(list(weights), list(weights.values()))[0]
                text = _edit(current, kind, rng)
                blocks.append(f"<candidate>\n{text}\n" + ("" if kind == "malformed" else "</candidate>\n"))
            return "Here are the new versions.\n" + "".join(blocks)

        return FunctionModel(reply, id="scripted-rewriter")


def _add(text: str, sentence: str) -> str:
    i = text.rfind("\nQuestion: ")
    return text[:i] + " " + sentence + text[i:] if i >= 0 else text + " " + sentence


def _drop(text: str, sentence: str) -> str:
    return re.sub(r" ?" + re.escape(sentence), "", text, count=1)


def _swap(text: str, old: str, new: str) -> str:
    return text.replace(old, new)


def _edit(text: str, kind: str, rng: random.Random) -> str:
    if kind == "broken":
        return text.replace("{question}", "{query}")
    edits: dict[str, list[Callable[[str], str]]] = {"helpful": [], "neutral": [], "harmful": []}
    for ins in (HELP_A, HELP_B, HELP_C):
        present = ins.text in text
        edits["harmful" if present else "helpful"].append(partial(_drop if present else _add, sentence=ins.text))
    present = HARM.text in text
    edits["helpful" if present else "harmful"].append(partial(_drop if present else _add, sentence=HARM.text))
    for s in NEUTRAL_POOL:
        edits["neutral"].append(partial(_drop if s in text else _add, sentence=s))
    for a, b in REWORDINGS:
        if a in text or b in text:
            old, new = (a, b) if a in text else (b, a)
            edits["neutral"].append(partial(_swap, old=old, new=new))
    options = edits.get(kind) or edits["neutral"]  # no helpful (or harmful) edit left: a neutral one
    return rng.choice(options)(text)
