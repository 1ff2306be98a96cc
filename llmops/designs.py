"""Designs: which case each draw goes to, and when a verdict is decided.

A design is a *stream* (draw j goes to case c_j, as that case's i-th sample) and a *rule*
that watches the outcomes in stream order and says when it has decided.  The loop in
``llmops.evaluation`` is written once over these two small protocols; a new design is a
new stream or a new rule.

Streams (fixed before any model call, from the seed and the cases, never from outcomes):

- ``cases`` population (the default; also one case): each draw picks a case uniformly at
  random, with replacement.  A draw is then Bernoulli(mean per-case rate) exactly, so the
  exact truncated SPRT of ``llmops.stats.sequential`` applies unchanged and always decides.
  The verdict speaks about these cases, the suite as written.
- ``inputs`` population: the cases in a random order, one sample each.  When the cases are
  a random sample of the inputs the prompt will meet, each draw is Bernoulli(population
  mean) exactly, so the same exact test applies with its cap at the number of cases.  A
  second sample of a case says nothing more about other inputs in the worst case (cases
  that always or never pass), so one sample per case is the cheapest design with the
  guarantee, and "cases needed" is the fixed-size design's n, known before sampling.
- A stored baseline's trace (its positions and outcomes), replayed in stored baseline
  mode by ``llmops.evaluation``.

Rules:

- ``SprtRule``: the exact truncated SPRT on pass / fail observations.
- ``PairedRule``: the anytime-valid paired test (``llmops.stats.paired``) on differences
  new - baseline in {-1, 0, 1}.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Protocol

from llmops.stats.paired import PairedDesign, PairedState
from llmops.stats.sequential import SequentialDesign


class Stream(Protocol):
    """Draw order: position j -> (case position in the run, sample index of that case)."""

    limit: int | None  # positions available (None: unlimited)

    def __getitem__(self, j: int) -> tuple[int, int]: ...


@dataclass
class RandomCases:
    """Each draw a uniformly random case, with replacement (population ``cases``)."""

    n_cases: int
    seed: int
    limit: int | None = None
    _slots: list[tuple[int, int]] = field(default_factory=list, repr=False)
    _seen: list[int] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._seen = [0] * self.n_cases

    def __getitem__(self, j: int) -> tuple[int, int]:
        while len(self._slots) <= j:
            c = self._rng.randrange(self.n_cases) if self.n_cases > 1 else 0
            self._slots.append((c, self._seen[c]))
            self._seen[c] += 1
        return self._slots[j]


@dataclass
class ShuffledCases:
    """The cases in a random order, one sample each (population ``inputs``)."""

    n_cases: int
    seed: int

    def __post_init__(self) -> None:
        order = list(range(self.n_cases))
        random.Random(self.seed).shuffle(order)
        self._order = order
        self.limit: int | None = self.n_cases

    def __getitem__(self, j: int) -> tuple[int, int]:
        return (self._order[j], 0)


def stream_for(population: str, n_cases: int, seed: int) -> Stream:
    return ShuffledCases(n_cases, seed) if population == "inputs" else RandomCases(n_cases, seed)


class Rule(Protocol):
    """What a design decides from the observations it is fed, in stream order."""

    verdict: str | None

    def wants(self, at_most: int | None = None) -> int:
        """Fewest further observations that could decide (>= 1; ``at_most``: no more than that), while undecided."""
        ...


@dataclass
class SprtRule:
    """The exact truncated SPRT: observe pass (True) or fail (False)."""

    design: SequentialDesign
    k: int = 0
    n: int = 0
    verdict: str | None = None

    def wants(self, at_most: int | None = None) -> int:
        return max(1, self.design.min_more(self.k, self.n, at_most))

    def observe(self, good: bool) -> str | None:
        self.n += 1
        self.k += good
        self.verdict = self.design.decide(self.k, self.n)
        return self.verdict


@dataclass
class PairedRule:
    """The anytime-valid paired test: observe new - baseline in {-1, 0, 1} on the pass scale."""

    design: PairedDesign
    state: PairedState = field(init=False)
    verdict: str | None = None

    def __post_init__(self) -> None:
        self.state = self.design.start()

    def wants(self, at_most: int | None = None) -> int:
        return 1  # a betting test can stop after any pair

    def observe(self, d: int) -> str | None:
        self.verdict = self.state.update(d)
        return self.verdict

    def stop(self, verdict: str) -> None:
        """End without a decision (the stream ran out before the cap)."""
        self.verdict = verdict
