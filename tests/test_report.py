"""The reports as a user gets them: Markdown (the PR comment), JSON, JUnit, HTML, the terminal.

Sessions run through pytester as a user would run them; the renderers' limits (GitHub's
comment size, hostile model output) are checked on hand-made records.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest

import llmops.report
from llmops.evaluation import CaseCount, Comparison, Result
from llmops.report import html as html_report
from llmops.report import json as json_report
from llmops.report import markdown, status
from llmops.report.terminal import failures, footer

# -- a suite with a regression, run twice: the baseline, then a prompt that is worse ----------

CONFTEST = """
import os
import pytest
from llmops import FunctionModel

def rate_for(text):
    case = int(text.split("#")[1].split(":")[0])
    rate = 0.97 if case % 2 else 0.83
    return rate - (0.3 if "quickly" in text else 0.0)

@pytest.fixture
def llmops_model():
    def model(text, rng):
        return '{"category": "billing"}' if rng.random() < rate_for(text) else "sorry, I can't @team <b>help</b>"
    return FunctionModel(model, id="sim")
"""

SUITE = """
import os
from llmops import Case, Prompt, checks

A = Prompt("triage", os.environ.get("PROMPT_A", "Ticket #{n}: classify it"))
CASES = [Case({"n": i}, id=f"t{i}") for i in range(10)]

def test_a(llmops):
    llmops.sample(A, CASES).expect(checks.json_valid(), at_least=0.5)

def test_b(llmops):
    llmops.sample(A, CASES[:4]).expect(checks.contains("billing"), at_least=0.5)
"""


@pytest.fixture
def regressed(pytester, monkeypatch):
    """A baseline session, then a session whose prompt is 30 points worse: (result, pytester)."""
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_suite=SUITE)
    pytester.runpytest("--llmops-report-json=base.json").assert_outcomes(passed=2)
    monkeypatch.setenv("PROMPT_A", "Ticket #{n}: classify it quickly")
    result = pytester.runpytest(
        "--llmops-baseline=base.json",
        "--llmops-report-json=out/report.json",
        "--llmops-report-md=out/report.md",
        "--llmops-report-html=out/report.html",
        "--junitxml=out/junit.xml",
    )
    result.assert_outcomes(failed=2)
    return result, pytester


def test_markdown_report_leads_with_the_verdict_and_explains_each_regression(regressed):
    result, pytester = regressed
    md = (pytester.path / "out" / "report.md").read_text()
    record = json.loads((pytester.path / "out" / "report.json").read_text())
    first = md.splitlines()[0]
    assert first == "### 📉 llmops: REGRESSED · 2 requirements: 0 PASS, 0 FAIL, 2 REGRESSED, 0 ERROR"
    for r in record["results"]:
        # the regression in one sentence: the comparison's own message, escaped for Markdown
        assert markdown.text(r["comparison"]["message"].removeprefix("REGRESSED ")) in md
        assert f"**{markdown.code(r['test_id'].split('::')[1])}**" in md  # a table per test
    assert "| requirement | k/n | rate | 95% interval | tested | baseline | difference | verdict |" in md
    a = next(r for r in record["results"] if r["test_id"].endswith("test_a"))
    lo, hi = a["comparison"]["interval"]
    row = (
        f"| valid JSON &gt;= 50% | {a['k']}/{a['n']} | {100 * a['rate']:.0f}% | {100 * a['interval'][0]:.0f}-"
        f"{100 * a['interval'][1]:.0f}% | 50% vs 40% | regressed vs {a['comparison']['base_version'][:7]} | "
        f"{100 * a['comparison']['difference']:+.1f}% ({100 * lo:+.1f}% to {100 * hi:+.1f}%) | 📉 REGRESSED |"
    )
    assert row in md
    calls = sum(r["calls"] for r in record["results"])
    replayed = sum(r["replayed"] for r in record["results"])
    assert f"{calls} model calls" in md and f"{replayed} replayed from the cache" in md and "wall time " in md
    # the failing samples are folded, with the model's output fenced: no mention, no markup
    assert md.count("<details>") == md.count("</details>") == 2
    assert "```text\nsorry, I can't @team <b>help</b>\n```" in md
    assert "@team" not in _outside_fences(md)
    result.stdout.fnmatch_lines(["Markdown report written to *report.md", "HTML report written to *report.html"])


def _outside_fences(md: str) -> str:
    return re.sub(r"(`{3,})[a-z]*\n.*?\n\1", "", md, flags=re.DOTALL)


# -- hand-made results: the renderers' edge cases --------------------------------------------


def make_result(**changes) -> Result:
    base = Result(
        prompt="triage",
        prompt_version="9d1f0b7aa1b2",
        model="openai:gpt-4o-mini",
        check="json_valid",
        check_params={},
        description="valid JSON",
        direction="at_least",
        threshold=0.9,
        tolerance=0.1,
        false_alarm=0.01,
        miss=0.05,
        k=45,
        n=50,
        errors=0,
        calls=50,
        rate=0.9,
        interval=(0.79, 0.96),
        bound=0.8,
        verdict="PASS",
        fixed_n=120,
        n_cases=1,
        test_id="tests/test_triage.py::test_format",
        message="valid JSON in 45 of 50 samples, 90%; PASS",
        key="k",
    )
    return dataclasses.replace(base, **changes)


def test_an_undecided_comparison_is_an_error_whatever_the_verdict():
    undecided = Comparison(
        "file base.json", "rerun", "5a4c2e1", "ERROR", -0.02, (-0.1, 0.06), 400, 3, 5, 392, 0.1, 0.01, 0.05
    )
    r = make_result(comparison=dataclasses.replace(undecided, message="ERROR could not decide within 400 pairs"))
    assert status(r) == "ERROR"
    md = markdown.render([r])
    assert md.startswith("### ⚠️ llmops: ERROR · 1 requirement: 0 PASS, 0 FAIL, 1 ERROR")
    assert "- ⚠️ **ERROR** `test_format`: could not decide within 400 pairs" in md


CANDIDATE = {
    "prompt": "triage",
    "test_id": "tests/test_triage.py::test_format",
    "alias": "candidate",
    "registry": "prompts:/triage@candidate",
    "incumbent_version": "9d1f0b7aa1b2",
    "version": "c0ffee0aa1b2",
    "proposer": "revert",
    "message": "reverting the 'quickly' line restores valid JSON",
    "before": "Classify the ticket quickly.\nAnswer in JSON.\n",
    "after": "Classify the ticket.\nAnswer in JSON.\n",
    "held_out": [
        {
            "requirement": "valid JSON >= 90%",
            "candidate": {"k": 57, "n": 60, "rate": 0.95, "interval": [0.86, 0.98]},
            "incumbent": {"k": 41, "n": 60, "rate": 0.6833, "interval": [0.56, 0.79]},
            "difference": 0.2667,
            "difference_interval": [0.15, 0.38],
            "verdict": "better",
        }
    ],
}


def test_markdown_shows_an_optimizer_candidate_as_a_diff_with_held_out_numbers():
    record = {"results": [make_result(verdict="FAIL").to_dict()], "candidates": [CANDIDATE]}
    json_report.validate(json_report.stamp({**_record_fields(), **record}))
    md = markdown.render(record)
    assert "#### 💡 Candidate for `triage`" in md
    assert "Registered as `prompts:/triage@candidate` `9d1f0b7` -> `c0ffee0`, proposed by revert." in md
    assert (
        "```diff\n--- triage@9d1f0b7\n+++ triage@c0ffee0\n@@ -1,2 +1,2 @@\n-Classify the ticket quickly.\n+Classify the ticket.\n"
        in md
    )
    assert (
        "| valid JSON &gt;= 90% | 57/60 95% (86-98%) | 41/60 68% (56-79%) | +26.7% (+15.0% to +38.0%) | better |" in md
    )


def test_a_candidate_that_was_not_registered_says_where_it_is_instead():
    """Tracking off: no registry version exists, so no report may claim one."""
    c = {k: v for k, v in CANDIDATE.items() if k != "registry"} | {"file": ".llmops/candidates/triage.txt"}
    record = {"results": [make_result(verdict="FAIL").to_dict()], "candidates": [c]}
    md, page = markdown.render(record), html_report.render(record)
    assert "Written to `.llmops/candidates/triage.txt` (not registered: tracking is off)" in md
    assert "written to .llmops/candidates/triage.txt (not registered: tracking is off)" in page
    assert "prompts:/triage@candidate" not in md + page


def _record_fields() -> dict:
    return {"session_id": "s", "started": 1, "finished": 2, "settings": {}, "git": {}}


def test_markdown_stays_under_githubs_comment_limit_whatever_the_session():
    hostile = "```\n</details>\n# not a heading\n@org/team <script>alert(1)</script> " + "x" * 5000
    rows = tuple(
        {
            "case_id": f"c{i}",
            "sample": i,
            "prompt_version": "9d1f0b7aa1b2",
            "output": hostile,
            "outcome": "fail",
            "reason": "r " * 300,
        }
        for i in range(200)
    )
    cases = tuple(CaseCount(f"c{i}", 1, 2, 0, "e") for i in range(100))
    results = [
        make_result(
            test_id=f"t.py::test_{j}",
            verdict="FAIL",
            k=1,
            n=200,
            samples=rows,
            cases=cases,
            n_cases=100,
            message="m " * 500,
        )
        for j in range(300)
    ]
    md = markdown.render({"results": [r.to_dict() for r in results], "candidates": [CANDIDATE]})
    assert len(md) <= markdown.DEFAULT_MAX_CHARS < markdown.GITHUB_LIMIT
    assert md.startswith("### ❌ llmops: FAIL · 300 requirements: 0 PASS, 300 FAIL, 0 ERROR")
    assert "Left out to stay under GitHub's comment limit:" in md
    assert md.count("<details>") == md.count("</details>")
    outside = _outside_fences(md)
    assert "<script" not in outside and "@org" not in outside and "\n# not" not in outside
    assert len(markdown.render([results[0]], max_chars=10**6)) <= markdown.GITHUB_LIMIT


# -- JSON: versioned, strict, documented --------------------------------------------------------


def test_json_report_is_versioned_strict_and_valid_against_its_schema(regressed):
    from jsonschema import Draft202012Validator

    _, pytester = regressed
    text = (pytester.path / "out" / "report.json").read_text()
    record = json.loads(text, parse_constant=lambda c: pytest.fail(f"not strict JSON: {c}"))
    assert record["schema_version"] == json_report.SCHEMA_VERSION == llmops.report.SCHEMA_VERSION
    Draft202012Validator.check_schema(json_report.SCHEMA)
    Draft202012Validator(json_report.SCHEMA).validate(record)
    # no sample: the rate is null, not NaN
    empty = make_result(k=0, n=0, rate=float("nan"), interval=(float("nan"), float("nan")), verdict="ERROR")
    dumped = json_report.dumps({**_record_fields(), "results": [empty.to_dict()]})
    assert json.loads(dumped)["results"][0]["rate"] is None
    json_report.validate(json.loads(dumped))


def test_every_field_is_documented_and_the_doc_is_generated_from_the_schema():
    props = json_report.SCHEMA["properties"]["results"]["items"]["properties"]
    assert {f.name for f in dataclasses.fields(Result)} <= set(props)
    assert {f.name for f in dataclasses.fields(Comparison)} <= set(props["comparison"]["properties"])
    assert {f.name for f in dataclasses.fields(CaseCount)} <= set(props["cases"]["items"]["properties"])
    doc = Path(__file__).parent.parent / "docs" / "report-schema.md"
    assert doc.read_text() == json_report.schema_markdown(), (
        "regenerate: python -m llmops.report.json > docs/report-schema.md"
    )


# -- JUnit: the numbers as properties, ERROR apart from FAIL -----------------------------------


JUNIT_SUITE = """
import pytest
from llmops import Case, FunctionModel, Prompt, checks

@pytest.fixture
def llmops_model():
    return FunctionModel(lambda text, rng: '{"ok": true, "secret_output": 1}' if rng.random() < 0.9 else "no", id="sim")

def test_pass(llmops):
    llmops.sample(Prompt("p", "{x}"), Case({"x": 1})).expect(checks.json_valid(), at_least=0.8)

def test_fail(llmops):
    llmops.sample(Prompt("p", "{x}"), Case({"x": 1})).expect(checks.json_valid(), at_least=0.99, tolerance=0.05)

def test_too_few_cases(llmops):
    cases = [Case({"x": i}) for i in range(10)]
    llmops.sample(Prompt("p", "{x}"), cases).expect(checks.json_valid(), at_least=0.9, population="inputs")
"""


def _junit(path: Path) -> tuple[ET.Element, dict[str, ET.Element]]:
    root = ET.parse(path).getroot()
    return root, {case.get("name"): case for case in root.iter("testcase")}


def _props(case: ET.Element) -> dict[str, str]:
    return {p.get("name"): p.get("value") for p in case.iter("property")}


def test_junit_carries_each_requirements_numbers_and_keeps_error_apart_from_failure(pytester):
    pytester.makepyfile(test_junit=JUNIT_SUITE)
    result = pytester.runpytest("--junitxml=junit.xml", "--llmops-report-md=report.md")
    result.assert_outcomes(passed=1, failed=1, errors=1)
    text = (pytester.path / "junit.xml").read_text()
    assert "llmops_result" not in text and "secret_output" not in text  # no blob, no sample rows
    root, cases = _junit(pytester.path / "junit.xml")
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    assert (suite.get("failures"), suite.get("errors")) == ("1", "1")
    props = _props(cases["test_pass"])
    assert props["llmops.1.requirement"] == "valid JSON >= 80%"
    assert props["llmops.1.verdict"] == "PASS"
    assert props["llmops.1.tested"] == "0.8,0.7"
    n, k = int(props["llmops.1.n"]), int(props["llmops.1.k"])
    assert n > 0 and float(props["llmops.1.rate"]) == pytest.approx(k / n, abs=1e-3)
    lo, hi = (float(x) for x in props["llmops.1.interval"].split(","))
    assert lo < k / n < hi and int(props["llmops.1.calls"]) == n
    assert _props(cases["test_fail"])["llmops.1.verdict"] == "FAIL"
    assert cases["test_fail"].find("failure") is not None and cases["test_fail"].find("error") is None
    assert cases["test_too_few_cases"].find("error") is not None and cases["test_too_few_cases"].find("failure") is None
    assert _props(cases["test_too_few_cases"])["llmops.error"] == "NotDecided"
    # the error happened before any verdict; the PR comment still says so
    md = (pytester.path / "report.md").read_text()
    assert (
        md.splitlines()[0]
        == "### ❌ llmops: FAIL · 2 requirements: 1 PASS, 1 FAIL, 0 ERROR, 1 test ERROR before a verdict"
    )
    assert "- ⚠️ **ERROR** `test_too_few_cases`: NotDecided: p: population 'inputs'" in md


def test_junit_properties_survive_xdist(pytester):
    pytester.makepyfile(test_junit=JUNIT_SUITE)
    result = pytester.runpytest_subprocess("-n", "2", "--junitxml=junit.xml")
    result.assert_outcomes(passed=1, failed=1, errors=1)
    _, cases = _junit(pytester.path / "junit.xml")
    assert _props(cases["test_pass"])["llmops.1.verdict"] == "PASS"
    assert cases["test_too_few_cases"].find("error") is not None
    assert "llmops_result" not in (pytester.path / "junit.xml").read_text()


# -- HTML: self-contained, escaped, looked at in a real browser --------------------------------

PAYLOADS = [
    "<script>document.title='PWNED-script'</script>",
    "<img src=x onerror=\"document.title='PWNED-img'\">",
    "\"><svg onload=\"document.body.setAttribute('data-pwned','1')\">",
    '<b>bold?</b> & <a href="https://evil.example/">link</a>',
]

HOSTILE_SUITE = f"""
import pytest
from llmops import Case, FunctionModel, Prompt, checks

PAYLOADS = {PAYLOADS!r}

@pytest.fixture
def llmops_model():
    return FunctionModel(lambda text, rng: PAYLOADS[int(rng.random() * 4)] if rng.random() < 0.5 else '{{"ok": 1}}', id="sim")

def test_hostile(llmops):
    cases = [Case({{"x": i}}, id=f"<i>case{{i}}</i>") for i in range(3)]
    llmops.sample(Prompt("p", "{{x}}"), cases).expect(checks.json_valid(), at_least=0.9)
"""


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.handlers: list[str] = []
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.handlers += [k for k, _ in attrs if k.startswith("on")]
        self.urls += [v for k, v in attrs if k in ("src", "href") and v and not v.startswith("#")]


def _chromium() -> str | None:
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


def _browser(path: Path, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    chromium = _chromium()
    assert chromium is not None
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp / 'profile'}",
    ]
    return subprocess.run([chromium, *flags, *args, path.as_uri()], capture_output=True, text=True, timeout=120)


def test_html_report_shows_hostile_outputs_as_text_and_runs_nothing(pytester, tmp_path):
    pytester.makepyfile(test_hostile=HOSTILE_SUITE)
    result = pytester.runpytest("--llmops-report-html=report.html")
    result.assert_outcomes(failed=1)
    page = (pytester.path / "report.html").read_text()
    tags = _Tags()
    tags.feed(page)
    assert not {"script", "img", "iframe", "b"} & set(tags.tags)
    assert tags.handlers == [] and tags.urls == []  # no event handler, no request, whatever the model wrote
    assert html_report.esc(PAYLOADS[0]) in page and "&lt;i&gt;case0&lt;/i&gt;" in page
    assert "<svg" in page and "required 90%" in page  # the interval plot, inline

    if _chromium() is None:
        pytest.skip("chromium is not installed (Debian package chromium; `make test` installs it)")
    # Escaping alone must hold: load the page without its Content-Security-Policy too.
    bare = pytester.path / "bare.html"
    bare.write_text(re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", page))
    for path in (pytester.path / "report.html", bare):
        dom = _browser(path, tmp_path, "--dump-dom").stdout
        assert "<title>llmops report: FAIL</title>" in dom, dom[:500]
        assert "PWNED" not in re.search(r"<title>.*?</title>", dom).group(0)
        assert "data-pwned" not in re.search(r"<body[^>]*>", dom).group(0) and "<script" not in dom
    shots = Path(os.environ.get("LLMOPS_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    shot = shots / "report.png"
    _browser(pytester.path / "report.html", tmp_path, f"--screenshot={shot}", "--window-size=1400,1000")
    assert shot.stat().st_size > 10_000


# -- the terminal ---------------------------------------------------------------------------

TERMINAL_SUITE = """
import pytest
from pydantic import BaseModel
from llmops import Case, FunctionModel, Prompt, check, checks

class Triage(BaseModel):
    category: str

LONG = "the answer names no category; " * 8 + "END-OF-REASON"

@check(description="names a category")
def names_category():
    return lambda output: (False, LONG) if "category" not in output else True

@pytest.fixture
def llmops_model():
    return FunctionModel(lambda text, rng: '{"category": "billing"}' if rng.random() < 0.6 else "UNSTRUCTURED-OUTPUT", id="sim")

def test_schema(llmops):
    llmops.sample(Prompt("p", "{x}"), Case({"x": 1})).expect(checks.pydantic_model(Triage), at_least=0.5)

def test_reason(llmops):
    llmops.sample(Prompt("p", "{x}"), Case({"x": 1})).expect(names_category(), at_least=0.95)
"""


def test_verbose_summary_shows_failing_outputs_with_full_reasons(pytester):
    pytester.makepyfile(test_terminal=TERMINAL_SUITE)
    result = pytester.runpytest("-v")
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    result.stdout.fnmatch_lines(["test_schema*JSON matching Triage >= 50%*PASS*"])  # the class's name, not its repr
    result.stdout.fnmatch_lines(
        [
            "FAIL test_reason: names a category >= 95%",
            "  names a category in * of * samples*FAIL*",
            "  - case * sample *: fail: the answer names no category; * END-OF-REASON",
            "      | UNSTRUCTURED-OUTPUT",
        ]
    )
    assert "JSON parsing as" not in out
    result.stdout.fnmatch_lines(["wall time *s; model latency p50 *, p95 * (slowest requirement)"])
    assert "0 samples replayed from the cache" in out
    assert "UNSTRUCTURED-OUTPUT" not in pytester.runpytest().stdout.str().split("llmops summary")[1]


LIVE_CONFTEST = """
import pytest
from live_state import SEEN_AT_FIRST_CALL, WRITES
from llmops import FunctionModel

@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    tr = config.pluginmanager.get_plugin("terminalreporter")
    tr.isatty = lambda: True  # as on a developer's terminal
    write = tr.write
    def recording(text, **kw):
        WRITES.append(text)
        write(text, **kw)
    tr.write = recording

@pytest.fixture
def llmops_model():
    def model(text, rng):
        if not SEEN_AT_FIRST_CALL:
            SEEN_AT_FIRST_CALL.append(list(WRITES))
        return "yes"
    return FunctionModel(model, id="sim")
"""

LIVE_SUITE = """
from live_state import SEEN_AT_FIRST_CALL, WRITES
from llmops import Case, Prompt, checks

def test_live(llmops):
    llmops.sample(Prompt("p", "{x}"), Case({"x": 1})).expect(checks.contains("yes"), at_least=0.9)
    assert any("llmops: test_live: sampling... 0 samples drawn" in w for w in SEEN_AT_FIRST_CALL[0])
    assert any(" samples drawn" in w and "sampling... 0 " not in w for w in WRITES)  # it moved on
"""


def test_live_line_appears_before_the_first_call_returns_and_updates(pytester):
    pytester.makepyfile(live_state="WRITES = []\nSEEN_AT_FIRST_CALL = []\n")
    pytester.makeconftest(LIVE_CONFTEST)
    pytester.makepyfile(test_live=LIVE_SUITE)
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_footer_and_failures_read_from_records_too():
    r = make_result(verdict="FAIL", latency_p50=0.4, latency_p95=1.25, replayed=7, message="x " * 200)
    text = footer([r.to_dict()], wall_time=150.0)
    assert "7 samples replayed from the cache" in text and "wall time 2m30s" in text and "p95 1.2s" in text
    assert failures([r]).splitlines()[1].strip() == r.message.strip()  # never cut


def test_public_names():
    for name in llmops.report.__all__:
        assert hasattr(llmops.report, name), name
