"""The optimizer as a library: proposers, variable checks, budgets, memo, split, acceptance, recovery.

Statistical claims are checked over seeds against the simulated task's known truth
(``llmops.optimize.simulate``), never on one hand-picked run.
"""

from __future__ import annotations

import json
import math
import random
import types
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import llmops.optimize as opt
from llmops import Case, FunctionModel, Prompt, checks
from llmops.errors import ConfigError
from llmops.optimize import (
    Budget,
    Context,
    DiffSearch,
    FewShot,
    Problem,
    ReflectiveRewrite,
    Requirement,
    Score,
    Search,
    TextDiff,
    optimize,
    parse_candidates,
    recovery_estimate,
    sentences,
    split_cases,
    with_text,
    write_candidate,
)
from llmops.optimize.evaluate import Evaluator
from llmops.optimize.simulate import HARM, HELP_A, HELP_B, SimulatedTask

FAST = Search(max_rounds=4)


def problem(task: SimulatedTask, seed: int, model=None, **kw) -> Problem:
    return Problem(
        prompt=task.regressed,
        baseline=task.baseline,
        cases=task.cases,
        requirements=[task.requirement],
        model=model or task.model,
        seed=seed,
        concurrency=64,
        **kw,
    )


class Counting:
    """Wraps a simulated model's function: counts calls and keeps the prompts it saw."""

    def __init__(self, task: SimulatedTask) -> None:
        self.task = task
        self.calls = 0
        self.seen: list[str] = []
        self.model = FunctionModel(self, id="counting")

    def __call__(self, text: str, rng: random.Random) -> str:
        self.calls += 1
        self.seen.append(text)
        return self.task._answer(text, rng)


def test_all_lists_the_public_names():
    public = {n for n, v in vars(opt).items() if not n.startswith("_") and not isinstance(v, types.ModuleType)}
    assert sorted(opt.__all__) == sorted(public)


# -- the split ------------------------------------------------------------------------------------


def _cases(groups: dict[str, int]) -> list[Case]:
    return [
        Case({"q": f"{g} {i}"}, id=f"{g}-{i}", tags=(g,) if g != "untagged" else ())
        for g, n in groups.items()
        for i in range(n)
    ]


def test_split_is_seeded_and_recorded():
    cases = _cases({"a": 10, "b": 6, "c": 4})
    one, again = split_cases(cases, seed=3), split_cases(list(reversed(cases)), seed=3)
    assert one.ids() == again.ids()  # the seed and the cases decide, not their order
    others = {json.dumps(split_cases(cases, seed=s).ids(), sort_keys=True) for s in range(5)}
    assert len(others) > 1
    ids = one.ids()
    assert sorted(i for part in ids.values() for i in part) == sorted(c.id for c in cases)
    assert [len(ids[k]) for k in ("train", "validation", "test")] == [10, 5, 5]
    assert "stratified by tags" in one.method


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 12), min_size=1, max_size=5), st.integers(0, 10**6))
def test_split_is_stratified_by_tags(sizes, seed):
    groups = {f"g{i}": n for i, n in enumerate(sizes)}
    cases = _cases(groups)
    if len(cases) < 6:
        with pytest.raises(ConfigError, match="at least 6 cases"):
            split_cases(cases, seed)
        return
    s = split_cases(cases, seed)
    n = len(cases)
    for name in ("train", "validation", "test"):
        part = getattr(s, name)
        share = len(part) / n
        for g, size in groups.items():
            got = sum(1 for c in part if c.tags == (g,))
            assert abs(got - size * share) < 2, (name, g, got, size * share)


def test_too_few_cases_is_an_error_before_any_call():
    task = SimulatedTask(0, cases_per_group=1)
    with pytest.raises(ConfigError, match="at least 6 cases"):
        problem(task, 0)


# -- text helpers ---------------------------------------------------------------------------------


@given(st.text(alphabet="ab .!?\n\t", max_size=60))
def test_sentences_join_back(text):
    assert "".join(sentences(text)) == text


def test_diff_hunks_revert_to_either_end():
    task = SimulatedTask(0)
    diff = TextDiff(task.baseline, task.regressed)
    assert len(diff.hunks) == 8
    assert diff.revert(set(range(8))).version == task.baseline.version
    assert diff.revert(set()).version == task.regressed.version
    harmful = [h.index for h in diff.hunks if HARM.text in h.after]
    assert len(harmful) == 1
    assert HARM.text not in diff.revert({harmful[0]}).text


def test_with_text_keeps_roles_and_name():
    p = Prompt("p", "Answer {q}", system="Be brief.")
    c = with_text(p, "Answer this: {q}")
    assert c.parts == [("system", "Be brief."), ("human", "Answer this: {q}")]
    c = with_text(p, "[system]\nBe very brief.\n\n[human]\nQ: {q}")
    assert c.parts == [("system", "Be very brief."), ("human", "Q: {q}")]
    assert c.name == "p"


def test_parse_candidates_is_strict_and_counts():
    assert parse_candidates("<candidate>\nA {x}\n</candidate>") == (["A {x}"], 0)
    found, bad = parse_candidates("chat <candidate>\nA\n<candidate>\nB\n</candidate>\n<candidate>\n\n</candidate>")
    assert (found, bad) == (["B"], 2)  # A was never closed; the last block is empty
    assert parse_candidates("no markers at all") == ([], 1)
    assert parse_candidates("<candidate>\nunclosed") == ([], 1)


# -- proposers on small contexts -----------------------------------------------------------------


def _score(rate: float, units: int = 80, threshold: float = 0.75) -> Score:
    k = round(rate * units)
    return Score((k,), (units,), k, units, units, 0, (k / units,), (k / units - threshold,))


class TruthEngine:
    """An Engine that knows the simulated truth: races and checks without noise or calls."""

    def __init__(self, task: SimulatedTask) -> None:
        self.task = task
        self.races = 0
        self.asked: list[list[tuple[str, str]]] = []
        self.unparsed_n = 0

    def _rate(self, p) -> float:
        return self.task.true_rate(p, self.task.cases)

    def ask(self, model, messages, label):
        self.asked.append(messages)
        import asyncio

        return asyncio.run(model.generate(messages, seed=len(self.asked))).text

    def race(self, prompts, proposer, notes):
        self.races += 1
        return [_score(self._rate(p)) for p in prompts]

    def score(self, prompt, units):
        return _score(self._rate(prompt), units or 80)

    def calls_left(self):
        return None

    def recovers(self, prompt):
        return self._rate(prompt) >= self._rate(self.task.baseline) - 0.05

    def unparsed(self, proposer, n):
        self.unparsed_n += n


def _context(task: SimulatedTask, engine, prompt=None, examples=(), failures=(), history=()) -> Context:
    prompt = prompt or task.regressed
    return Context(
        prompt=prompt,
        regressed=task.regressed,
        baseline=task.baseline,
        requirements=(task.requirement,),
        round=1,
        seed=0,
        train=tuple(task.cases[:20]),
        score_now=_score(task.true_rate(prompt, task.cases)),
        failures=tuple(failures),
        examples=tuple(examples),
        history=tuple(history),
        engine=engine,
    )


def test_diff_search_finds_the_smallest_recovering_revert():
    task = SimulatedTask(0)
    engine = TruthEngine(task)
    ds = DiffSearch()
    (candidate,) = ds.propose(_context(task, engine), 4)
    culprits = {
        h.index for h in ds.diff.hunks if HARM.text in h.after or HELP_A.text in h.before or HELP_B.text in h.before
    }
    assert set(ds.result) == culprits
    assert ds.steps == engine.races <= 2 * math.log2(len(ds.diff.hunks)) + 2
    # Keeps the intended rewording, drops the harmful line, restores the helpful ones.
    assert HARM.text not in candidate.text and HELP_A.text in candidate.text
    assert "Thank the customer for writing." in candidate.text
    assert ds.propose(_context(task, engine), 4) == []  # runs once


def test_diff_search_stops_in_time_when_the_budget_runs_low():
    task = SimulatedTask(0)

    class Spending(TruthEngine):
        left = 1000

        def race(self, prompts, proposer, notes):
            self.left -= 100 * len(prompts)
            return super().race(prompts, proposer, notes)

        def calls_left(self):
            return self.left

    engine = Spending(task)
    ds = DiffSearch()
    (candidate,) = ds.propose(_context(task, engine), 4)
    assert ds.stopped_early and ds.steps < 6
    assert engine.left >= 0 and candidate.version != task.regressed.version


def test_diff_search_needs_a_baseline_and_a_regression():
    task = SimulatedTask(0, variant="no-recovery")
    ds = DiffSearch()
    assert ds.propose(_context(task, TruthEngine(task)), 4) == []
    assert "not worse" in ds.note


def test_reflective_rewrite_shows_failures_history_and_diff():
    task = SimulatedTask(0)
    engine = TruthEngine(task)
    case = task.cases[0]
    failure = opt.Failure(case, "Sorry", ("exactly the expected answer at least 75%: got 'Sorry'",))
    history = [(task.regressed, _score(0.2)), (task.baseline, _score(0.8))]
    rw = ReflectiveRewrite(task.rewriter(malformed=0.5, helpful=0.5, neutral=0, harmful=0, broken=0))
    ctx = _context(task, engine, failures=[failure], history=history)
    text = rw.messages(ctx, 3)[1][1]
    assert task.regressed.text in text and "why: exactly the expected answer" in text
    assert text.index('score="20%"') < text.index('score="80%"')  # ascending, as in OPRO
    assert "\n-For billing and shipping questions, quote the order number first.\n" in text  # sentence diff
    out = rw.propose(ctx, 3)
    assert len(out) + engine.unparsed_n >= 3 and all("{question}" in x for x in out)


def test_few_shot_uses_training_answers_with_literal_braces():
    task = SimulatedTask(0)
    examples = [opt.Example(c, f'{{"ref": "{c.expected}"}}') for c in task.cases[:6]]
    fs = FewShot(shots=3)
    cands = fs.propose(_context(task, TruthEngine(task), examples=examples), 2)
    assert len(cands) == 2 and len({c.version for c in cands}) == 2
    for c in cands:
        assert isinstance(c, Prompt)
        assert c.variables == ("question",)
        rendered = c.render({"question": "billing question 1"})[0][1]
        assert '{"ref": "REF-' in rendered  # literal braces survive formatting
        assert rendered.rstrip().endswith("Question: billing question 1")
        assert rendered.count("Example ") == 3
    # An earlier block is replaced, not stacked.
    again = fs.insert(cands[0], examples[:2])
    assert again.text.count(opt.proposers.EXAMPLES_HEADER) == 1


# -- the whole loop on the simulated task ----------------------------------------------------------


def test_a_candidate_with_a_missing_or_extra_variable_is_rejected_before_any_call():
    task = SimulatedTask(0, cases_per_group=5)
    counting = Counting(task)

    class Bad:
        name = "bad"

        def propose(self, context, k):
            return [
                context.prompt.text.replace("{question}", "{question} {extra}"),
                context.prompt.text.replace("{question}", "MISSING"),
                "broken {",
            ]

    result = optimize(problem(task, 0, counting.model), [Bad()], search=FAST)
    assert result.stopped_because == "no candidates" and result.candidate is None
    reasons = [r for _, r in result.rejected]
    assert reasons[0] == "adds {extra}" and reasons[1] == "drops {question}" and "invalid template" in reasons[2]
    assert not any("MISSING" in t or "{extra}" in t for t in counting.seen)
    assert counting.calls == result.calls  # only the starting prompts were sampled


def test_model_call_budget_is_never_exceeded():
    task = SimulatedTask(1, cases_per_group=6)
    for limit in (700, 900, 1300):
        counting = Counting(task)
        result = optimize(
            problem(task, 1, counting.model, test_units=48),
            [DiffSearch(), FewShot()],
            budget=Budget(max_calls=limit),
            search=FAST,
        )
        assert counting.calls == result.calls <= limit
        if result.stopped_because == "budget":
            assert result.stop_detail == "model calls"
        if result.candidate is not None:
            assert result.test_calls == result.settings["test_units"] * 3


def test_proposer_budget_and_wall_time_stop_the_search():
    task = SimulatedTask(2, cases_per_group=5)
    calls = Counter()
    rewriter = task.rewriter()

    def counted(text, rng):
        calls["n"] += 1
        return rewriter.fn(text, rng)

    result = optimize(
        problem(task, 2),
        [ReflectiveRewrite(FunctionModel(counted, id="r"))],
        budget=Budget(max_proposer_calls=2),
        search=Search(max_rounds=6, patience=6),
    )
    assert calls["n"] == result.proposer_calls <= 2
    assert result.stopped_because in ("budget", "recovered", "duplicates")
    timed = optimize(problem(task, 2), [FewShot()], budget=Budget(max_seconds=1e-9))
    assert (timed.stopped_because, timed.stop_detail, timed.candidate) == ("budget", "wall time", None)


def test_budget_too_small_for_the_test_split_is_an_error():
    task = SimulatedTask(0, cases_per_group=5)
    with pytest.raises(ConfigError, match="cannot pay for scoring on the test split"):
        optimize(problem(task, 0, test_units=100), budget=Budget(max_calls=200))


def test_memo_scores_the_same_candidate_twice_without_new_calls():
    task = SimulatedTask(0, cases_per_group=5)
    counting = Counting(task)
    p = problem(task, 0, counting.model)
    split = split_cases(p.cases, 0)
    ev = Evaluator(p, split, Budget(), Search(), 0.0)
    first = ev.train_score(task.regressed)
    n = counting.calls
    assert n == ev.calls == ev.max_units
    assert ev.train_score(task.regressed) == first and counting.calls == n
    ev.race([task.regressed, task.baseline])
    assert counting.calls == n + ev.max_units  # only the baseline was new
    # A sample is the same whichever batch draws it: a second evaluator, units in another order.
    other = Evaluator(p, split, Budget(), Search(), 0.0)
    slots = list(reversed(ev.train_slots(ev.max_units)))
    other.ensure([(task.regressed, slots[:7])])
    other.ensure([(task.regressed, slots)])
    for c, i in slots:
        key = (task.regressed.version, c.key, i)
        assert other.memo[key] == ev.memo[key]


def test_a_recovery_check_says_no_from_drawn_training_samples_but_yes_only_from_fresh_ones():
    task = SimulatedTask(1)
    counting = Counting(task)
    p = problem(task, 1, counting.model)
    ev = Evaluator(p, split_cases(p.cases, 1), Budget(), Search(), 0.0)
    for prompt in (task.regressed, task.baseline):
        ev.train_score(prompt)
    n = counting.calls
    # About 60 points worse on every training sample drawn so far: "no", without a call.
    assert ev.clearly_worse(task.regressed, task.baseline)
    assert ev.not_worse(task.regressed, task.baseline, "train") == (False, 0) and counting.calls == n
    # Everything reverted but a harmless sentence: as good as the baseline; "yes" is asked on fresh samples.
    diff = TextDiff(task.baseline, task.regressed)
    harmless = next(h.index for h in diff.hunks if "Thank the customer" in h.after)
    equal = diff.revert({h.index for h in diff.hunks} - {harmless})
    ev.train_score(equal)
    assert not ev.clearly_worse(equal, task.baseline)
    before = ev.calls_by_purpose["train check"]
    _, looked = ev.not_worse(equal, task.baseline, "train")
    assert looked > 0 and ev.calls_by_purpose["train check"] > before
    # Too few drawn pairs: no answer from them.
    assert not ev.clearly_worse(task.regressed, Prompt("support-bot", "Nothing drawn yet. {question}"))


def test_each_proposer_improves_on_the_simulated_task_over_seeds():
    """The candidate's TRUE rate on the test cases beats the regressed prompt's, in most seeds."""
    wins = Counter()
    seeds = range(3)
    for seed in seeds:
        task = SimulatedTask(seed, cases_per_group=6, demo_effect=1.2)  # demonstrations matter here
        for name, proposers in (
            ("diff", [DiffSearch()]),
            ("rewrite", [ReflectiveRewrite(task.rewriter())]),
            ("few-shot", [FewShot()]),
        ):
            result = optimize(problem(task, seed, test_units=48), proposers, budget=Budget(max_calls=6000), search=FAST)
            if result.candidate is None:
                continue
            assert result.diff.startswith("--- support-bot@")
            test = result.split.test
            if task.true_rate(result.candidate, test) > task.true_rate(task.regressed, test) + 0.05:
                wins[name] += 1
    assert wins["diff"] == len(seeds)
    assert wins["rewrite"] >= 2
    assert wins["few-shot"] >= 2


def test_acceptance_rejects_candidates_that_are_not_better():
    """Over seeds: a candidate as good as the incumbent is accepted at most at about alpha;
    a much better one nearly always."""
    task = SimulatedTask(0, variant="no-recovery")
    same = Prompt("support-bot", task.regressed.text.replace("Be polite.", "Be courteous."))
    assert task.true_rate(same, task.cases) == task.true_rate(task.regressed, task.cases)
    better = SimulatedTask(0)
    accepted_same = accepted_better = 0
    runs = 40
    for seed in range(runs):
        p = problem(task, seed)
        ev = Evaluator(p, split_cases(p.cases, seed), Budget(max_calls=None), Search(), 0.0)
        accepted_same += ev.compare(same, task.regressed).accepted
        q = problem(better, seed)
        ev = Evaluator(q, split_cases(q.cases, seed), Budget(max_calls=None), Search(), 0.0)
        accepted_better += ev.compare(better.baseline, better.regressed).accepted
    alpha = Search().alpha_for(1)
    # Binomial(40, 0.03): P(>= 5) < 1%.
    assert accepted_same <= 4, f"{accepted_same}/{runs} equal candidates accepted at alpha {alpha:.3f}"
    assert accepted_better >= runs - 2


def test_no_candidate_when_no_recovery_is_possible():
    for seed in range(2):
        task = SimulatedTask(seed, variant="no-recovery", cases_per_group=6)
        result = optimize(
            problem(task, seed), [DiffSearch(), ReflectiveRewrite(task.rewriter()), FewShot()], search=FAST
        )
        if result.candidate is not None:  # allowed at rate alpha; never a worse one
            assert (
                task.true_rate(result.candidate, result.split.test)
                >= task.true_rate(task.regressed, result.split.test) - 0.02
            )
        assert result.stopped_because in ("stagnation", "duplicates", "no candidates")


# -- recovery arithmetic --------------------------------------------------------------------------


def _outcomes(rates: dict[str, float], n_cases: int, per_case: int, rng: random.Random):
    cases = [Case({"q": str(i)}) for i in range(n_cases) for _ in range(per_case)]
    return cases, {k: [rng.random() < p for _ in cases] for k, p in rates.items()}


def test_recovery_arithmetic():
    cases = [Case({"q": str(i)}) for i in range(4) for _ in range(5)]
    c = [True] * 16 + [False] * 4  # 0.8
    r = [True] * 4 + [False] * 16  # 0.2
    b = [True] * 20  # 1.0
    est = recovery_estimate(cases, c, r, b)
    assert est.value == pytest.approx((0.8 - 0.2) / (1.0 - 0.2))
    assert est.low <= est.value <= est.high
    # errors are left out of each prompt's mean
    est2 = recovery_estimate(cases, [*c[:-1], None], r, b)
    assert est2.value == pytest.approx((16 / 19 - 0.2) / 0.8)
    flat = recovery_estimate(cases, c, r, r)  # nothing to recover
    assert math.isnan(flat.value) and (flat.low, flat.high) == (-math.inf, math.inf)


def test_recovery_interval_covers_the_truth():
    """Calibration: the 95% bootstrap interval covers the true recovery in about 95% of runs."""
    rng = random.Random(7)
    truth = {"c": 0.7, "r": 0.3, "b": 0.8}
    true_recovery = (0.7 - 0.3) / (0.8 - 0.3)
    runs, covered = 150, 0
    for i in range(runs):
        cases, out = _outcomes(truth, 10, 12, rng)
        est = recovery_estimate(cases, out["c"], out["r"], out["b"], seed=i, resamples=1000)
        covered += est.low <= true_recovery <= est.high
    assert covered >= 0.88 * runs, f"covered {covered}/{runs}"


# -- the result -----------------------------------------------------------------------------------


def test_result_reports_trajectory_split_and_files(tmp_path):
    task = SimulatedTask(0, cases_per_group=6)
    rows = []
    result = optimize(
        problem(task, 0, test_units=48),
        [DiffSearch(), FewShot()],
        search=FAST,
        on_progress=lambda *a: rows.append(a),
    )
    assert result.candidate is not None and rows
    rnd, best, calls, left = rows[-1]
    assert rnd == result.rounds and best.version == result.candidate.version and calls <= result.calls and left >= 0
    assert {s.status for s in result.trajectory} >= {"regressed", "baseline", "accepted"}
    assert sum(len(v) for v in result.split.ids().values()) == len(task.cases)
    (score,) = result.test_scores
    assert score.n == result.settings["test_units"] and score.verdict in ("meets", "misses", "unclear")
    assert result.recovery is not None and result.stopped_because in opt.STOP_REASONS
    assert "recovery" in result.summary()
    json.dumps(result.to_dict())
    path = write_candidate(result, tmp_path / "candidates")
    assert path is not None and path.read_text().rstrip("\n") == result.candidate.text
    assert json.loads(path.with_suffix(".json").read_text())["candidate"]["version"] == result.candidate.version


def test_requirement_of_and_directions():
    r = Requirement.of(type("R", (), {"check": checks.exact(), "direction": "at_most", "threshold": 0.1})())
    assert r.tolerance == 0.1 and r.rate(9, 10) == pytest.approx(0.1) and r.margin(0.05) == pytest.approx(0.05)
    with pytest.raises(ConfigError):
        Requirement(checks.exact(), "about", 0.5)


def test_problem_from_a_run_takes_its_settings():
    from llmops.config import Settings
    from llmops.evaluation import Run

    task = SimulatedTask(0, cases_per_group=2)
    settings = Settings(seed=7, concurrency=3, cache="off")
    run = Run(task.regressed, task.cases, task.model, settings)
    p = Problem.from_run(run, [task.requirement], baseline=task.baseline, test_units=30)
    assert (p.prompt, p.baseline, p.seed, p.concurrency, p.test_units) == (task.regressed, task.baseline, 7, 3, 30)
    assert p.cases == tuple(task.cases) and p.model_under_test is task.model


def test_a_custom_proposer_is_a_proposer():
    class Mine:
        name = "mine"

        def propose(self, context, k):
            return []

    assert isinstance(Mine(), opt.Proposer)
    with pytest.raises(ConfigError, match="not a proposer"):
        optimize(problem(SimulatedTask(0, cases_per_group=2), 0), [object()])
