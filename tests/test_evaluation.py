import pytest
from conftest import bernoulli_model
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.runnables import RunnableLambda

from llmops import Case, FunctionModel, Prompt, Session, checks
from llmops.errors import CheckError, ConfigError, ErrorBudgetExceeded, RequirementFailed
from llmops.stats import FAIL, sequential_design
from llmops.stats.clustered import clustered_design

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
        outcomes = [checks.json_valid()(s.output, ONE).passed for s in run.samples["only"]]
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
    # Not first.calls + second.calls: the second requirement walked the samples already drawn.
    assert run.calls == max(first.calls, second.calls) < first.calls + second.calls


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
    assert r.n_cases == 20 and "over 20 cases" in r.message and "Worst cases: t" in r.message
    assert {c.case_id for c in r.cases[:6]} == {f"t{i}" for i in range(6)}
    assert r.calls % 20 == 0  # whole rounds across the cases


def test_dataset_level_false_alarm_rate_holds_with_heterogeneous_cases():
    # Known truth: 40 cases whose per-case rates average exactly the threshold 0.8.
    rates = [0.6] * 10 + [0.8] * 20 + [1.0] * 10
    cases = _tickets(len(rates))

    def model(text, rng):
        return "yes" if rng.random() < rates[int(text.split()[-1])] else "no"

    runs, fails = 150, 0
    for seed in range(runs):
        r = (
            Session(model=FunctionModel(model), seed=seed, max_samples=240)
            .sample(P, cases)
            .evaluate(checks.exact(), at_least=0.8, false_alarm=0.05)
        )
        fails += r.verdict == FAIL and r.conclusive
    # P(>= 15 fails | 150 runs, rate 0.05) < 0.5%: fails at that level mean the bound is wrong.
    assert fails < 15


def test_clustered_design_is_sized_from_the_sequential_cap():
    d = clustered_design(0.9, 0.1, 0.01, 0.05, 20)
    assert d.looks == (1, 2, 4, 8, 10) and d.max_calls == 200  # at most 10 samples per case
    assert clustered_design(0.9, 0.1, 0.01, 0.05, 100).max_rounds == 3  # ~1.5x fixed N in all
    assert clustered_design(0.9, 0.1, 0.01, 0.05, 20, max_samples=400).max_rounds == 20


def test_seeded_runs_are_reproducible():
    def go():
        return Session(model=bernoulli_model(0.9), seed=5).sample(P, ONE).evaluate(checks.json_valid(), at_least=0.9)

    a, b = go(), go()
    assert (a.k, a.n, a.verdict) == (b.k, b.n, b.verdict)
    other = Session(model=bernoulli_model(0.9), seed=6).sample(P, ONE).evaluate(checks.json_valid(), at_least=0.9)
    assert [s["output"] for s in other.samples] != [s["output"] for s in a.samples]  # the seed matters


def test_baseline_comparison_counts_use_a_fixed_number_of_samples_per_case():
    # Counts cut where the sequential test stopped would be biased by its stopping rule.
    run = Session(model=bernoulli_model(0.2), promote="baseline", compare_samples=40).sample(P, _tickets(5))
    r = run.evaluate(checks.json_valid(), at_least=0.9)
    assert r.verdict == FAIL and r.calls < 40  # decided after a round or two
    assert [c.n for c in r.paired] == [8] * 5 and r.compare_calls == 40 - r.calls
    assert len(r.samples) == 40  # every drawn sample is in the table
    plain = Session(model=bernoulli_model(0.2)).sample(P, _tickets(5)).evaluate(checks.json_valid(), at_least=0.9)
    assert plain.paired == () and plain.compare_calls == 0


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
