import re

import pytest
from conftest import bernoulli_model
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.runnables import RunnableLambda

from llmops import Case, FunctionModel, Prompt, Session, checks
from llmops.errors import CheckError, ConfigError, ErrorBudgetExceeded, NotDecided, RequirementFailed
from llmops.stats import FAIL, sequential_design

P = Prompt("p", "Q: {q}")
ONE = Case({"q": "x"}, expected="yes", id="only")


def test_pass_and_fail_messages_say_the_numbers_in_words():
    s = Session(model=bernoulli_model(0.8))
    with pytest.raises(RequirementFailed) as e:
        s.sample(P, ONE).expect(checks.json_valid(), at_least=0.95)
    r = e.value.result
    assert r.verdict == FAIL and r.n == r.calls
    assert f"valid JSON in {r.k} of {r.n} samples" in str(e.value)
    assert "requirement at least 95%" in str(e.value) and "FAIL with false-alarm rate <= 1%" in str(e.value)
    ok = Session(model=bernoulli_model(1.0)).sample(P, ONE).expect(checks.json_valid(), at_least=0.9)
    assert ok.passed and "PASS with miss rate <= 5%" in ok.message and ok.calls == ok.n


def test_calls_used_are_exactly_the_sequential_stopping_time():
    # Replaying the drawn outcomes through the design must stop exactly where the run stopped:
    # nothing was drawn that the test did not look at.
    for p in (0.75, 0.9, 0.97):
        run = Session(model=bernoulli_model(p), seed=int(p * 100)).sample(P, ONE)
        r = run.evaluate(checks.json_valid(), at_least=0.9)
        outcomes = [row["outcome"] == "pass" for row in r.samples]
        assert len(outcomes) == r.calls
        d = sequential_design(0.9, 0.1, 0.01, 0.05)
        k = 0
        for n, ok in enumerate(outcomes, 1):
            k += ok
            if d.decide(k, n):
                assert n == len(outcomes)
                break
        else:
            pytest.fail("the run drew more samples than the test needed")


def test_requirements_on_one_run_share_samples():
    run = Session(model=bernoulli_model(0.99)).sample(P, ONE)
    first = run.expect(checks.json_valid(), at_least=0.9)
    second = run.expect(checks.regex(r"ok"), at_least=0.9)
    # The second requirement walked the samples already drawn: each model call is counted once.
    assert second.reused > 0 and second.calls < second.n and run.calls == first.calls + second.calls


def test_at_most_counts_violations():
    leaky = FunctionModel(lambda t, rng: "the code is SECRET-42" if rng.random() < 0.3 else "I can't share that")
    with pytest.raises(RequirementFailed, match=r"containing SECRET-42 in \d+ of \d+ samples.*at most 5%"):
        Session(model=leaky).sample(P, ONE).expect(checks.contains("SECRET-42"), at_most=0.05, tolerance=0.05)
    safe = FunctionModel(lambda t, rng: "I can't share that")
    r = Session(model=safe).sample(P, ONE).expect(checks.contains("SECRET-42"), at_most=0.0, tolerance=0.05)
    assert r.passed and r.k == 0 and r.n == 59  # rule of three: ~3 / 0.05 clean samples


def test_errors_are_left_out_of_the_rate_and_shown_beside_it():
    def sometimes_down(text, rng):
        if rng.random() < 0.06:
            raise ConnectionError("server went away")
        return '{"ok": 1}'

    run = Session(model=FunctionModel(sometimes_down), retries=0).sample(P, ONE)
    r = run.expect(checks.json_valid(), at_least=0.95, tolerance=0.05)
    assert r.errors > 0 and r.k == r.n and r.calls == r.n + r.errors and r.rate == 1.0
    assert "error" in r.message and "left out" in r.message


def test_error_budget_turns_into_an_error_with_the_reason():
    def down(text, rng):
        if rng.random() < 0.5:
            raise ConnectionError("connection refused by api.example")
        return "{}"

    with pytest.raises(ErrorBudgetExceeded, match="connection refused") as e:
        Session(model=FunctionModel(down), retries=0).sample(P, ONE).expect(checks.json_valid(), at_least=0.9)
    assert e.value.result.verdict == "ERROR" and e.value.result.calls < 40


def test_langchain_chat_model_and_runnable_are_models():
    chat = FakeListChatModel(responses=['{"a": 1}'])
    r = Session(model=chat).sample(P, ONE).expect(checks.json_valid(), at_least=0.9)
    assert r.passed and r.model.startswith("FakeListChatModel")
    seen = []
    lam = RunnableLambda(lambda msgs: seen.append(msgs) or "yes")
    assert Session(model=lam).sample(P, ONE).expect(checks.exact(), at_least=0.9).passed
    assert seen[0][0].content == "Q: x"


def test_plain_callable_is_a_model():
    assert Session(model=lambda text: "yes").sample(P, ONE).expect(checks.exact(), at_least=0.9).passed


def test_bad_requirements_are_clear_errors():
    run = Session(model=bernoulli_model(1.0)).sample(P, Case({"q": "x"}))
    with pytest.raises(ConfigError, match="exactly one of at_least"):
        run.expect(checks.json_valid())
    with pytest.raises(CheckError, match="has none"):
        run.expect(checks.exact(), at_least=0.9)
    with pytest.raises(ConfigError, match="unknown keyword 'tolerence'"):
        run.expect(checks.json_valid(), at_least=0.9, tolerence=0.1)


def _tickets(n):
    return [Case({"q": f"{i}"}, expected="yes", id=f"t{i}") for i in range(n)]


def test_dataset_level_verdict_lists_the_worst_cases():
    def model(text, rng):
        i = int(text.split()[-1])
        return "yes" if rng.random() < (0.2 if i < 6 else 0.95) else "no"

    with pytest.raises(RequirementFailed) as e:
        Session(model=FunctionModel(model)).sample(P, _tickets(20)).expect(checks.exact(), at_least=0.9)
    r = e.value.result
    assert r.n_cases == 20 and "over 20 cases (about these cases" in r.message and "Worst cases: t" in r.message
    listed = re.findall(r"(t\d+) \d+/\d+", r.message.split("Worst cases: ")[1])
    assert listed and set(listed) <= {f"t{i}" for i in range(20)}
    # the listed cases are the lowest observed rates, worst first
    rate = {c.case_id: c.k / c.n for c in r.cases if c.n}
    assert [rate[c] for c in listed] == sorted(rate[c] for c in listed)
    assert rate[listed[0]] == min(rate.values())
    assert sum(c.n + c.errors for c in r.cases) == r.n + r.errors  # every sample belongs to one case


def _hetero(rates):
    def model(text, rng):
        return "yes" if rng.random() < rates[int(text.split()[-1])] else "no"

    return FunctionModel(model, id="hetero")


def test_cases_population_is_the_exact_sequential_test_on_random_cases():
    # Each draw is a uniformly random case, so the outcomes in draw order are Bernoulli(mean
    # rate) and the run stops exactly where the one-sample design stops on them.
    rates = [0.6] * 5 + [1.0] * 5
    run = Session(model=_hetero(rates), seed=3).sample(P, _tickets(10))
    r = run.evaluate(checks.exact(), at_least=0.9)
    d = sequential_design(0.9, 0.1, 0.01, 0.05)
    outcomes = [row["outcome"] == "pass" for row in r.samples]
    assert len(outcomes) == r.n == r.calls
    k = 0
    for n, ok in enumerate(outcomes, 1):
        k += ok
        assert (d.decide(k, n) is not None) == (n == len(outcomes))
    assert r.verdict == d.decide(k, len(outcomes)) and r.population == "cases"


def test_cases_population_keeps_its_false_alarm_rate_with_heterogeneous_cases():
    # Smoke version of benchmarks/calibration.py: 10 cases at rates 0 and 1 averaging exactly
    # the threshold 0.8, the hardest population for a clustered gate.
    from llmops.stats import clopper_pearson

    rates = [0.0, 0.0] + [1.0] * 8
    runs, fails = 400, 0
    for seed in range(runs):
        r = (
            Session(model=_hetero(rates), seed=seed, concurrency=64)
            .sample(P, _tickets(10))
            .evaluate(checks.exact(), at_least=0.8, false_alarm=0.05, tolerance=0.15)
        )
        fails += r.verdict == FAIL
    assert clopper_pearson(fails, runs)[0] <= 0.05  # the empirical rate is not above the stated one


def test_inputs_population_says_before_any_call_when_cases_are_too_few():
    calls = []
    model = FunctionModel(lambda text, rng: calls.append(text) or "yes")
    with pytest.raises(NotDecided, match=r"22 cases are too few.*198 cases are needed") as e:
        Session(model=model, population="inputs").sample(P, _tickets(22)).expect(checks.exact(), at_least=0.9)
    assert calls == [] and "population='cases'" in str(e.value)


def test_inputs_population_samples_each_case_at_most_once_and_decides():
    rates = [0.97] * 250
    r = (
        Session(model=_hetero(rates), seed=1, population="inputs")
        .sample(P, _tickets(250))
        .evaluate(checks.exact(), at_least=0.9)
    )
    assert r.verdict == "PASS" and r.population == "inputs" and "inputs like these" in r.message
    assert max(c.n for c in r.cases) == 1 and r.calls == r.n <= 250


def test_seeded_runs_are_reproducible():
    def go():
        return Session(model=bernoulli_model(0.9), seed=5).sample(P, ONE).evaluate(checks.json_valid(), at_least=0.9)

    a, b = go(), go()
    assert (a.k, a.n, a.verdict) == (b.k, b.n, b.verdict)
    other = Session(model=bernoulli_model(0.9), seed=6).sample(P, ONE).evaluate(checks.json_valid(), at_least=0.9)
    assert [s["output"] for s in other.samples] != [s["output"] for s in a.samples]  # the seed matters


def test_cost_is_reported_when_a_price_is_known():
    class Priced:
        id = "priced"

        async def generate(self, messages, *, seed):
            from llmops.models import Completion

            return Completion("yes", input_tokens=1000, output_tokens=500)

    r = Session(model=Priced(), price="2.0,8.0").sample(P, ONE).evaluate(checks.exact(), at_least=0.9)
    assert r.cost_usd == pytest.approx(r.calls * (1000 * 2.0 + 500 * 8.0) / 1e6)
    assert Session(model=Priced()).sample(P, ONE).evaluate(checks.exact(), at_least=0.9).cost_usd is None
    with pytest.raises(ConfigError, match="USD per million tokens"):
        Session(model=Priced(), price="cheap")
