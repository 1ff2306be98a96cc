"""The search: propose, race on training units, accept on validation, score once on test.

Each round every proposer proposes up to ``Search.k`` candidates from the incumbent (the
best prompt accepted so far, the regressed prompt at first).  A candidate that adds or
drops a template variable, is not a valid template, or was tried before is dropped before
any model call.  The rest race the incumbent on training units (successive halving, or
full evaluation), paired by case and sample index; the race winner, if it is not the
incumbent, faces a one-sided paired test on validation units (``Evaluator.compare``) and
replaces the incumbent only if the test says it is better.  The search stops when an
accepted candidate meets every requirement on fresh validation samples and, with a
baseline, the gate's own paired test there says it is not worse than the baseline:
"recovered"; when a budget is spent ("budget", with the kind in ``stop_detail``: model
calls, proposer calls, wall time or rounds); after ``Search.patience`` rounds without an
accepted candidate ("stagnation"); or when a round brings nothing new ("duplicates" when
every proposal was seen before, "no candidates" when there were none or none valid).
The final incumbent, if it is not the regressed prompt, is the candidate, scored once on
test (those calls are reserved up front).  When the calls left would not pay for racing
a whole round, the round races as many candidates as fit (those scored already first),
so a tight budget still ends with the best candidate it could test.

The test's own verdict is never changed, and nothing here writes the user's files
(``write_candidate`` writes where it is told).
"""

from __future__ import annotations

import json
import math
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmops.errors import ConfigError, PromptError
from llmops.models import Model
from llmops.optimize.evaluate import (
    Comparison,
    Estimate,
    Evaluator,
    OutOfBudget,
    TestScore,
    score_test,
)
from llmops.optimize.problem import Budget, Problem, Score, Search
from llmops.optimize.proposers import (
    Context,
    DiffSearch,
    Example,
    Failure,
    FewShot,
    Proposer,
    unified_diff,
    with_text,
)
from llmops.optimize.split import Split, split_cases
from llmops.prompts import Message, Prompt
from llmops.sampling import Request, Sampler, sample_seed

STOP_REASONS = ("recovered", "budget", "stagnation", "duplicates", "no candidates")
#: Calls kept back, when a round is fitted into the budget, for the acceptance test of its
#: winner (a clear improvement is accepted in a few dozen pairs).
ACCEPT_RESERVE = 100


@dataclass(frozen=True)
class Step:
    """One prompt the search tried: a row of the trajectory."""

    version: str
    parent: str | None  # the incumbent when it was proposed
    proposer: str  # a proposer's name, or "regressed" / "baseline" for the starting prompts
    round: int  # 0 for the starting prompts
    # regressed, baseline, accepted, not better, undecided, lost the race, searched, left out (budget);
    # gepa, gepa best (optimize_with_gepa)
    status: str
    train: float | None  # joint rate (good on every requirement) on training units
    train_units: int
    validation: float | None  # joint rate on the validation units its comparison looked at
    validation_units: int
    calls: int  # model calls spent on this prompt
    total_calls: int  # calls of the whole search when this prompt was last scored
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class _Entry:
    prompt: Prompt
    parent: str | None
    proposer: str
    round: int
    status: str
    note: str = ""
    train: Score | None = None
    val: Score | None = None
    comparison: Comparison | None = None
    total_calls: int = 0


@dataclass(frozen=True)
class OptimizationResult:
    """What an optimization found, with the held-out numbers to judge it by."""

    prompt: Prompt  # the regressed (or failing) prompt
    baseline: Prompt | None
    candidate: Prompt | None  # None when no candidate was accepted
    diff: str  # unified diff from the regressed text to the candidate's ("" without one)
    test_scores: tuple[TestScore, ...]  # per requirement, on the held-out test units
    improvement: Estimate | None  # candidate - regressed on test, joint scale
    versus_baseline: Estimate | None  # candidate - baseline on test, joint scale
    recovery: Estimate | None  # (candidate - regressed) / (baseline - regressed) on test
    trajectory: tuple[Step, ...]
    split: Split
    stopped_because: str
    stop_detail: str
    rounds: int
    calls: int  # model calls, test scoring included
    test_calls: int
    proposer_calls: int
    rejected: tuple[tuple[str, str], ...]  # (proposer, reason) of candidates dropped before any call
    unparsed: int  # proposer-model replies or blocks that did not parse
    duplicates: int
    comparisons: int  # paired acceptance tests run
    alpha: float
    seconds: float
    settings: dict[str, Any] = field(default_factory=dict)
    calls_by_purpose: dict[str, int] = field(default_factory=dict)  # train, train check, validation, ...

    @property
    def recovered(self) -> bool:
        return self.stopped_because == "recovered"

    def summary(self) -> str:
        """A few lines for a terminal or a pull-request comment."""
        name = self.prompt.name
        head = (
            f"stopped: {self.stopped_because}{' (' + self.stop_detail + ')' if self.stop_detail else ''} after "
            f"{self.rounds} rounds, {self.calls} model calls, {self.proposer_calls} proposer calls"
        )
        if self.candidate is None:
            return f"optimizer: no candidate for {name} was better than {self.prompt.version} on validation; {head}"
        lines = [f"optimizer: candidate {name}@{self.candidate.version} for {name}@{self.prompt.version}; {head}"]
        lines.append(self.split.claim)
        for t in self.test_scores:
            extra = f"; regressed {_pct(t.regressed_rate)}"
            if t.baseline_rate is not None:
                extra += f", baseline {_pct(t.baseline_rate)}"
                if t.noninferiority:
                    extra += f"; against the baseline: {t.noninferiority}"
            lines.append(
                f"  {t.requirement}: {t.k}/{t.n} = {_pct(t.rate)} (95% interval {_pct(t.interval[0])}-"
                f"{_pct(t.interval[1])}) on test: {t.verdict}{extra}"
            )
        if self.recovery is not None:
            r = self.recovery
            lines.append(f"  recovery {_pct(r.value)} (95% interval {_pct(r.low)} to {_pct(r.high)})")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """Everything as JSON-able values (for MLflow artifacts and reports)."""

        def prompt(p: Prompt | None) -> dict[str, Any] | None:
            return None if p is None else {"name": p.name, "version": p.version, "parts": [list(x) for x in p.parts]}

        return {
            "prompt": prompt(self.prompt),
            "baseline": prompt(self.baseline),
            "candidate": prompt(self.candidate),
            "diff": self.diff,
            "test_scores": [t.to_dict() for t in self.test_scores],
            "improvement": self.improvement.to_dict() if self.improvement else None,
            "versus_baseline": self.versus_baseline.to_dict() if self.versus_baseline else None,
            "recovery": self.recovery.to_dict() if self.recovery else None,
            "trajectory": [s.to_dict() for s in self.trajectory],
            "split": {**self.split.ids(), "seed": self.split.seed, "method": self.split.method},
            "stopped_because": self.stopped_because,
            "stop_detail": self.stop_detail,
            "rounds": self.rounds,
            "calls": self.calls,
            "test_calls": self.test_calls,
            "proposer_calls": self.proposer_calls,
            "rejected": [list(r) for r in self.rejected],
            "unparsed": self.unparsed,
            "duplicates": self.duplicates,
            "comparisons": self.comparisons,
            "alpha": self.alpha,
            "seconds": self.seconds,
            "settings": self.settings,
            "calls_by_purpose": self.calls_by_purpose,
        }


def _pct(x: float) -> str:
    if x != x:
        return "n/a"
    if math.isinf(x):
        return "-inf" if x < 0 else "+inf"
    return f"{100 * x:.0f}%"


ProgressFn = Callable[[int, Step, int, "int | None"], None]


def optimize(
    problem: Problem,
    proposers: Sequence[Proposer] | None = None,
    *,
    budget: Budget | None = None,
    search: Search | None = None,
    on_progress: ProgressFn | None = None,
) -> OptimizationResult:
    """Search for a prompt that meets the problem's requirements; see the module docstring.

    ``proposers`` default to ``DiffSearch()`` (with a baseline) and ``FewShot()``; add
    ``ReflectiveRewrite(model)`` to use a proposer model.  ``on_progress(round, best_so_far,
    calls, budget_left)`` is called after each round (``best_so_far`` is the incumbent's
    trajectory row; ``budget_left`` the model calls left for the search, None if unlimited).
    """
    if proposers is None:
        proposers = ([DiffSearch()] if problem.baseline is not None else []) + [FewShot()]
    if not proposers:
        raise ConfigError("optimize() needs at least one proposer")
    for p in proposers:
        if not isinstance(p, Proposer):
            raise ConfigError(f"{p!r} is not a proposer: give an object with a name and propose(context, k)")
    return _Run(problem, list(proposers), budget or Budget(), search or Search(), on_progress).run()


class _Run:
    """One optimization: the state behind the loop, and the Engine that proposers use."""

    def __init__(
        self, problem: Problem, proposers: list[Proposer], budget: Budget, search: Search, on_progress: Any
    ) -> None:
        self.problem = problem
        self.proposers = proposers
        self.budget = budget
        self.search = search
        self.on_progress = on_progress
        self.entries: dict[str, _Entry] = {}
        self.raced: set[str] = set()
        self.rejected: list[tuple[str, str]] = []
        self.unparsed_count = 0
        self.duplicates = 0
        self.proposer_calls = 0
        self.proposer_spent = False
        self._proposer_samplers: dict[int, Sampler] = {}
        self.round = 0
        self.incumbent = problem.prompt
        self.start = time.monotonic()
        self.split = split_cases(problem.cases, problem.seed)
        self.ev = Evaluator(problem, self.split, budget, search, self.start)
        self.ev.reserve_test_calls()

    # -- the loop ---------------------------------------------------------------------------

    def run(self) -> OptimizationResult:
        p, ev, s = self.problem, self.ev, self.search
        self._entry(p.prompt, None, "regressed", 0, "regressed")
        if p.baseline is not None:
            self._entry(p.baseline, None, "baseline", 0, "baseline")
        self.raced.add(p.prompt.version)
        stop, detail, stale = "", "", 0
        try:
            for prompt in [p.prompt] + ([p.baseline] if p.baseline is not None else []):
                self._scored(prompt, ev.train_score(prompt))
            for rnd in range(1, s.max_rounds + 1):
                self.round = rnd
                context = self._context()
                proposals: list[tuple[str, Any]] = []
                for proposer in self.proposers:
                    ev.check_time()
                    proposals += [(proposer.name, x) for x in proposer.propose(context, s.k)]
                new, seen = self._admit(proposals)
                if not new:
                    if self.proposer_spent and not proposals:
                        stop, detail = "budget", "proposer calls"
                    else:
                        stop = "duplicates" if seen else "no candidates"
                    break
                accepted, recovered = self._round(new)
                stale = 0 if accepted else stale + 1
                if self.on_progress is not None:
                    self.on_progress(rnd, self._step(self.incumbent.version), ev.calls, ev.budget_left)
                if recovered:
                    stop = "recovered"
                    break
                if stale >= s.patience:
                    stop = "stagnation"
                    break
            else:
                stop, detail = "budget", f"{s.max_rounds} rounds"
        except OutOfBudget as e:
            stop, detail = "budget", e.what
            if self.on_progress is not None and self.round > 0:  # the round cut short still reports
                self.on_progress(self.round, self._step(self.incumbent.version), ev.calls, ev.budget_left)
        return self._result(stop, detail)

    def _round(self, new: list[Prompt]) -> tuple[bool, bool]:
        """Race the new candidates against the incumbent; test the winner on validation."""
        ev = self.ev
        incumbent = self.incumbent
        new = self._affordable(new)
        for c in new:
            self.raced.add(c.version)
        ranked, scores = ev.race([incumbent, *new])
        for v, sc in scores.items():
            self._scored(self.entries[v].prompt, sc)
        survivors = {q.version for q in ranked}
        for c in new:
            if c.version not in survivors:
                self.entries[c.version].status = "lost the race"
        winner = ranked[0]
        for q in ranked[1:]:
            if q.version != incumbent.version:
                self.entries[q.version].status = "lost the race"
        if winner.version == incumbent.version:
            return False, False
        entry = self.entries[winner.version]
        cmp = ev.compare(winner, incumbent)
        entry.comparison = cmp
        entry.val = ev.val_score(winner, cmp.units)
        entry.total_calls = ev.calls
        if not cmp.accepted:
            entry.status = cmp.verdict
            return False, False
        ev.accept()
        entry.status = "accepted"
        self.incumbent = winner
        return True, self._recovered(winner)

    def _affordable(self, new: list[Prompt]) -> list[Prompt]:
        """As many of the new candidates as the budget can race and still test the winner.

        Candidates scored already (a diff search result) come first: they cost nothing more.
        The ones left out are recorded, and may come back in a later round.
        """
        left = self.ev.budget_left
        if left is None:
            return new
        order = sorted(new, key=lambda p: -self.ev.drawn_units(p))  # stable: proposer order otherwise
        m = len(order)
        while m > 1 and self.ev.race_cost(order[:m]) + ACCEPT_RESERVE > left:
            m -= 1
        for p in order[m:]:
            entry = self.entries[p.version]
            entry.status = "left out (budget)"
            self.rejected.append((entry.proposer, "left out: the budget would not pay for racing it"))
        return order[:m]

    def _recovered(self, candidate: Prompt) -> bool:
        ok, _ = self.ev.recovered(candidate, self.problem.baseline)
        self.entries[candidate.version].total_calls = self.ev.calls
        return ok

    # -- candidates -------------------------------------------------------------------------

    def _normalize(self, proposer: str, x: Any) -> Prompt | None:
        """A valid candidate with the regressed prompt's name and variables, or None (recorded)."""
        regressed = self.problem.prompt
        try:
            if isinstance(x, Prompt):
                cand = x if x.name == regressed.name else Prompt.from_parts(regressed.name, x.parts)
            elif isinstance(x, str):
                cand = with_text(self.incumbent, x)
            else:
                self.rejected.append((proposer, f"not a str or Prompt: {type(x).__name__}"))
                return None
        except (PromptError, ValueError, KeyError, IndexError) as e:
            self.rejected.append((proposer, f"invalid template: {e}"))
            return None
        want, got = set(regressed.variables), set(cand.variables)
        if want != got:
            parts = []
            if got - want:
                parts.append("adds " + ", ".join("{" + v + "}" for v in sorted(got - want)))
            if want - got:
                parts.append("drops " + ", ".join("{" + v + "}" for v in sorted(want - got)))
            self.rejected.append((proposer, " and ".join(parts)))
            return None
        return cand

    def _admit(self, proposals: list[tuple[str, Any]]) -> tuple[list[Prompt], int]:
        """New valid candidates of this round (in order), and how many were duplicates."""
        new: dict[str, Prompt] = {}
        dupes = 0
        for proposer, x in proposals:
            cand = self._normalize(proposer, x)
            if cand is None:
                continue
            if cand.version in self.raced or cand.version in new:
                dupes += 1
                continue
            new[cand.version] = cand
            e = self.entries.get(cand.version)
            if e is None:
                self._entry(cand, self.incumbent.version, proposer, self.round, "proposed")
            elif e.status in ("searched", "baseline"):
                e.status = "proposed"
        self.duplicates += dupes
        return list(new.values()), dupes

    def _entry(self, prompt: Prompt, parent: str | None, proposer: str, rnd: int, status: str, note: str = "") -> None:
        if prompt.version not in self.entries:
            self.entries[prompt.version] = _Entry(prompt, parent, proposer, rnd, status, note)

    def _scored(self, prompt: Prompt, score: Score) -> None:
        e = self.entries[prompt.version]
        if e.train is None or score.units >= e.train.units:
            e.train = score
        e.total_calls = self.ev.calls

    # -- the context and the Engine services -------------------------------------------------

    def _context(self) -> Context:
        ev, inc = self.ev, self.incumbent
        now = ev.train_score(inc)
        self._scored(inc, now)
        rng = random.Random(sample_seed(self.problem.seed, "context", self.round))
        failures: dict[str, Failure] = {}
        drawn = ev.drawn_train(inc)
        rng.shuffle(drawn)
        for case, unit in drawn:
            if unit.joint is False and case.key not in failures and unit.output is not None:
                failures[case.key] = Failure(case, unit.output, unit.reasons)
        examples: dict[str, Example] = {}
        others = sorted(
            (e for e in self.entries.values() if e.train is not None and e.prompt.version != inc.version),
            key=lambda e: e.train.key if e.train is not None else (0, 0.0, 0.0),
            reverse=True,
        )
        for prompt in [inc] + [e.prompt for e in others]:
            for case, unit in ev.drawn_train(prompt):
                if unit.joint is True and case.key not in examples and unit.output is not None:
                    examples[case.key] = Example(case, unit.output)
        history = sorted(
            (
                (e.prompt, e.train)
                for e in self.entries.values()
                if e.train is not None and e.train.units == ev.max_units and e.status != "baseline"
            ),
            key=lambda t: t[1].key,
        )[-8:]
        return Context(
            prompt=inc,
            regressed=self.problem.prompt,
            baseline=self.problem.baseline,
            requirements=ev.requirements,
            round=self.round,
            seed=self.problem.seed,
            train=self.split.train,
            score_now=now,
            failures=tuple(failures.values()),
            examples=tuple(examples.values()),
            history=tuple(history),
            engine=self,
        )

    def ask(self, model: Model, messages: list[Message], label: str) -> str | None:
        limit = self.budget.max_proposer_calls
        if limit is not None and self.proposer_calls >= limit:
            self.proposer_spent = True
            return None
        self.ev.check_time()
        sampler = self._proposer_samplers.get(id(model))
        if sampler is None:
            extra = {}
            if self.problem.cache is not None:
                extra = {"cache": self.problem.cache, "cache_path": self.problem.cache_path}
            sampler = Sampler(
                model,
                concurrency=1,
                timeout=self.problem.timeout,
                retries=self.problem.retries,
                seed=self.problem.seed,
                **extra,
            )
            self._proposer_samplers[id(model)] = sampler
        (sample,) = sampler.draw([Request(f"{label}:{self.round}", self.proposer_calls, messages)], seed_key="proposer")
        if not sample.cached:
            self.proposer_calls += 1
        if sample.error is not None or sample.output is None:
            self.unparsed(label, 1)
            return None
        return sample.output

    def race(self, prompts: Sequence[str | Prompt], proposer: str, notes: Sequence[str] | None) -> list[Score | None]:
        valid: list[Prompt | None] = []
        for j, x in enumerate(prompts):
            cand = self._normalize(proposer, x)
            valid.append(cand)
            if cand is not None:
                self._entry(cand, self.incumbent.version, proposer, self.round, "searched", notes[j] if notes else "")
        _, scores = self.ev.race([c for c in valid if c is not None])
        for v, sc in scores.items():
            self._scored(self.entries[v].prompt, sc)
        return [None if c is None else scores[c.version] for c in valid]

    def score(self, prompt: Prompt, units: int | None) -> Score:
        return self.ev.train_score(prompt, units)

    def calls_left(self) -> int | None:
        return self.ev.budget_left

    def recovers(self, prompt: Prompt) -> bool:
        if self.problem.baseline is None:
            return False
        ok, _ = self.ev.not_worse(prompt, self.problem.baseline, "train")
        if prompt.version in self.entries:
            self.entries[prompt.version].total_calls = self.ev.calls
        return ok

    def unparsed(self, proposer: str, n: int) -> None:
        self.unparsed_count += n

    # -- the result -------------------------------------------------------------------------

    def _step(self, version: str) -> Step:
        e = self.entries[version]
        return Step(
            version=version,
            parent=e.parent,
            proposer=e.proposer,
            round=e.round,
            status=e.status,
            train=None if e.train is None or e.train.joint_n == 0 else e.train.joint,
            train_units=0 if e.train is None else e.train.units,
            validation=None if e.val is None or e.val.joint_n == 0 else e.val.joint,
            validation_units=0 if e.val is None else e.val.units,
            calls=self.ev.calls_by_version[version],
            total_calls=e.total_calls,
            note=e.note,
        )

    def _result(self, stop: str, detail: str) -> OptimizationResult:
        p, ev = self.problem, self.ev
        candidate = self.incumbent if self.incumbent.version != p.prompt.version else None
        return scored_result(
            ev,
            candidate,
            trajectory=tuple(self._step(v) for v in self.entries),
            stopped_because=stop,
            stop_detail=detail,
            rounds=self.round,
            proposer_calls=self.proposer_calls,
            rejected=tuple(self.rejected),
            unparsed=self.unparsed_count,
            duplicates=self.duplicates,
            comparisons=ev.comparisons,
            alpha=self.search.alpha,
            start=self.start,
            settings={
                "proposers": [getattr(x, "name", type(x).__name__) for x in self.proposers],
                "search": dict(self.search.__dict__),
                "budget": dict(self.budget.__dict__),
                "seed": p.seed,
                "model": p.model_under_test.id,
                "test_units": len(ev.test_slots()),
            },
        )


def scored_result(ev: Evaluator, candidate: Prompt | None, *, start: float, **fields: Any) -> OptimizationResult:
    """Score the candidate once on the test split (with the regressed prompt and the baseline)
    and make the result: the one ending of every search and backend.  ``fields``: the
    search's own fields of ``OptimizationResult`` (trajectory, stop, counts, settings)."""
    p = ev.problem
    before = ev.calls
    scores: tuple[TestScore, ...] = ()
    improvement = versus = recovery = None
    if candidate is not None:
        scores, improvement, versus, recovery = score_test(ev, candidate, p.prompt, p.baseline)
    return OptimizationResult(
        prompt=p.prompt,
        baseline=p.baseline,
        candidate=candidate,
        diff=unified_diff(p.prompt, candidate) if candidate is not None else "",
        test_scores=scores,
        improvement=improvement,
        versus_baseline=versus,
        recovery=recovery,
        split=ev.split,
        calls=ev.calls,
        test_calls=ev.calls - before,
        seconds=time.monotonic() - start,
        calls_by_purpose=dict(ev.calls_by_purpose),
        **fields,
    )


def write_candidate(result: OptimizationResult, directory: str | Path) -> Path | None:
    """Write the candidate's text to ``directory/<prompt>.txt`` and the numbers beside it
    (``<prompt>.json``); None (nothing written) when there is no candidate."""
    if result.candidate is None:
        return None
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^\w.-]+", "_", result.candidate.name).strip("._") or "prompt"
    path = d / f"{stem}.txt"
    path.write_text(result.candidate.text + ("" if result.candidate.text.endswith("\n") else "\n"), encoding="utf-8")
    (d / f"{stem}.json").write_text(json.dumps(result.to_dict(), indent=2, default=str) + "\n", encoding="utf-8")
    return path
