"""The plugin as a user sees it, through pytester."""

import pytest

CONFTEST = """
import pytest
from llmops import FunctionModel

@pytest.fixture
def llmops_model():
    return FunctionModel(lambda text, rng: '{"category": "billing"}' if rng.random() < 0.97 else "no")
"""

SUITE = """
import pytest
from llmops import Case, Prompt, checks

P = Prompt("triage", "Ticket: {ticket}")
C = Case({"ticket": "refund please"}, id="refund")

def test_format_passes(llmops):
    llmops.sample(P, C).expect(checks.json_valid(), at_least=0.9)

def test_strict_requirement_fails(llmops):
    llmops.sample(P, C).expect(checks.json_valid(), at_least=0.999, tolerance=0.02)
"""


@pytest.fixture
def suite(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_suite=SUITE)
    return pytester


def test_help_lists_the_options(pytester):
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(
        [
            "*llmops: statistical prompt tests*",
            "*--llmops-model=*",
            "*--llmops-tolerance=*",
            "*--llmops-false-alarm=*",
            "*llmops_miss*",
        ]
    )


def test_passing_and_failing_suite_with_summary(suite):
    result = suite.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*RequirementFailed: valid JSON in * of * samples, *%, 95% interval *; requirement at least 99.9%, tested 99.9% against 97.9%; FAIL with false-alarm rate <= 1%*",
            "*llmops summary*",
            "test*prompt*requirement*tested*k/n*rate*95% CI*verdict*vs baseline*new calls*saved vs fixed-N",
            "test_format_passes*triage@*valid JSON >= 90%*PASS*",
            "test_strict_requirement_fails*FAIL*",
            "2 requirements: 1 PASS, 1 FAIL, 0 ERROR; * model calls*",
        ]
    )


def test_quiet_keeps_only_the_footer(suite):
    result = suite.runpytest("-q")
    assert "requirements: 1 PASS, 1 FAIL" in result.stdout.str()
    assert "saved vs fixed-N" not in result.stdout.str()


def test_broken_schema_is_an_error_naming_the_problem(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(
        """
        from llmops import Case, Prompt, checks
        def test_schema(llmops):
            run = llmops.sample(Prompt("p", "{x}"), Case({"x": 1}))
            run.expect(checks.json_schema({"type": "objekt"}), at_least=0.9)
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*CheckError: json_schema: invalid JSON Schema at type*"])


def test_missing_prompt_variable_is_an_error(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(
        """
        from llmops import Case, Prompt
        def test_vars(llmops):
            llmops.sample(Prompt("triage", "Ticket: {ticket}"), Case({"body": "x"}, id="c7"))
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*prompt 'triage' needs variable 'ticket', which case 'c7' does not supply*"])


def test_unknown_marker_keyword_is_rejected_by_name(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(
        """
        import pytest
        @pytest.mark.llmops(tolerence=0.05)
        def test_x(llmops):
            pass
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*@pytest.mark.llmops on test_x: unknown keyword 'tolerence'; valid keywords:*tolerance*"]
    )


def test_marker_and_ini_settings_apply(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makeini("[pytest]\nllmops_false_alarm = 0.05\n")
    pytester.makepyfile(
        """
        import pytest
        from llmops import Case, Prompt, checks
        @pytest.mark.llmops(tolerance=0.05)
        def test_x(llmops):
            r = llmops.sample(Prompt("p", "{x}"), Case({"x": 1})).expect(checks.json_valid(), at_least=0.9)
            assert (r.tolerance, r.false_alarm) == (0.05, 0.05)
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_bad_option_values_are_rejected_quoting_the_value(pytester):
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest("--llmops-false-alarm=0.7")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--llmops-false-alarm*expected a rate in (0, 0.5), got '0.7'*"])
    pytester.makeini("[pytest]\nllmops_concurrency = lots\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*concurrency: expected a int, got 'lots'*"])


def test_no_model_configured_says_how_to_configure_one(pytester):
    pytester.makepyfile(
        """
        from llmops import Case, Prompt, checks
        def test_x(llmops):
            llmops.sample(Prompt("p", "{x}"), Case({"x": 1})).expect(checks.json_valid(), at_least=0.9)
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*no model configured: pass --llmops-model*"])


def test_error_budget_is_a_pytest_error(pytester):
    pytester.makepyfile(
        """
        import pytest
        from llmops import Case, FunctionModel, Prompt, checks

        def down(text, rng):
            raise ConnectionError("503 from upstream")

        @pytest.fixture
        def llmops_model():
            return FunctionModel(down)

        @pytest.mark.llmops(retries=0)
        def test_x(llmops):
            llmops.sample(Prompt("p", "{x}"), Case({"x": 1})).expect(checks.json_valid(), at_least=0.9)
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*ErrorBudgetExceeded*error budget 10%; no verdict. First model error: ConnectionError: 503 from upstream*"]
    )


def test_results_survive_xdist(suite):
    suite.makepyfile(
        test_more=SUITE.replace("test_format_passes", "test_other_format").replace(
            "test_strict_requirement_fails", "test_other_strict"
        )
    )
    result = suite.runpytest_subprocess("-n", "2")
    result.assert_outcomes(passed=2, failed=2)
    out = result.stdout.str()
    assert "4 requirements: 2 PASS, 2 FAIL, 0 ERROR" in out
    for name in ("test_format_passes", "test_strict_requirement_fails", "test_other_format", "test_other_strict"):
        assert sum(line.startswith(name) for line in out.splitlines()) == 1, name


def test_progress_prints_a_line_per_verdict_and_is_quiet_under_q(suite):
    out = suite.runpytest().stdout.str()
    assert "llmops: test_format_passes: valid JSON -> PASS (" in out and " new calls;" in out
    assert "verdicts so far: 1 FAIL, 1 PASS" in out
    assert "llmops: test_format_passes" not in suite.runpytest("-q").stdout.str()


def test_settings_precedence_command_line_then_keywords_then_marker_then_fixture(pytester, monkeypatch):
    # Nothing is silently ignored: a marker's model (a string or a model object) wins over an
    # overridden llmops_model fixture, and the command line wins over everything.
    import json

    monkeypatch.setenv("OPENAI_API_KEY", "sk-dummy-not-used-by-a-plan")
    pytester.makeini("[pytest]\nllmops_tolerance = 0.2\n")
    pytester.makeconftest(
        """
import pytest
from llmops import FunctionModel

@pytest.fixture
def llmops_model():
    return FunctionModel(lambda text, rng: "yes", id="from-fixture")
"""
    )
    pytester.makepyfile(
        """
import pytest
from llmops import Case, FunctionModel, Prompt, checks

P, C = Prompt("p", "{x}"), Case({"x": 1}, expected="yes")

def test_fixture(llmops):
    llmops.sample(P, C).expect(checks.exact(), at_least=0.9)

@pytest.mark.llmops(model=FunctionModel(lambda text, rng: "yes", id="from-marker-object"), tolerance=0.05)
def test_marker_object(llmops):
    llmops.sample(P, C).expect(checks.exact(), at_least=0.9)

@pytest.mark.llmops(tolerance=0.05)
def test_keyword(llmops):
    llmops.sample(P, C).expect(checks.exact(), at_least=0.9, tolerance=0.08)
"""
    )
    plain = pytester.runpytest("--llmops-plan=on", "--llmops-report-json=a.json")
    plain.assert_outcomes(passed=3)
    got = {r["test_id"].split("::")[1]: r for r in json.loads((pytester.path / "a.json").read_text())["results"]}
    assert got["test_fixture"]["model"] == "from-fixture" and got["test_fixture"]["tolerance"] == 0.2  # ini
    assert got["test_marker_object"]["model"] == "from-marker-object" and got["test_marker_object"]["tolerance"] == 0.05
    assert got["test_keyword"]["tolerance"] == 0.08  # expect() over the marker
    pinned = pytester.runpytest(
        "--llmops-plan=on", "--llmops-report-json=b.json", "--llmops-model=openai:gpt-test", "--llmops-tolerance=0.03"
    )
    pinned.assert_outcomes(passed=3)
    for r in json.loads((pytester.path / "b.json").read_text())["results"]:
        assert (r["model"], r["tolerance"]) == ("openai:gpt-test", 0.03), r["test_id"]


FROZEN_SUITE = """
import gc
from llmops import Case, Prompt, checks

P = Prompt("triage", "Ticket: {ticket}")


class Holder:
    def __del__(self):
        raise RuntimeError("finalizer of a cycle made before the first llmops test ran")


held = {"cycle": Holder()}
held["cycle"].me = held["cycle"]  # alive when the heap is frozen, garbage after test_b


def test_a_before(counts):
    counts.append(gc.get_freeze_count())


def test_b_llmops(llmops, counts):
    counts.append(gc.get_freeze_count())
    llmops.sample(P, Case({"ticket": "refund"})).expect(checks.json_valid(), at_least=0.9)
    held.clear()


def test_c_after(counts):
    counts.append(gc.get_freeze_count())
    print("freeze counts", counts)
"""


def test_the_heap_is_frozen_from_the_first_llmops_test_and_garbage_is_still_reported(pytester):
    """The outermost session freezes the heap when its first llmops test is set up; a cycle that
    was alive then and became garbage is still collected, and its finalizer's error reported
    by pytest, when the session ends."""
    pytester.makeconftest(CONFTEST + "\n@pytest.fixture(scope='session')\ndef counts():\n    return []\n")
    pytester.makepyfile(test_frozen=FROZEN_SUITE)
    result = pytester.runpytest_subprocess("-s", "-p", "no:randomly", "-W", "default")
    result.assert_outcomes(passed=3)
    (line,) = [line for line in result.outlines if "freeze counts [" in line]
    counts = [int(x) for x in line.split("[")[1].rstrip("]").split(",")]
    assert counts[0] == 0 and counts[1] > 10_000 and counts[2] > 10_000
    result.stderr.fnmatch_lines(
        [
            "*PytestUnraisableExceptionWarning: Exception ignored in: <function Holder.__del__*",
            "RuntimeError: finalizer of a cycle made before the first llmops test ran",
        ]
    )


def test_a_session_inside_another_leaves_the_heap_as_it_is(suite):
    """pytester's in-process runs (and any pytest.main inside a session) never freeze."""
    import gc

    before = gc.get_freeze_count()
    suite.runpytest_inprocess().assert_outcomes(passed=1, failed=1)
    assert gc.get_freeze_count() == before
