"""Evaluation for the optimizer: memoized samples, races on training units, paired
acceptance on validation units, and the one scoring on test units.

A *unit* is (case, sample index).  Every prompt is sampled on the same units of a split
(paired by case and sample index), and the seed of a sample is
``sample_seed(seed, prompt.version, case.key, index)`` (``llmops.sampling``), so a sample
is the same whenever and in whichever batch it is drawn.  Every (prompt version, case,
index) is drawn at most once per optimization: the memo holds the output and each
requirement's outcome.

Unit orders, fixed by the seed before any call:

- training and test: round robin over the split's cases in a seeded order, so the first
  ``u`` units give every case ``u / n`` samples (to within one);
- validation: a uniformly random case per unit, with replacement (``llmops.designs.RandomCases``):
  each pair is then a fair draw of the mean per-case difference, which is what the paired
  betting test needs.
- checks against the baseline ("does this recover?"): random cases as well, on sample
  indices no race or acceptance test uses (from ``FRESH`` up), so a candidate chosen for
  doing well on some samples is judged on others.  Only a "no" may come without new calls,
  from training samples already drawn (``Evaluator.clearly_worse``): being chosen on them
  flatters a candidate, so "worse even there" is a conservative answer.
"""

from __future__ import annotations

import math
import random
import time
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from llmops.cases import Case
from llmops.checks.base import Outcome
from llmops.designs import RandomCases
from llmops.errors import ConfigError
from llmops.optimize.problem import Budget, Problem, Requirement, Score, Search
from llmops.optimize.split import Split
from llmops.prompts import Prompt
from llmops.sampling import Request, Sampler, sample_seed
from llmops.stats.intervals import wilson
from llmops.stats.paired import (
    NOT_WORSE,
    REGRESSED,
    UNDECIDED,
    PairedDesign,
    PairedState,
    difference_interval,
    paired_design,
)

#: Requests per Sampler batch: larger batches gain nothing and asyncio slows down with
#: thousands of tasks waiting on one semaphore.
BATCH = 512
#: Bootstrap resamples for the recovery interval.
RESAMPLES = 2000
#: First sample index of the samples kept for checks against the baseline (fresh samples).
FRESH = 10**9
#: Acceptance tests against the i-th incumbent use validation sample indices from i * SEGMENT.
SEGMENT = 10**6

#: Fewest memoized training pairs from which ``Evaluator.clearly_worse`` answers.
MIN_MEMO_PAIRS = 20

Slot = tuple[Case, int]


class OutOfBudget(Exception):
    """The search must stop: a budget (model calls, proposer calls or wall time) is spent."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


@dataclass(frozen=True)
class Unit:
    """One sample judged by every requirement: good per requirement (None: error)."""

    good: tuple[bool | None, ...]
    output: str | None
    reasons: tuple[str, ...]
    error: str | None = None

    @property
    def joint(self) -> bool | None:
        """Good on every requirement; None when the model or a check errored."""
        if any(g is None for g in self.good):
            return None
        return all(self.good)


@dataclass(frozen=True)
class Estimate:
    """A number with its interval and how the interval was made."""

    value: float
    low: float
    high: float
    method: str

    def to_dict(self) -> dict[str, object]:
        return {"value": self.value, "low": self.low, "high": self.high, "method": self.method}


@dataclass(frozen=True)
class Comparison:
    """One paired acceptance test of a candidate against the incumbent on validation units."""

    verdict: str  # "better", "not better" or "undecided" (both of the last reject)
    alpha: float
    pairs: int
    wins: int  # pairs where the candidate was good on every requirement and the incumbent was not
    losses: int
    ties: int
    units: int  # validation units looked at (pairs plus those with an error)

    @property
    def accepted(self) -> bool:
        return self.verdict == "better"


def score_units(units: Sequence[Unit], requirements: Sequence[Requirement]) -> Score:
    good = []
    judged = []
    for i in range(len(requirements)):
        gs = [u.good[i] for u in units if u.good[i] is not None]
        judged.append(len(gs))
        good.append(sum(bool(g) for g in gs))
    joints = [u.joint for u in units]
    rates = tuple(r.rate(g, n) for r, g, n in zip(requirements, good, judged, strict=True))
    return Score(
        good=tuple(good),
        judged=tuple(judged),
        joint_good=sum(j is True for j in joints),
        joint_n=sum(j is not None for j in joints),
        units=len(units),
        errors=sum(j is None for j in joints),
        rates=rates,
        margins=tuple(r.margin(x) for r, x in zip(requirements, rates, strict=True)),
    )


class Evaluator:
    """Draws and judges samples for one optimization; owns the memo and the call budget."""

    def __init__(self, problem: Problem, split: Split, budget: Budget, search: Search, start: float) -> None:
        self.problem = problem
        self.requirements = tuple(problem.requirements)
        self.split = split
        self.search = search
        extra = {}
        if problem.cache is not None:
            extra = {"cache": problem.cache, "cache_path": problem.cache_path}
        self.sampler = Sampler(
            problem.model_under_test,
            concurrency=problem.concurrency,
            timeout=problem.timeout,
            retries=problem.retries,
            seed=problem.seed,
            **extra,
        )
        self.memo: dict[tuple[str, str, int], Unit] = {}
        self.calls = 0  # model calls (cache replays are not calls)
        self.calls_by_version: Counter[str] = Counter()
        # train / validation / test, and "train check" / "validation check" (against the baseline)
        self.calls_by_purpose: Counter[str] = Counter()
        self._role = {c.key: name for name in ("train", "validation", "test") for c in getattr(split, name)}
        self.limit = budget.max_calls
        self.reserve = 0  # calls kept for the test scoring
        self.deadline = None if budget.max_seconds is None else start + budget.max_seconds
        seed = problem.seed
        train = list(split.train)
        random.Random(sample_seed(seed, "train-order")).shuffle(train)
        self._train = train
        test = list(split.test)
        random.Random(sample_seed(seed, "test-order")).shuffle(test)
        self._test = test
        self._val = RandomCases(len(split.validation), sample_seed(seed, "validation-order"))
        self._train_fresh = RandomCases(len(train), sample_seed(seed, "train-check-order"))
        self._val_fresh = RandomCases(len(split.validation), sample_seed(seed, "validation-check-order"))
        self.max_units = len(train) * search.train_passes
        first = min(self.max_units, search.first_units)
        rungs = [first]
        while rungs[-1] < self.max_units:
            rungs.append(min(self.max_units, 2 * rungs[-1]))
        self.rungs = rungs
        self.comparisons = 0
        self.acceptances = 0

    # -- units ------------------------------------------------------------------------------

    def train_slots(self, u: int) -> list[Slot]:
        n = len(self._train)
        return [(self._train[j % n], j // n) for j in range(u)]

    def val_slots(self, start: int, stop: int) -> list[Slot]:
        """Validation units for acceptance tests against the current incumbent.

        Each incumbent gets its own segment of sample indices: the samples on which a
        candidate won its acceptance (and so lean its way) are not the ones it defends its
        place on.  Challengers of one incumbent share its samples (nothing paid twice).
        """
        cases = self.split.validation
        offset = self.acceptances * SEGMENT
        return [(cases[c], offset + i) for c, i in (self._val[j] for j in range(start, stop))]

    def check_slots(self, split: str, start: int, stop: int) -> list[Slot]:
        """Units for checks against the baseline: random cases, fresh sample indices."""
        cases, stream = (
            (self._train, self._train_fresh) if split == "train" else (self.split.validation, self._val_fresh)
        )
        return [(cases[c], FRESH + i) for c, i in (stream[j] for j in range(start, stop))]

    def test_slots(self) -> list[Slot]:
        n = len(self._test)
        u = math.ceil(self.problem.test_units / n) * n  # whole passes: every test case weighs the same
        return [(self._test[j % n], j // n) for j in range(u)]

    def reserve_test_calls(self) -> None:
        """Keep back the calls that score the winner, the regressed prompt and the baseline
        on the test split; an error when the budget cannot pay for them and a search."""
        n_prompts = 2 + (self.problem.baseline is not None)
        self.reserve = len(self.test_slots()) * n_prompts
        if self.limit is not None and self.reserve >= self.limit:
            raise ConfigError(
                f"a budget of {self.limit} model calls cannot pay for scoring on the test split "
                f"({self.reserve} calls: {len(self.test_slots())} samples x {n_prompts} prompts) and a search; "
                "raise Budget(max_calls=...) or lower Problem(test_units=...)"
            )

    @property
    def budget_left(self) -> int | None:
        return None if self.limit is None else max(0, self.limit - self.reserve - self.calls)

    def check_time(self) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise OutOfBudget("wall time")

    # -- drawing ----------------------------------------------------------------------------

    def ensure(self, jobs: Sequence[tuple[Prompt, Sequence[Slot]]], *, final: bool = False) -> None:
        """Draw every (prompt, case, index) of ``jobs`` not in the memo, in batches.

        Raises OutOfBudget before drawing when the calls would not fit (the search's share
        of ``max_calls`` excludes the test reserve; the final scoring may use the reserve).
        """
        todo: dict[tuple[str, str, int], tuple[Prompt, Case, int]] = {}
        for p, slots in jobs:
            for c, i in slots:
                key = (p.version, c.key, i)
                if key not in self.memo:
                    todo[key] = (p, c, i)
        if not todo:
            return
        if not final:
            self.check_time()
        if self.limit is not None:
            limit = self.limit if final else self.limit - self.reserve
            if self.calls + len(todo) > limit:
                raise OutOfBudget("model calls")
        items = list(todo.values())
        for start in range(0, len(items), BATCH):
            by_version: dict[str, list[Request]] = {}
            cases: dict[str, Case] = {}
            for p, c, i in items[start : start + BATCH]:
                inputs = {v: c.inputs[v] for v in p.variables}
                by_version.setdefault(p.version, []).append(Request(c.key, i, p.render(inputs)))
                cases[c.key] = c
            drawn = self.sampler.draw_many(by_version)
            for version, samples in drawn.items():
                for s in samples:
                    if not s.cached:
                        self.calls += 1
                        self.calls_by_version[version] += 1
                        role = self._role[s.case_id]
                        self.calls_by_purpose[role + (" check" if s.index >= FRESH else "")] += 1
                    self.memo[(version, s.case_id, s.index)] = self._judge(s.output, s.error, cases[s.case_id])

    def _judge(self, output: str | None, error: str | None, case: Case) -> Unit:
        if error is not None or output is None:
            return Unit(tuple(None for _ in self.requirements), None, (error or "no output",), error or "no output")
        good: list[bool | None] = []
        reasons: list[str] = []
        for r in self.requirements:
            try:
                outcome = r.check(output, case)
            except Exception as e:  # a Check not made by @check may raise
                outcome = Outcome("error", f"check {r.check.name} raised {type(e).__name__}: {e}")
            g = r.good(outcome)
            good.append(g)
            if g is not True:
                reasons.append(f"{r.description}: {outcome.reason or outcome.status}")
        return Unit(tuple(good), output, tuple(reasons))

    def units(self, prompt: Prompt, slots: Sequence[Slot], *, final: bool = False) -> list[Unit]:
        self.ensure([(prompt, slots)], final=final)
        return [self.memo[(prompt.version, c.key, i)] for c, i in slots]

    def score(self, prompt: Prompt, slots: Sequence[Slot], *, final: bool = False) -> Score:
        return score_units(self.units(prompt, slots, final=final), self.requirements)

    def train_score(self, prompt: Prompt, units: int | None = None) -> Score:
        return self.score(prompt, self.train_slots(self.max_units if units is None else units))

    def drawn_train(self, prompt: Prompt) -> list[tuple[Case, Unit]]:
        """The training samples of a prompt drawn so far (no new call), in unit order."""
        out = []
        for c, i in self.train_slots(self.max_units):
            u = self.memo.get((prompt.version, c.key, i))
            if u is not None:
                out.append((c, u))
        return out

    # -- racing -----------------------------------------------------------------------------

    def drawn_units(self, prompt: Prompt) -> int:
        """How many of the first training units of this prompt are in the memo."""
        n = 0
        for c, i in self.train_slots(self.max_units):
            if (prompt.version, c.key, i) not in self.memo:
                break
            n += 1
        return n

    def race_cost(self, prompts: Sequence[Prompt]) -> int:
        """About how many calls racing these prompts (beside the incumbent) would make.

        Successive halving's rung sizes with ceil(alive / eta) survivors per rung, less what
        is in the memo already; an estimate for fitting a round into the budget.
        """
        drawn = [self.drawn_units(p) for p in prompts]
        if not self.search.racing:
            return sum(self.max_units - d for d in drawn)
        alive = len(prompts) + 1  # the incumbent races too, from the memo
        cost = sum(max(0, self.rungs[0] - d) for d in drawn)
        for prev, units in zip(self.rungs, self.rungs[1:], strict=False):
            alive = max(1, math.ceil(alive / self.search.eta))
            cost += alive * (units - prev) if alive > 1 else self.max_units - prev
            if alive == 1:
                break
        return cost

    def race(self, prompts: Sequence[Prompt], *, racing: bool | None = None) -> tuple[list[Prompt], dict[str, Score]]:
        """Successive halving (or full evaluation) on training units, paired by unit.

        Returns the survivors of the last rung, best first (the first is the winner, scored
        on all training units), and each prompt's score on the last rung it reached.  Ties
        keep the given order, so a candidate must beat the prompt listed before it.
        """
        racing = self.search.racing if racing is None else racing
        rungs = self.rungs if racing else [self.max_units]
        alive = list({p.version: p for p in prompts}.values())
        scores: dict[str, Score] = {}
        r = 0
        while True:
            slots = self.train_slots(rungs[r])
            self.ensure([(p, slots) for p in alive])
            for p in alive:
                scores[p.version] = self.score(p, slots)
            alive.sort(key=lambda p: scores[p.version].key, reverse=True)  # stable: ties keep order
            if r == len(rungs) - 1:
                return alive, scores
            keep = max(1, math.ceil(len(alive) / self.search.eta))
            alive = alive[:keep]
            r = len(rungs) - 1 if len(alive) == 1 else r + 1  # a lone survivor goes straight to the top rung

    # -- acceptance -------------------------------------------------------------------------

    def _paired(
        self, new: Prompt, base: Prompt, slots: Callable[[int, int], list[Slot]], design: PairedDesign
    ) -> tuple[str, PairedState, int]:
        """Feed D = new - base (joint scale) per unit of ``slots`` to a paired test until it decides."""
        state = design.start()
        looked = 0
        verdict: str | None = None
        while verdict is None:
            # Draw about as many more pairs as the test expects to need, within [4, concurrency].
            ahead = state.needed() or 8
            step = max(4, min(self.problem.concurrency, ahead, 64))
            room = self.budget_left
            if room is not None:
                step = max(1, min(step, room // 2))  # at most two calls a pair: spend the last calls too
            batch = slots(looked, looked + step)
            self.ensure([(new, batch), (base, batch)])
            for c, i in batch:
                looked += 1
                a = self.memo[(new.version, c.key, i)].joint
                b = self.memo[(base.version, c.key, i)].joint
                if a is None or b is None:
                    if looked >= 4 * design.max_pairs:  # nothing but errors: give up
                        verdict = UNDECIDED
                        break
                    continue
                verdict = state.update(int(a) - int(b))
                if verdict is not None:
                    break
        return verdict, state, looked

    def compare(self, candidate: Prompt, incumbent: Prompt) -> Comparison:
        """The one-sided paired test "candidate better than incumbent" on validation units.

        ``llmops.stats.paired`` tests "new worse than baseline"; fed D = incumbent -
        candidate (on the joint good-on-everything scale) its REGRESSED verdict is "the
        incumbent is worse than the candidate", with false-alarm rate alpha (here: accepting
        a candidate that is not better), and NOT_WORSE is "the candidate is not better by
        min_improvement" (rejecting one that is, with rate <= beta).  The incumbent's
        validation samples are shared by its challengers (``val_slots``).
        """
        self.comparisons += 1
        alpha = self.search.alpha_for(self.comparisons)
        design = paired_design(self.search.min_improvement, alpha, self.search.beta, self.search.max_pairs)
        verdict, state, looked = self._paired(incumbent, candidate, self.val_slots, design)
        word = {REGRESSED: "better", NOT_WORSE: "not better"}.get(verdict, "undecided")
        # D was incumbent - candidate: the state's wins are the candidate's losses.
        return Comparison(word, alpha, state.pairs, state.losses, state.wins, state.ties, looked)

    def accept(self) -> None:
        """The candidate just compared replaces the incumbent: later tests use a new segment."""
        self.acceptances += 1

    @property
    def tolerance(self) -> float:
        """The tolerance on the joint scale: the smallest of the requirements'."""
        return min(r.tol for r in self.requirements)

    def not_worse(self, candidate: Prompt, baseline: Prompt, split: str) -> tuple[bool, int]:
        """The gate's own question on fresh units of ``split``: is the candidate not worse
        than the baseline (within the tolerance)?  The sequential paired test with both
        error rates at ``Search.check_error``; undecided at ``max_pairs`` counts as no.
        Returns the answer and the units looked at.
        """
        if self.clearly_worse(candidate, baseline):
            return False, 0
        e = self.search.check_error
        design = paired_design(self.tolerance, e, e, self.search.check_pairs)
        verdict, _, looked = self._paired(candidate, baseline, lambda a, b: self.check_slots(split, a, b), design)
        return verdict == NOT_WORSE, looked

    def clearly_worse(self, candidate: Prompt, baseline: Prompt) -> bool:
        """The training samples drawn so far already say "worse than the baseline" (no call).

        The fixed-n 95% paired interval over the training units both prompts have in the
        memo lies below 0 (a one-sided error of 2.5%, on top of the fresh test's).  Only
        this answer is taken from samples the search has seen: a candidate chosen for doing
        well on them looks better there than it is, so "worse" on them is conservative,
        while "not worse" is asked on fresh samples (``not_worse``).
        """
        wins = losses = ties = 0
        for c, i in self.train_slots(self.max_units):
            a, b = self.memo.get((candidate.version, c.key, i)), self.memo.get((baseline.version, c.key, i))
            if a is None or b is None or a.joint is None or b.joint is None:
                continue
            wins += a.joint and not b.joint
            losses += b.joint and not a.joint
            ties += a.joint == b.joint
        if wins + losses + ties < MIN_MEMO_PAIRS:
            return False
        return difference_interval(wins, losses, ties)[1] < 0

    def recovered(self, candidate: Prompt, baseline: Prompt | None) -> tuple[bool, Score]:
        """With a baseline, not worse than it on fresh validation units; and every
        requirement met there (point estimates over all those units, ``Search.val_units``
        at least)."""
        ok, looked = self.not_worse(candidate, baseline, "validation") if baseline is not None else (True, 0)
        if not ok:
            return False, score_units([], self.requirements)
        score = self.score(candidate, self.check_slots("validation", 0, max(looked, self.search.val_units)))
        return ok and score.meets_all, score

    def val_score(self, prompt: Prompt, units: int) -> Score:
        return self.score(prompt, self.val_slots(0, units))


# -- the test split ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TestScore:
    """One requirement on the held-out test units: the candidate against the threshold
    (Wilson 95% interval), beside the regressed prompt and the baseline on the same units."""

    requirement: str
    direction: str
    threshold: float
    tolerance: float
    k: int  # passes (at_least) or violations (at_most)
    n: int
    rate: float
    interval: tuple[float, float]
    verdict: str  # "meets": the interval is on the good side; "misses": on the bad side; else "unclear"
    regressed_rate: float
    baseline_rate: float | None = None
    versus_baseline: Estimate | None = None  # candidate - baseline on the pass scale (paired units)
    noninferiority: str | None = None  # "not worse", "worse" (by the tolerance or more) or "unclear"

    __test__ = False  # not a pytest class

    def to_dict(self) -> dict[str, object]:
        d = dict(self.__dict__)
        d["interval"] = list(self.interval)
        d["versus_baseline"] = self.versus_baseline.to_dict() if self.versus_baseline else None
        return d


def requirement_verdict(r: Requirement, interval: tuple[float, float]) -> str:
    lo, hi = interval
    if r.direction == "at_least":
        return "meets" if lo >= r.threshold else "misses" if hi < r.threshold else "unclear"
    return "meets" if hi <= r.threshold else "misses" if lo > r.threshold else "unclear"


def paired_estimate(a: Sequence[bool | None], b: Sequence[bool | None], what: str) -> Estimate:
    """Mean of a - b over units where both have an outcome, with the paired score interval."""
    wins = losses = ties = 0
    for x, y in zip(a, b, strict=True):
        if x is None or y is None:
            continue
        wins += x and not y
        losses += y and not x
        ties += x == y
    n = wins + losses + ties
    lo, hi = difference_interval(wins, losses, ties)
    return Estimate((wins - losses) / n if n else math.nan, lo, hi, f"{what}; 95% paired score interval (fixed n)")


def score_test(
    ev: Evaluator, candidate: Prompt, regressed: Prompt, baseline: Prompt | None
) -> tuple[tuple[TestScore, ...], Estimate, Estimate | None, Estimate | None]:
    """Score the winner once on the test units (with the regressed prompt and the baseline).

    Returns per-requirement test scores, the improvement over the regressed prompt, the
    difference from the baseline, and the recovery (all on the joint scale: a sample counts
    when it is good on every requirement).
    """
    slots = ev.test_slots()
    jobs = [(candidate, slots), (regressed, slots)] + ([(baseline, slots)] if baseline is not None else [])
    ev.ensure(jobs, final=True)
    cu = ev.units(candidate, slots, final=True)
    ru = ev.units(regressed, slots, final=True)
    bu = ev.units(baseline, slots, final=True) if baseline is not None else None
    cs, rs = score_units(cu, ev.requirements), score_units(ru, ev.requirements)
    bs = score_units(bu, ev.requirements) if bu is not None else None
    scores = []
    for i, r in enumerate(ev.requirements):
        k = cs.good[i] if r.direction == "at_least" else cs.judged[i] - cs.good[i]
        n = cs.judged[i]
        interval = wilson(k, n)
        vs = verdict_ni = None
        if bu is not None and bs is not None:
            vs = paired_estimate([u.good[i] for u in cu], [u.good[i] for u in bu], "candidate - baseline, pass scale")
            verdict_ni = "not worse" if vs.low >= -r.tol else "worse" if vs.high <= -r.tol else "unclear"
        scores.append(
            TestScore(
                requirement=r.description,
                direction=r.direction,
                threshold=r.threshold,
                tolerance=r.tol,
                k=k,
                n=n,
                rate=cs.rates[i],
                interval=interval,
                verdict=requirement_verdict(r, interval),
                regressed_rate=rs.rates[i],
                baseline_rate=bs.rates[i] if bs is not None else None,
                versus_baseline=vs,
                noninferiority=verdict_ni,
            )
        )
    improvement = paired_estimate([u.joint for u in cu], [u.joint for u in ru], "candidate - regressed, joint")
    versus = None
    recovery = None
    if bu is not None:
        versus = paired_estimate([u.joint for u in cu], [u.joint for u in bu], "candidate - baseline, joint")
        recovery = recovery_estimate(
            [c for c, _ in slots], [u.joint for u in cu], [u.joint for u in ru], [u.joint for u in bu], ev.problem.seed
        )
    return tuple(scores), improvement, versus, recovery


def recovery_estimate(
    cases: Sequence[Case],
    candidate: Sequence[bool | None],
    regressed: Sequence[bool | None],
    baseline: Sequence[bool | None],
    seed: int = 0,
    resamples: int = RESAMPLES,
) -> Estimate:
    """Recovery (candidate - regressed) / (baseline - regressed) with a bootstrap interval.

    Percentile bootstrap over test units, resampled within each case (the cases are fixed:
    the ``cases`` population), the three prompts' outcomes kept together per unit; errors
    are left out of each prompt's mean.  The point estimate is NaN when the baseline is not
    above the regressed prompt on test (nothing to recover).  When the baseline's lead is
    not clear (its difference is <= 0 in more than 2.5% of resamples) the ratio has no
    bounded interval and the bounds are -inf / +inf.
    """

    def arr(xs: Sequence[bool | None]) -> np.ndarray:
        return np.array([np.nan if x is None else float(x) for x in xs])

    c, r, b = arr(candidate), arr(regressed), arr(baseline)
    method = f"percentile bootstrap over test samples within cases, {resamples} resamples"
    rng = np.random.default_rng(sample_seed(seed, "recovery-bootstrap") % 2**63)
    groups: dict[str, list[int]] = {}
    for j, case in enumerate(cases):
        groups.setdefault(case.key, []).append(j)
    idx = np.concatenate([rng.choice(np.array(ix), size=(resamples, len(ix))) for ix in groups.values()], axis=1)
    # All-error resamples give NaN means (numpy warns about the empty slice; NaN is the answer).
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        den = np.nanmean(b) - np.nanmean(r)
        value = float((np.nanmean(c) - np.nanmean(r)) / den) if den > 0 else math.nan
        mc, mr, mb = (np.nanmean(x[idx], axis=1) for x in (c, r, b))
        dens = mb - mr
        ratios = (mc - mr) / dens
    if np.mean(dens <= 0) > 0.025 or math.isnan(value):
        return Estimate(value, -math.inf, math.inf, method + "; baseline not clearly above regressed: unbounded")
    lo, hi = np.nanpercentile(ratios[dens > 0], [2.5, 97.5])
    return Estimate(value, float(lo), float(hi), method)
