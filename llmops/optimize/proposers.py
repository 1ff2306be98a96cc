"""Proposers: where candidate prompts come from.

A proposer is any object with a ``name`` and ``propose(context, k)`` returning candidates,
each a ``Prompt`` or a ``str`` (the new template text; see ``with_text``).  The optimizer
checks each one (same variables as the regressed prompt, a valid template, not seen
before) before any model call, races the survivors on training cases and keeps a winner
only when a paired test on validation cases says it is better.  Adding your own::

    class Shout:
        name = "shout"

        def propose(self, context: Context, k: int) -> list[str]:
            return [context.prompt.text + "\\nAnswer in capitals."]

    optimize(problem, proposers=[Shout(), FewShot()])

``context`` gives the incumbent prompt, the regressed prompt and baseline, the training
cases with the incumbent's failures and some passing answers, the best prompts so far,
and three services: ``ask`` (one counted call to a proposer model), ``race`` (score
prompts on training units, paired and memoized; for proposers that search, like
``DiffSearch``) and ``score``.  Proposers never see validation or test cases.

Three come with llmops:

- ``DiffSearch``: reverts subsets of the change from the baseline (needs a baseline).
- ``ReflectiveRewrite``: a proposer model rewrites the prompt from its failures (OPRO-style
  history, strict reply parsing).
- ``FewShot``: passing training answers inserted as demonstrations (bootstrap few-shot).
"""

from __future__ import annotations

import difflib
import random
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from llmops.cases import Case
from llmops.models import Model, resolve_model
from llmops.optimize.problem import Requirement, Score
from llmops.prompts import Message, Prompt
from llmops.sampling import sample_seed


@runtime_checkable
class Proposer(Protocol):
    """Makes candidate prompts from what the search knows so far."""

    name: str

    def propose(self, context: Context, k: int) -> Sequence[str | Prompt]: ...


@dataclass(frozen=True)
class Failure:
    """A training sample of the incumbent that missed a requirement."""

    case: Case
    output: str
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class Example:
    """A training sample that was good on every requirement: a demonstration."""

    case: Case
    output: str


class Engine(Protocol):
    """The search's services behind a Context (implemented in llmops.optimize.search)."""

    def ask(self, model: Model, messages: list[Message], label: str) -> str | None: ...

    def race(
        self, prompts: Sequence[str | Prompt], proposer: str, notes: Sequence[str] | None
    ) -> list[Score | None]: ...

    def score(self, prompt: Prompt, units: int | None) -> Score: ...

    def calls_left(self) -> int | None: ...

    def recovers(self, prompt: Prompt) -> bool: ...

    def unparsed(self, proposer: str, n: int) -> None: ...


@dataclass(frozen=True)
class Context:
    """What a proposer sees in one round, and the services it may use."""

    prompt: Prompt  # the incumbent: the best prompt accepted so far (the regressed one at first)
    regressed: Prompt
    baseline: Prompt | None
    requirements: tuple[Requirement, ...]
    round: int
    seed: int
    train: tuple[Case, ...]
    score_now: Score  # the incumbent on all training units
    failures: tuple[Failure, ...]  # the incumbent's failing training samples, one per case
    examples: tuple[Example, ...]  # passing training samples (from any prompt tried), one per case
    history: tuple[tuple[Prompt, Score], ...]  # the best prompts so far by training score, worst first
    engine: Engine = field(repr=False)

    @property
    def last_good(self) -> Prompt | None:
        """The last prompt known to be good: the baseline (None without one)."""
        return self.baseline

    def ask(self, model: Model, messages: list[Message], label: str = "") -> str | None:
        """One call to a proposer model, counted against ``max_proposer_calls``.

        None when the call failed after retries or the proposer budget is spent.
        """
        return self.engine.ask(model, messages, label)

    def race(
        self, prompts: Sequence[str | Prompt], proposer: str, notes: Sequence[str] | None = None
    ) -> list[Score | None]:
        """Score prompts on training units (racing as the search does); None for invalid ones.

        The winner (the best by requirements met, then margins) is scored on all training
        units; others on the rung where they dropped out (``Score.units`` says).
        """
        return self.engine.race(prompts, proposer, notes)

    def score(self, prompt: Prompt, units: int | None = None) -> Score:
        """A prompt on the first ``units`` training units (all of them by default)."""
        return self.engine.score(prompt, units)

    def calls_left(self) -> int | None:
        """Model calls the search may still make (None: no limit); a proposer that searches
        can stop in time to leave some for racing and accepting what it found."""
        return self.engine.calls_left()

    def recovers(self, prompt: Prompt) -> bool:
        """The gate's question on fresh training samples: is the prompt not worse than the
        baseline, within the tolerance (paired sequential test; False without a baseline)?"""
        return self.engine.recovers(prompt)

    def unparsed(self, proposer: str, n: int = 1) -> None:
        """Count replies (or blocks) of a proposer model that did not parse."""
        self.engine.unparsed(proposer, n)


# -- text helpers -----------------------------------------------------------------------------


def escape_braces(text: str) -> str:
    """Literal text for a template: ``{`` and ``}`` doubled."""
    return text.replace("{", "{{").replace("}", "}}")


_ROLE_HEADER = re.compile(r"^\[(system|human|ai)\]\n", re.M)


def with_text(like: Prompt, text: str) -> Prompt:
    """A candidate from new template text, keeping the prompt's name and roles.

    One-message prompts: ``text`` is the new template.  Several messages: ``text`` in the
    ``Prompt.text`` form (``[role]`` headers) replaces all of them; plain text replaces the
    last human message.
    """
    parts = like.parts
    if len(parts) == 1:
        return Prompt.from_parts(like.name, [(parts[0][0], text)])
    if _ROLE_HEADER.match(text):
        pieces = _ROLE_HEADER.split(text)[1:]
        new = [(pieces[i], pieces[i + 1].rstrip("\n")) for i in range(0, len(pieces), 2)]
        return Prompt.from_parts(like.name, new)
    human = [i for i, (role, _) in enumerate(parts) if role == "human"]
    at = human[-1] if human else len(parts) - 1
    parts[at] = (parts[at][0], text)
    return Prompt.from_parts(like.name, parts)


def sentences(text: str) -> list[str]:
    """Sentence-ish pieces that join back to ``text``: a piece ends after ``.``, ``!`` or
    ``?`` followed by whitespace (which it keeps), or after a newline."""
    out: list[str] = []
    start = 0
    for m in re.finditer(r"[.!?]+[ \t]+|[.!?]*[ \t]*\n", text):
        out.append(text[start : m.end()])
        start = m.end()
    if start < len(text):
        out.append(text[start:])
    return out


@dataclass(frozen=True)
class Hunk:
    """One change from the baseline text to the regressed text (sentence granularity)."""

    index: int
    before: str  # in the baseline ("" for an insertion)
    after: str  # in the regressed prompt ("" for a deletion)


class TextDiff:
    """The change from ``baseline`` to ``regressed`` as hunks of sentences, and partial reverts.

    Granularity: sentences (``sentences``; the whitespace after each is a token of its own),
    because prompts are often one paragraph, where a line diff would give a single hunk;
    messages are diffed in order, and prompts whose roles differ have no partial revert.
    """

    def __init__(self, baseline: Prompt, regressed: Prompt) -> None:
        self.baseline, self.regressed = baseline, regressed
        self.comparable = [r for r, _ in baseline.parts] == [r for r, _ in regressed.parts]
        a, b = self._tokens(baseline), self._tokens(regressed)
        self._a, self._b = a, b
        ops = difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes() if self.comparable else []
        self._ops = ops
        self.hunks = [
            Hunk(n, "".join(a[i1:i2]), "".join(b[j1:j2]))
            for n, (_, i1, i2, j1, j2) in enumerate(op for op in ops if op[0] != "equal")
        ]

    @staticmethod
    def _tokens(p: Prompt) -> list[str]:
        out: list[str] = []
        for role, text in p.parts:
            out.append(f"\x00{role}\x00")  # a message boundary: never part of a sentence
            for piece in sentences(text):
                # The sentence and the space after it are separate tokens, so a sentence that
                # moves to the end of a line still matches itself.
                body = piece.rstrip()
                out += [body, piece[len(body) :]] if body != piece else [piece]
        return out

    def revert(self, which: set[int] | frozenset[int]) -> Prompt:
        """The regressed prompt with the hunks in ``which`` put back as in the baseline."""
        tokens: list[str] = []
        n = 0
        for tag, i1, i2, j1, j2 in self._ops:
            if tag == "equal":
                tokens += self._b[j1:j2]
                continue
            tokens += self._a[i1:i2] if n in which else self._b[j1:j2]
            n += 1
        parts: list[Message] = []
        for t in tokens:
            if t.startswith("\x00") and t.endswith("\x00"):
                parts.append((t.strip("\x00"), ""))
            else:
                parts[-1] = (parts[-1][0], parts[-1][1] + t)
        return Prompt.from_parts(self.regressed.name, parts)


def _chunks(items: list[int], n: int) -> list[list[int]]:
    size, extra = divmod(len(items), n)
    out, start = [], 0
    for i in range(n):
        end = start + size + (i < extra)
        out.append(items[start:end])
        start = end
    return [c for c in out if c]


# -- the three proposers ----------------------------------------------------------------------


class DiffSearch:
    """Revert the smallest part of the change that recovers (delta debugging, ddmin).

    The change from the baseline to the regressed text is split into sentence hunks.
    ``ddmin`` (Zeller and Hildebrandt 2002) then looks for a 1-minimal set of hunks whose
    revert *recovers*: the gate's paired test on fresh training samples says it is not
    worse than the baseline (``Context.recovers``).  Each ddmin step is one
    evaluation round: its n chunks and n complements race together (paired, memoized), and
    the winner is tested; if it recovers, ddmin continues inside it (n = 2 for a chunk,
    n - 1 for a complement), else n doubles.  Taking the race winner rather than the first
    chunk that recovers is the one departure from the textbook order; it needs one race per
    step instead of up to 2n sequential tests.

    The whole search runs in the first round (it uses the ``race`` service) and proposes the
    smallest recovering revert found (or the best partial revert); later rounds propose
    nothing.  When the calls left would not pay for three more steps like the last one, it
    stops and proposes what it has (anytime).  No proposer model.  ``steps`` counts the
    evaluation rounds, ``trace`` the set of hunks ddmin held after each, ``result`` the
    hunks of the revert it proposed.
    """

    name = "diff"

    def __init__(self) -> None:
        self.done = False
        self.steps = 0
        self.trace: list[tuple[int, ...]] = []
        self.result: tuple[int, ...] = ()
        self.diff: TextDiff | None = None
        self.note = ""
        self.stopped_early = False  # the budget ran low before ddmin finished

    def propose(self, context: Context, k: int) -> list[Prompt]:
        if self.done:
            return []
        self.done = True
        if context.baseline is None:
            self.note = "no baseline: nothing to revert"
            return []
        diff = self.diff = TextDiff(context.baseline, context.regressed)
        hunks = list(range(len(diff.hunks)))
        if not diff.comparable or len(hunks) < 2:
            self.note = "the roles differ" if not diff.comparable else "one hunk: its revert is the baseline"
            return []
        if context.recovers(context.regressed):
            self.note = "the regressed prompt is not worse than the baseline on training cases"
            return []
        current, n = hunks, 2
        best: tuple[tuple[int, float, float], tuple[int, ...]] | None = None
        cost = 0  # calls of the last step
        while len(current) >= 2:
            left = context.calls_left()
            if left is not None and left < 3 * cost:  # leave room to race and accept what was found
                self.stopped_early = True
                break
            chunks = _chunks(current, n)
            configs = chunks + ([[h for h in current if h not in c] for c in chunks] if n > 2 else [])
            prompts = [diff.revert(set(c)) for c in configs]
            notes = [f"ddmin step {self.steps + 1}: revert hunks {_ranges(c)}" for c in configs]
            scores = context.race(prompts, self.name, notes)
            self.steps += 1
            ranked = sorted(
                ((s.units, s.key, j) for j, s in enumerate(scores) if s is not None), key=lambda t: (t[0], t[1])
            )
            chosen = None
            if ranked:
                _, key, j = ranked[-1]
                s = scores[j]
                assert s is not None
                if best is None or key > best[0]:
                    best = (key, tuple(configs[j]))
                if context.recovers(prompts[j]):
                    chosen = j
            after = context.calls_left()
            cost = 0 if left is None or after is None else left - after
            if chosen is not None:
                current = configs[chosen]
                n = 2 if chosen < len(chunks) else max(n - 1, 2)
            elif n < len(current):
                n = min(2 * n, len(current))
            else:
                break
            self.trace.append(tuple(current))
        if len(current) < len(hunks):
            self.result = tuple(current)
            self.note = f"smallest recovering revert: hunks {_ranges(current)} of {len(hunks)}"
            return [diff.revert(set(current))]
        if best is not None:
            self.result = best[1]
            self.note = f"no partial revert recovers; best: hunks {_ranges(best[1])}"
            return [diff.revert(set(best[1]))]
        return []


def _ranges(items: Sequence[int]) -> str:
    return ",".join(str(i + 1) for i in items)  # hunks numbered from 1 for people


SYSTEM = (
    "You improve prompt templates for a language model. You are shown a template, what it must "
    "achieve, where it fails, and earlier attempts with their scores. You reply with new versions "
    "of the template only."
)

OPEN, CLOSE = "<candidate>", "</candidate>"


def parse_candidates(reply: str) -> tuple[list[str], int]:
    """Candidates between ``<candidate>`` and ``</candidate>`` lines, and how many blocks
    did not parse.

    Strict: a block opens with ``<candidate>`` and closes with the next ``</candidate>``; a
    block without its closing tag (another opening tag comes first, or the reply ends) or
    an empty block is not a candidate, and is counted.  Text outside blocks is ignored.  A
    reply with no block at all counts as one that did not parse.
    """
    found: list[str] = []
    bad = 0
    pos = 0
    while True:
        start = reply.find(OPEN, pos)
        if start < 0:
            break
        end = reply.find(CLOSE, start + len(OPEN))
        if end < 0:
            bad += 1
            break
        body = reply[start + len(OPEN) : end]
        if OPEN in body:  # an unclosed block: count it, and read on from the next opening tag
            bad += 1
            pos = start + len(OPEN) + body.index(OPEN)
            continue
        pos = end + len(CLOSE)
        body = body.removeprefix("\n").removesuffix("\n")
        if not body.strip():
            bad += 1
            continue
        found.append(body)
    if not found and bad == 0:
        bad = 1
    return found, bad


class ReflectiveRewrite:
    """A proposer model rewrites the incumbent from its failures (reflection, as in GEPA;
    the scored history as in OPRO, Yang et al. 2023).

    The model sees the requirements with the incumbent's training rates, up to ``failures``
    failing training cases with their outputs and the checks' reasons, the best
    ``history`` prompts so far with their training scores in ascending order, and the
    diff from the last good prompt (the baseline).  One call per round asks for ``k``
    candidates between ``<candidate>`` / ``</candidate>`` lines; replies are parsed
    strictly (``parse_candidates``) and what does not parse is counted, never raised.
    """

    name = "rewrite"

    def __init__(self, model: Any, *, failures: int = 6, history: int = 4, max_chars: int = 400) -> None:
        self.model = resolve_model(model)
        self.failures = failures
        self.history = history
        self.max_chars = max_chars

    def messages(self, context: Context, k: int) -> list[Message]:
        """The request to the proposer model (public so it can be inspected and tested)."""
        p = context.prompt
        s = context.score_now
        lines = ["Requirements, with the current prompt's rate on training samples:"]
        for i, r in enumerate(context.requirements):
            lines.append(f"- {r.description} (now {_pct_or_dash(s.rates[i])})")
        names = ", ".join("{" + v + "}" for v in p.variables) or "none"
        lines += [
            "",
            f"Template variables: {names}. Keep each of them exactly as written and add no other; "
            "write literal braces as {{ and }}.",
            "",
            "Current prompt:",
            "<current>",
            p.text,
            "</current>",
        ]
        if context.last_good is not None and context.last_good.version != p.version:
            diff = unified_diff(context.last_good, p, by="sentence")
            lines += [
                "",
                "Changes since the last good prompt (unified diff, one sentence a line):",
                "<diff>",
                diff.rstrip("\n"),
                "</diff>",
            ]
        if context.history:
            lines += ["", "Earlier prompts and their scores on training samples, worst first:"]
            for prompt, score in context.history[-self.history :]:
                lines += [f'<scored score="{_pct_or_dash(score.joint)}">', prompt.text, "</scored>"]
        if context.failures:
            lines += ["", "Failing training cases (input, output, why it failed):"]
            for j, f in enumerate(context.failures[: self.failures], 1):
                inputs = "; ".join(f"{v}: {_clip(str(f.case.inputs.get(v)), self.max_chars)}" for v in p.variables)
                lines += [
                    f"Case {j}",
                    f"input: {inputs}",
                    f"output: {_clip(f.output, self.max_chars)}",
                    f"why: {_clip('; '.join(f.reasons), self.max_chars)}",
                ]
        lines += [
            "",
            f"Write exactly {k} improved versions of the whole prompt template, each between a line "
            f"{OPEN} and a line {CLOSE}. Make them different from each other and from the earlier prompts.",
        ]
        return [("system", SYSTEM), ("human", "\n".join(lines))]

    def propose(self, context: Context, k: int) -> list[str]:
        reply = context.ask(self.model, self.messages(context, k), self.name)
        if reply is None:
            return []
        found, bad = parse_candidates(reply)
        if bad:
            context.unparsed(self.name, bad)
        return found[:k]


def _pct_or_dash(x: float) -> str:
    return "-" if x != x else f"{100 * x:.0f}%"


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


EXAMPLES_HEADER = "Examples of inputs with good answers:"
EXAMPLES_FOOTER = "End of examples."
_EXAMPLES_BLOCK = re.compile(re.escape(EXAMPLES_HEADER) + r"\n.*?" + re.escape(EXAMPLES_FOOTER) + r"\n\n?", re.S)


class FewShot:
    """Passing training answers as demonstrations (DSPy's bootstrap few-shot, Khattab et al. 2023).

    Candidate j gets ``shots[j % len(shots)]`` demonstrations (so the race can tell whether
    more examples help), drawn (seeded, a different draw per candidate and round) from
    training samples that were good on every requirement, one per case, spread over the
    cases' tags.  The block goes into the last human message,
    before the first line that holds a template variable (or at the end), with braces
    escaped so the examples are literal text; a block from an earlier round is replaced.
    Only training cases are used: validation and test cases never appear in a prompt.
    """

    name = "few-shot"

    def __init__(self, shots: int | Sequence[int] = (2, 4, 8), max_chars: int = 600) -> None:
        self.shots = (shots,) if isinstance(shots, int) else tuple(shots)
        if not self.shots or min(self.shots) < 1:
            raise ValueError(f"FewShot shots must be positive numbers of examples, got {shots!r}")
        self.max_chars = max_chars

    def propose(self, context: Context, k: int) -> list[str | Prompt]:
        pool = list(context.examples)
        if not pool:
            return []
        out: list[str | Prompt] = []
        for j in range(k):
            rng = random.Random(sample_seed(context.seed, "few-shot", context.round, j))
            chosen = _spread(pool, min(self.shots[j % len(self.shots)], len(pool)), rng)
            out.append(self.insert(context.prompt, chosen))
        return out

    def block(self, prompt: Prompt, examples: Sequence[Example]) -> str:
        lines = [EXAMPLES_HEADER]
        for n, e in enumerate(examples, 1):
            lines.append(f"Example {n}")
            lines.append("Input:")
            lines += [f"{v}: {_clip(str(e.case.inputs.get(v)), self.max_chars)}" for v in prompt.variables]
            lines += ["Output:", _clip(e.output, self.max_chars)]
        lines.append(EXAMPLES_FOOTER)
        return escape_braces("\n".join(lines)) + "\n\n"

    def insert(self, prompt: Prompt, examples: Sequence[Example]) -> Prompt:
        parts = prompt.parts
        human = [i for i, (role, _) in enumerate(parts) if role == "human"]
        at = human[-1] if human else len(parts) - 1
        role, text = parts[at]
        text = _EXAMPLES_BLOCK.sub("", text)
        lines = text.splitlines(keepends=True)
        first = next((i for i, line in enumerate(lines) if _has_field(line)), len(lines))
        before = "".join(lines[:first])
        if before and not before.endswith("\n"):
            before += "\n"
        if before and not before.endswith("\n\n"):
            before += "\n"
        parts[at] = (role, before + self.block(prompt, examples) + "".join(lines[first:]))
        return Prompt.from_parts(prompt.name, parts)


def _has_field(line: str) -> bool:
    try:
        return any(f is not None for _, f, _, _ in string.Formatter().parse(line))
    except ValueError:
        return False


def _spread(pool: list[Example], m: int, rng: random.Random) -> list[Example]:
    """m examples, taking tags in turn so each group of cases is shown when there is room."""
    groups: dict[tuple[str, ...], list[Example]] = {}
    for e in pool:
        groups.setdefault(tuple(sorted(e.case.tags)), []).append(e)
    order = sorted(groups)
    rng.shuffle(order)
    for g in order:
        rng.shuffle(groups[g])
    out: list[Example] = []
    while len(out) < m:
        for g in order:
            if groups[g] and len(out) < m:
                out.append(groups[g].pop())
    return out


def unified_diff(a: Prompt, b: Prompt, by: str = "line") -> str:
    """The unified diff from a's text to b's, with versions in the headers.

    ``by="sentence"`` puts each sentence on a line of its own first: a one-paragraph
    prompt then shows which sentences changed rather than one changed line.
    """

    def split(text: str) -> list[str]:
        if by == "sentence":
            return [s.strip() for s in sentences(text) if s.strip()]
        return text.splitlines()

    lines = difflib.unified_diff(
        split(a.text), split(b.text), f"{a.name}@{a.version}", f"{b.name}@{b.version}", lineterm=""
    )
    return "".join(line + "\n" for line in lines)
