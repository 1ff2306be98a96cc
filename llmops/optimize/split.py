"""Train / validation / test split of the cases: seeded, stratified by tags, recorded.

Sizes: validation and test get a quarter of the cases each, at least two; training gets
the rest (at least two), so six cases is the least that can be optimized.  No folds: every
case has one role for the whole search, so the test cases are never seen by a proposer,
a race or an acceptance test.  The test intervals are over samples of the test cases
(the ``cases`` population of llmops): they speak about those cases, which the search never
saw.  How far that carries to new inputs depends on how many there are and how typical;
with few (the minimum is two) it is a check against overfitting the training cases, not
a claim about inputs in general, and ``Split.claim`` says so.

Stratification: cases are grouped by their tags (the sorted tuple; untagged cases form
one group), shuffled within each group by the seed, and the groups laid end to end; the
cases are then dealt to the splits in that order by largest remaining deficit, so each
split gets its share of every group, to within one case.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from llmops.cases import Case
from llmops.errors import ConfigError
from llmops.sampling import sample_seed

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class Split:
    """The cases of each role, and how they were chosen."""

    train: tuple[Case, ...]
    validation: tuple[Case, ...]
    test: tuple[Case, ...]
    seed: int
    method: str

    def ids(self) -> dict[str, list[str]]:
        """Case ids per split, for the record (results, MLflow params)."""
        return {name: [c.id for c in getattr(self, name)] for name in SPLITS}

    @property
    def claim(self) -> str:
        """What the held-out numbers speak about, in words."""
        n = len(self.test)
        few = "; with so few, they say little about new inputs" if n < 10 else ""
        return (
            f"held out: {n} test cases never seen by the search; the test intervals are over samples of "
            f"these cases{few}"
        )


def split_cases(
    cases: Sequence[Case], seed: int = 0, *, validation: float = 0.25, test: float = 0.25, min_cases: int = 2
) -> Split:
    """Seeded split stratified by tags; see the module docstring for sizes and the rule."""
    cases = list(cases)
    n = len(cases)
    n_val = max(min_cases, round(n * validation))
    n_test = max(min_cases, round(n * test))
    n_train = n - n_val - n_test
    if n_train < min_cases:
        raise ConfigError(
            f"{n} cases cannot be split into training, validation and test with at least {min_cases} each; "
            f"give at least {3 * min_cases} cases"
        )
    rng = random.Random(sample_seed(seed, "split", *(c.key for c in sorted(cases, key=lambda c: c.key))))
    groups: dict[tuple[str, ...], list[Case]] = {}
    for c in sorted(cases, key=lambda c: c.key):
        groups.setdefault(tuple(sorted(c.tags)), []).append(c)
    ordered: list[Case] = []
    for tags in sorted(groups):
        members = groups[tags]
        rng.shuffle(members)
        ordered += members
    targets = (n_train, n_val, n_test)
    counts = [0, 0, 0]
    out: list[list[Case]] = [[], [], []]
    # A random phase, so which split gets the first case of each group is not fixed.
    phase = rng.random()
    for i, c in enumerate(ordered):
        want = [t * (i + phase) / n - counts[s] for s, t in enumerate(targets)]
        room = [s for s in range(3) if counts[s] < targets[s]]
        s = max(room, key=lambda s: (want[s], -s))
        counts[s] += 1
        out[s].append(c)
    method = (
        f"seeded ({seed}) split stratified by tags: {n_train} train, {n_val} validation, {n_test} test "
        f"of {n} cases (a quarter each for validation and test, at least {min_cases})"
    )
    return Split(tuple(out[0]), tuple(out[1]), tuple(out[2]), seed, method)
