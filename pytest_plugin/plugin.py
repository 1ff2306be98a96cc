"""The llmops pytest plugin: options, marker, fixtures, report hooks and the terminal summary.

Thin on purpose: statistics, checks and sampling live in ``llmops``; this module only turns
pytest's configuration into one ``llmops.Settings`` and carries results to the summary.
Results ride on each test report (``user_properties``) so they survive pytest-xdist.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from llmops.config import OPTIONS, Settings
from llmops.errors import ConfigError

RESULT_PROPERTY = "llmops_result"
SAMPLES_REF = "samples_ref"  # llmops.tracking.samples.REF: where a result's sample rows are on disk
CANDIDATE_PROPERTY = "llmops_candidate"
ERROR_PROPERTY = "llmops_error"

settings_key = pytest.StashKey[Settings]()
baseline_key = pytest.StashKey[Any]()
budget_key = pytest.StashKey[Any]()
pinned_key = pytest.StashKey[dict[str, Any]]()
breaker_key = pytest.StashKey[Any]()
limit_key = pytest.StashKey[Any]()
tables_key = pytest.StashKey[Any]()
samples_dir_key = pytest.StashKey[str]()  # this session's sample-table folder (an inner pytester session has its own)
family_key = pytest.StashKey[float | None]()
item_results_key = pytest.StashKey[list[Any]]()
item_candidates_key = pytest.StashKey[list[Any]]()
item_error_key = pytest.StashKey[str]()  # the llmops error a test raised, for its JUnit testcase
ahead_key = pytest.StashKey[Any]()  # --llmops-prefetch: the samples each test's two runs share
looking_key = pytest.StashKey[bool]()  # the look-ahead pass is running: the fixture records, decides later
frozen_key = pytest.StashKey[bool]()  # this session froze the heap (_freeze_heap)
TEST_ERROR_PROPERTY = "llmops_test_error"  # an llmops ERROR before any verdict, for the reports


def _flag(name: str) -> str:
    return "--llmops-" + name.replace("_", "-")


def _argparse_type(parse: Callable[[Any], Any]) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ConfigError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    return convert


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("llmops", "llmops: statistical prompt tests")
    for name, option in OPTIONS.items():
        group.addoption(
            _flag(name), dest=f"llmops_{name}", type=_argparse_type(option.parse), default=None, help=option.help
        )
        parser.addini(f"llmops_{name}", option.help)


_sessions: list[pytest.Config] = []  # the pytest sessions configured in this process, outermost first


def pytest_configure(config: pytest.Config) -> None:
    _sessions.append(config)
    config.addinivalue_line(
        "markers",
        "llmops(**settings): per-test llmops settings, e.g. tolerance=0.05, max_samples=300, model='openai:gpt-4o-mini'",
    )
    values: dict[str, Any] = {}
    pinned: dict[str, Any] = {}  # given on the command line: the person running pytest has the last word
    if os.environ.get("LLMOPS_TRACKING"):
        values["tracking"] = os.environ["LLMOPS_TRACKING"]
    for name in OPTIONS:
        ini = config.getini(f"llmops_{name}")
        if ini not in (None, "", []):
            values[name] = ini
        cli = config.getoption(f"llmops_{name}")
        if cli is not None:
            values[name] = pinned[name] = cli
    config.stash[pinned_key] = {k: v for k, v in pinned.items() if not OPTIONS[k].session}
    try:
        settings = Settings().replace("llmops options", session=True, **values)
    except ConfigError as e:
        raise pytest.UsageError(f"llmops: ini {e}") from None
    # The response cache: one file per project, shared by xdist workers; a relative path is from
    # where pytest runs, fixed now so that a test that changes directory does not move it.
    cache_path = config.invocation_params.dir / (settings.cache_path or config.rootpath / ".llmops" / "cache.sqlite")
    settings = settings.replace(session=True, cache_path=str(cache_path))
    config.stash[settings_key] = settings
    config.stash[family_key] = None
    # The session's sample tables, in a temporary folder that xdist workers inherit.
    own = os.path.join(tempfile.gettempdir(), f"llmops-samples-{os.getpid()}-{id(config)}")
    if not hasattr(config, "workerinput"):
        os.environ["LLMOPS_SAMPLES_DIR"] = own
    config.stash[samples_dir_key] = os.environ.get("LLMOPS_SAMPLES_DIR") or own
    # The baseline is loaded once per process (each xdist worker too), before any test runs:
    # a wrong alias or an unreachable server is a usage error, not a session of wasted calls.
    config.stash[baseline_key] = None
    config.stash[budget_key] = None
    if settings.budget is not None:
        # One budget for the whole session: the controller names a file that xdist workers
        # (started after this, with this environment) share under a lock.
        from llmops.costs import budget_from

        if not hasattr(config, "workerinput"):
            import uuid

            path = config.rootpath / ".llmops" / "budget" / f"{uuid.uuid4().hex}.json"
            os.environ["LLMOPS_BUDGET_FILE"] = str(path)
        config.stash[budget_key] = budget_from(settings.budget)
    if settings.baseline and not config.option.help and not getattr(config.option, "collectonly", False):
        from llmops.baseline import load_baseline
        from llmops.errors import LlmopsError

        try:
            config.stash[baseline_key] = load_baseline(settings.baseline, settings.tracking_uri, settings.experiment)
        except LlmopsError as e:
            raise pytest.UsageError(f"llmops: --llmops-baseline {settings.baseline}: {e}") from None
    config.pluginmanager.register(Collector(config), "llmops-collector")
    _sigterm_as_ctrl_c(config)


def _sigterm_as_ctrl_c(config: pytest.Config) -> None:
    """SIGTERM (a cancelled CI job, a killed container) stops the session as Ctrl-C does, so the
    reports, the response cache and the MLflow spool are finished, not cut off mid-write."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:  # someone else handles it
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt("SIGTERM")

    signal.signal(signal.SIGTERM, interrupt)
    config.add_cleanup(lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With a family false-alarm rate, each llmops test gets an equal share (Bonferroni)."""
    family = config.stash[settings_key].family_false_alarm
    if family is not None:
        tests = sum(1 for item in items if "llmops" in getattr(item, "fixturenames", ()))
        config.stash[family_key] = family / max(1, tests)


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> None:
    """--llmops-prefetch: before the tests run, run each llmops test once to record its requirements.

    Each body runs with a session whose ``expect()`` records (no verdict, no report, the test's
    output discarded); the recorded requirements are then decided in background threads,
    side by side under the session's limit on calls in flight, and the tests, run next by
    pytest as usual, take the samples drawn for them (``llmops.ahead``).  Not under
    pytest-xdist (workers already run tests side by side), --pdb or --llmops-plan.
    """
    config = session.config
    settings = config.stash[settings_key]
    xdist = getattr(config.option, "numprocesses", None) or getattr(config.option, "dist", "no") != "no"
    if not settings.prefetch or settings.plan or xdist or hasattr(config, "workerinput"):
        return
    if config.option.collectonly or config.getoption("usepdb", False) or session.testsfailed:
        return
    items = [item for item in session.items if "llmops" in getattr(item, "fixturenames", ())]
    if not items:
        return
    from _pytest.runner import runtestprotocol

    from llmops.ahead import Ahead

    config.stash[ahead_key] = Ahead()
    config.stash[looking_key] = True
    try:
        for j, item in enumerate(items):
            # The last one keeps the fixtures the first test needs (the session's model, say).
            runtestprotocol(item, log=False, nextitem=items[j + 1] if j + 1 < len(items) else session.items[0])
            item._report_sections.clear()  # its captured output is not the test's
            for key in (item_results_key, item_error_key, item_candidates_key):
                if key in item.stash:
                    del item.stash[key]
    finally:
        config.stash[looking_key] = False


def _settings_for(request: pytest.FixtureRequest) -> tuple[Settings, Any]:
    """Settings for a test, and the model its marker names (a string or a model object), if any.

    Precedence, highest first: the command line (whoever runs pytest has the last word,
    e.g. ``--llmops-model`` retargets a whole suite), keywords of ``sample()``/``expect()``,
    the marker (the nearest one wins), then the ``llmops_model`` fixture (overridden in a
    conftest.py or not) and ini, then the built-in defaults.  Nothing is silently ignored.
    """
    settings = request.config.stash[settings_key]
    model: Any = None
    for marker in reversed(list(request.node.iter_markers("llmops"))):
        where = f"@pytest.mark.llmops on {request.node.name}"
        if marker.args:
            raise ConfigError(f"{where}: takes keywords only, got positional {marker.args!r}")
        kwargs = dict(marker.kwargs)
        if "model" in kwargs:
            model = kwargs.pop("model")  # kept as given: a model object stays an object
        settings = settings.replace(where, **kwargs)
    pinned = request.config.stash[pinned_key]
    if pinned:
        settings = settings.replace("command line", **pinned)
    if "model" in pinned:
        model = pinned["model"]
    return settings, model


@pytest.fixture
def llmops_model(request: pytest.FixtureRequest) -> Any:
    """The model under test; override in conftest.py to return any LangChain model or callable.

    The default is the model named by ``--llmops-model`` or ini ``llmops_model``; a marker's
    ``model=`` wins over this fixture, overridden or not.
    """
    return request.config.stash[settings_key].model


@pytest.fixture
def llmops(request: pytest.FixtureRequest, llmops_model: Any) -> Iterator[Any]:
    """A ``llmops.Session`` for this test: ``llmops.sample(prompt, cases).expect(check, at_least=...)``."""
    from llmops.session import Session

    results: list[Any] = []  # (the Result without its sample rows, the reference of its rows on disk)
    request.node.stash[item_results_key] = results
    progress: Collector = request.config.pluginmanager.get_plugin("llmops-collector")
    tables = _tables(request.config)

    def on_result(result: Any) -> None:
        ref = tables.put(list(result.samples)) if result.samples else ""
        results.append((dataclasses.replace(result, samples=()), ref))
        progress.verdict(result)

    settings, marker_model = _settings_for(request)
    progress.tracking_soon()
    looking = request.config.stash.get(looking_key, False)
    ahead = request.config.stash.get(ahead_key, None)
    session = Session(
        model=marker_model if marker_model is not None else llmops_model,
        settings=settings,
        test_id=request.node.nodeid,
        on_result=None if looking else on_result,
        on_draw=None if looking else progress.drawn,
        baseline=request.config.stash[baseline_key],
        budget=request.config.stash[budget_key],
        pinned=request.config.stash[pinned_key],
        breaker=_breaker(request.config),
        limit=_limit(request.config),
        family_share=request.config.stash[family_key],
        ahead=ahead,
        looking_ahead=looking,
    )
    _freeze_heap(request.config)
    yield session
    if looking:  # the look-ahead pass: decide what the body recorded, in the background
        ahead.start(request.node.nodeid, [run.look_ahead for run in session.runs if run.recorded])
        return
    if ahead is not None:
        ahead.close(request.node.nodeid)  # its look-ahead stops; what it drew and the test did not take is counted
    if settings.optimize != "off" and not settings.plan:
        _optimize(request, session, settings)


def _freeze_heap(config: pytest.Config) -> None:
    """When the first llmops test of the process's outermost session is set up: collect
    garbage, then move every object alive into the garbage collector's permanent generation
    (``gc.freeze()``), which full collections do not walk.

    By then the process holds pytest, its plugins, LangChain and llmops: some 200,000 objects,
    nearly all alive until exit. Each full collection walked them all (about 100 ms on the
    benchmark machine): twice while a 1000-sample session drew its samples, twice in pytest's
    own last collections, and at exit, where tearing them down took half a second
    (``benchmarks/throughput.py``). Objects made later are collected as usual. A process that
    froze objects itself, runs with the collector disabled, or runs this session inside
    another one (pytester's in-process runs) is left as it is.
    """
    import gc

    if _sessions[:1] == [config] and gc.isenabled() and not gc.get_freeze_count():
        gc.collect()
        gc.freeze()
        config.stash[frozen_key] = True


@pytest.hookimpl(tryfirst=True)  # before pytest's unraisableexception plugin collects one last time
def pytest_unconfigure(config: pytest.Config) -> None:
    """The session ends: what froze becomes collectable again and one full collection runs while
    pytest still reports what collections find (cycles among frozen objects that became garbage,
    with their ResourceWarnings). What is left is frozen again, through the interpreter's exit:
    pytest's last collections and the one at exit walk only young objects. Objects that are
    alive now are still freed at exit by reference counting as modules are cleared; a cycle
    among them is not finalized (Python does not promise finalizers at exit)."""
    if config in _sessions:
        _sessions.remove(config)
    if config.stash.get(frozen_key, False):
        import gc

        gc.unfreeze()
        gc.collect()
        gc.freeze()
        del config.stash[frozen_key]


def _optimize(request: pytest.FixtureRequest, session: Any, settings: Settings) -> None:
    """After the test: a search for each prompt whose gate failed; the test's verdict stays as it is."""
    from llmops.optimize.trigger import search, triggered

    found = []
    for run in session.runs:
        if triggered(run, settings.optimize):
            try:
                entry = search(
                    run,
                    request.config.rootpath / ".llmops" / "candidates",
                    proposer_model=settings.optimizer_model,
                    max_calls=settings.optimizer_budget,
                )
                if not settings.tracking:
                    entry.pop("registry", None)  # nothing is registered without tracking
                found.append(entry)
            except Exception as e:  # the search is extra information: it never errors a test
                found.append({"prompt": run.prompt.name, "test_id": run.test_id, "message": f"optimizer failed: {e}"})
    request.node.stash[item_candidates_key] = found


def _breaker(config: pytest.Config) -> Any:
    """One per session (per xdist worker), made when a test first samples: pytest's start-up
    in a project that does not use llmops never imports the sampler."""
    if breaker_key not in config.stash:
        from llmops.sampling import Breaker

        config.stash[breaker_key] = Breaker()
    return config.stash[breaker_key]


def _tables(config: pytest.Config) -> Any:
    """This process's sample-table file in the session's folder, made when a test first samples."""
    if tables_key not in config.stash:
        from pathlib import Path

        from llmops.tracking.samples import SampleTables

        name = getattr(config, "workerinput", {}).get("workerid", "main")
        config.stash[tables_key] = SampleTables(Path(config.stash[samples_dir_key]), name)
    return config.stash[tables_key]


def _limit(config: pytest.Config) -> Any:
    """The session's limit on model calls in flight, made when a test first samples.

    pytest runs a process's tests one after another, so the limit is shared by the runs of
    one test; under pytest-xdist each worker takes an equal share of ``--llmops-concurrency``,
    so the whole session stays within it at the provider.
    """
    if limit_key not in config.stash:
        from llmops.sampling import Limit

        workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1) if hasattr(config, "workerinput") else 1
        config.stash[limit_key] = Limit(max(1, config.stash[settings_key].concurrency // max(1, workers)))
    return config.stash[limit_key]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    if call.when == "teardown":
        for candidate in item.stash.get(item_candidates_key, []):
            report.user_properties.append((CANDIDATE_PROPERTY, json.dumps(candidate)))
    if call.when == "call":
        for result, ref in item.stash.get(item_results_key, []):  # small: the sample rows stay on disk
            report.user_properties.append((RESULT_PROPERTY, json.dumps({**result.to_dict(), SAMPLES_REF: ref})))
    if call.excinfo is not None and report.failed:
        from llmops.errors import LlmopsError
        from llmops.redact import redact

        if isinstance(call.excinfo.value, LlmopsError):
            # A broken setup (bad schema, missing variable, no model) or too many model errors:
            # the prompt was not judged, so this is an ERROR, not a FAILED requirement.
            report.user_properties.append((ERROR_PROPERTY, type(call.excinfo.value).__name__))
            report.longrepr = redact(f"{type(call.excinfo.value).__name__}: {call.excinfo.value}")
            item.stash[item_error_key] = type(call.excinfo.value).__name__
            if getattr(call.excinfo.value, "result", None) is None:  # no Result carries it to the reports
                error = {"test_id": item.nodeid, "error": type(call.excinfo.value).__name__}
                error["message"] = redact(str(call.excinfo.value))
                report.user_properties.append((TEST_ERROR_PROPERTY, json.dumps(error)))
    if call.when == "teardown":
        _junit_properties(item, report)
    return report


def _junit_properties(item: pytest.Item, report: pytest.TestReport) -> None:
    """Each requirement's numbers as properties of the test's last report: what --junitxml writes.

    The full results ride on the call report (RESULT_PROPERTY) for xdist; JUnit writes the
    teardown report's properties only, so the XML gets these short values and no sample rows.
    """
    results = [result for result, _ in item.stash.get(item_results_key, [])]
    error = item.stash.get(item_error_key, None)
    if not results and error is None:
        return
    from llmops.report.junit import ERROR_PROPERTY as JUNIT_ERROR
    from llmops.report.junit import properties

    report.user_properties.extend(properties(results))
    if error is not None:
        report.user_properties.append((JUNIT_ERROR, error))


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """After pytest wrote --junitxml: a test that raised an llmops error is an <error>, not a <failure>."""
    config = session.config
    xmlpath = getattr(config.option, "xmlpath", None)
    collector = config.pluginmanager.get_plugin("llmops-collector")
    if not xmlpath or hasattr(config, "workerinput") or collector is None or not collector.errored:
        return
    path = config.invocation_params.dir / os.path.expanduser(os.path.expandvars(xmlpath))
    if path.exists():
        from llmops.report.junit import mark_errors

        mark_errors(path)


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config) -> tuple[str, str, str] | None:
    if report.when == "call" and report.failed and any(k == ERROR_PROPERTY for k, _ in report.user_properties):
        return "error", "E", "ERROR"
    return None


class Collector:
    """Gathers results from test reports: in the controller under xdist, since reports travel."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.results: list[dict[str, Any]] = []
        self.samples = 0
        self.verdicts: dict[str, int] = {}
        self.started = time.time()
        self.lines: list[str] = []  # tracking and baseline lines for the summary
        self.candidates: list[dict[str, Any]] = []  # optimizer proposals, from teardown reports
        self.missing: list[dict[str, Any]] = []  # baseline requirements this session did not evaluate
        self.test_errors: list[dict[str, Any]] = []  # tests that ended in an llmops ERROR before a verdict
        self.errored = False  # some test raised an llmops error: its JUnit <failure> becomes an <error>
        self.uploader: Any = None  # the helper process that readies MLflow (started by tracking_soon)
        self.current = ""  # the test running here, for the live line
        self._shown = 0.0  # when the live line was last drawn

    # -- end of session: MLflow, baseline gate, promotion (controller only) -----------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if hasattr(self.config, "workerinput"):
            return
        settings = self.config.stash[settings_key]
        ahead = self._ahead(session, settings)
        self._sample_rows(settings)
        if settings.baseline:
            self._missing(session, settings)
        if not self.results:
            self._reports_without_results(settings)
            return
        from llmops.tracking import finish, new_record, promote_session, publish

        stopped = session.shouldfail or session.shouldstop  # -x, --maxfail: not every test ran
        if not stopped and session.exitstatus == pytest.ExitCode.INTERRUPTED:
            stopped = "interrupted"
        record = finish(
            new_record(settings.as_params(), self.started),
            self.results,
            exit_status=int(session.exitstatus),
            partial=str(stopped) if stopped else None,
        )
        record = self._complete(record)
        if ahead:
            record["ahead"] = ahead
        self._write_reports(record, settings)
        run_id = None
        if settings.tracking and not settings.plan:
            spool_dir = self.config.rootpath / ".llmops" / "spool"
            run_id, line = publish(record, settings.tracking_uri, settings.experiment, spool_dir, self.uploader)
            self.lines.append(line)
        if settings.promote:  # not a failed, regressed or partial session; the line says why
            self.lines.append(
                promote_session(record, run_id, settings.tracking_uri, settings.experiment, settings.promote)
            )

    def _ahead(self, session: pytest.Session, settings: Settings) -> dict[str, int] | None:
        """--llmops-prefetch: stop the look-ahead, count the calls it made that no test took."""
        ahead = self.config.stash.get(ahead_key, None)
        if ahead is None:
            return None
        interrupted = session.exitstatus == pytest.ExitCode.INTERRUPTED
        unused, requests, pending = ahead.finish(timeout=1.0 if interrupted else settings.timeout)
        line = f"look-ahead (--llmops-prefetch): {ahead.tests} tests sampled side by side; "
        line += f"{unused} calls made ahead were not taken by their test (not in the model calls above)"
        if pending:
            line += f", {pending} more still unanswered when the session ended"
        self.lines.append(line)
        return {"tests": ahead.tests, "unused_calls": unused, "unused_requests": requests, "in_flight": pending}

    def _sample_rows(self, settings: Settings) -> None:
        """The sample rows back from disk, for what shows them: reports, MLflow, failing samples under -v."""
        folder = self.config.stash[samples_dir_key]
        if not self.results or not folder:
            return
        from pathlib import Path

        from llmops.tracking import samples

        wanted = settings.tracking or settings.report_json or settings.report_md or settings.report_html
        if wanted or self.config.get_verbosity() >= 1:
            samples.attach(self.results, Path(folder))
        else:
            samples.detach(self.results)
        samples.remove(Path(folder))

    def _missing(self, session: pytest.Session, settings: Settings) -> None:
        """Requirements the baseline has that this session did not evaluate fail the gate."""
        baseline = self.config.stash[baseline_key]
        if baseline is None:
            return
        missing = baseline.missing(r["key"] for r in self.results)
        self.missing = [{"key": e.key, "requirement": e.requirement, "baseline": baseline.label} for e in missing]
        for e in missing:
            self.lines.append(
                ("not evaluated (allowed by --llmops-allow-missing): " if settings.allow_missing else "MISSING ")
                + f"{e.requirement} is in baseline {baseline.label} but was not evaluated in this session"
            )
        if missing and not settings.allow_missing:
            self.lines.append(
                f"baseline gate FAILED: {len(missing)} requirement(s) of the baseline were not evaluated; run "
                "them, or pass --llmops-allow-missing if they were removed on purpose"
            )
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    # -- reports: JSON, Markdown, HTML, from the one record ----------------------------------

    def _complete(self, record: dict[str, Any]) -> dict[str, Any]:
        """The record with its schema version, what the baseline misses, and the tests that errored."""
        from llmops.report.json import stamp

        record = stamp(record)
        if self.candidates:
            record["candidates"] = self.candidates
        if self.missing:
            record["missing"] = self.missing
        if self.test_errors:
            record["test_errors"] = self.test_errors
        return record

    def _reports_without_results(self, settings: Settings) -> None:
        """Every llmops test errored before a verdict: the reports still say so (a PR comment must)."""
        if not (self.test_errors or self.missing) or not (
            settings.report_json or settings.report_md or settings.report_html
        ):
            return
        from llmops.tracking import finish, new_record

        self._write_reports(self._complete(finish(new_record(settings.as_params(), self.started), [])), settings)

    def _write_reports(self, record: dict[str, Any], settings: Settings) -> None:
        from llmops.report import html, markdown
        from llmops.report import json as report_json

        outputs = (
            (settings.report_json, report_json.dumps, "results"),
            (settings.report_md, markdown.render, "Markdown report"),
            (settings.report_html, html.render, "HTML report"),
        )
        for name, render, what in outputs:
            if name:
                path = self.config.invocation_params.dir / name
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(path.name + ".tmp")
                tmp.write_text(render(record), encoding="utf-8")
                tmp.replace(path)  # never half a report, even when the session is interrupted here
                self.lines.append(f"{what} written to {path}")

    # -- progress while sampling: a live line on a terminal, a line per verdict in CI logs --

    def _terminal(self) -> Any:
        if self.config.get_verbosity() < 0 or hasattr(self.config, "workerinput"):
            return None
        return self.config.pluginmanager.get_plugin("terminalreporter")

    def _write(self, text: str, final: bool) -> None:
        tr = self._terminal()
        if tr is None or not (final or tr.isatty()):
            return
        from llmops.redact import redact

        text = redact(text)
        capman = self.config.pluginmanager.get_plugin("capturemanager")
        with capman.global_and_fixture_disabled() if capman else contextlib.nullcontext():
            if tr.isatty():
                width = tr._tw.fullwidth - 1
                if final:  # the whole line, however long: a verdict is never cut
                    tr.write("\r" + " " * width + "\r" + text + "\n")
                else:  # the live line is rewritten in place, so it must fit on one line
                    tr.write("\r" + text.ljust(width)[:width])
            else:
                tr.ensure_newline()
                tr.write_line(text)

    def _so_far(self) -> str:
        verdicts = ", ".join(f"{n} {v}" for v, n in sorted(self.verdicts.items()))
        return f"{self.samples} samples drawn" + (f"; verdicts so far: {verdicts}" if verdicts else "")

    def drawn(self, count: int) -> None:
        """A sample came back (count 1), or a requirement starts sampling (count 0): redraw the live line.

        Called from the sampler's thread as each call completes; at most 10 redraws a second.
        """
        self.samples += count
        now = time.monotonic()
        if count and now - self._shown < 0.1:
            return
        self._shown = now
        where = f"{self.current}: " if self.current else ""
        self._write(f"llmops: {where}sampling... {self._so_far()}", final=False)

    def pytest_runtest_logstart(self, nodeid: str, location: Any) -> None:
        self.current = nodeid.split("::", 1)[-1]

    def verdict(self, result: Any) -> None:
        self.verdicts[result.verdict] = self.verdicts.get(result.verdict, 0) + 1
        name = result.test_id.split("::", 1)[-1]
        reused = f", reused {result.reused} samples" if result.reused else ""
        if result.judge is not None:  # apart from the model under test's calls
            reused += f", {result.judge.calls} judge calls"
        versus = ""
        if result.comparison is not None:
            versus = f"; vs baseline: {result.comparison.verdict}"
        self._write(
            f"llmops: {name}: {result.description} -> {result.verdict}{versus} "
            f"({result.calls} new calls{reused}; {self._so_far()})",
            final=True,
        )

    def tracking_soon(self) -> None:
        """A test samples: start the uploader now (``llmops.tracking.uploader``), a helper process
        that imports MLflow and opens the store on another core while the tests sample, so that
        logging at the session's end does not wait for it (controller only)."""
        settings = self.config.stash[settings_key]
        if self.uploader is not None or not settings.tracking or settings.plan or hasattr(self.config, "workerinput"):
            return
        from llmops.tracking.uploader import Uploader

        self.uploader = Uploader(settings.tracking_uri, settings.experiment, self.config.invocation_params.dir)
        self.config.add_cleanup(self.uploader.close)  # never outlives the session

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "teardown":
            self.candidates.extend(json.loads(v) for k, v in report.user_properties if k == CANDIDATE_PROPERTY)
        if report.when == "call":
            self.results.extend(json.loads(v) for k, v in report.user_properties if k == RESULT_PROPERTY)
            if self.results:  # under xdist the controller learns here that tests sample
                self.tracking_soon()
            self.test_errors.extend(json.loads(v) for k, v in report.user_properties if k == TEST_ERROR_PROPERTY)
            self.errored = self.errored or any(k == ERROR_PROPERTY for k, _ in report.user_properties)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not (self.results or self.lines) or hasattr(self.config, "workerinput"):
            return
        from llmops.evaluation import Result
        from llmops.report.terminal import footer, table

        parsed = [Result.from_dict(d) for d in self.results]
        if any(r.plan is not None for r in parsed):
            from llmops.report.plan import plan_table

            terminalreporter.write_sep("=", "llmops plan")
            terminalreporter.write_line(plan_table([r for r in parsed if r.plan is not None]))
            return
        terminalreporter.write_sep("=", "llmops summary")
        verbosity = self.config.get_verbosity()
        if verbosity >= 0:
            terminalreporter.write_line(table(parsed))
        if verbosity >= 1:  # each requirement that did not pass: its full message and failing outputs
            from llmops.report.terminal import failures

            text = failures(parsed, limit=None if verbosity >= 2 else 5)
            if text:
                terminalreporter.write_line(text)
        terminalreporter.write_line(footer(parsed, wall_time=time.time() - self.started))
        from llmops.redact import redact

        for c in self.candidates:  # the optimizer's proposals: a diff and its held-out numbers
            terminalreporter.write_sep("-", f"llmops candidate for {c.get('prompt')}")
            terminalreporter.write_line(redact(str(c.get("message", ""))))
            if c.get("diff"):
                terminalreporter.write_line(redact(str(c["diff"])))
                where = " and ".join(x for x in (c.get("file"), c.get("registry")) if x)
                terminalreporter.write_line(f"written to {where} (never applied to your files)")
        for line in map(redact, self.lines):
            terminalreporter.write_line(line, red=line.startswith(("REGRESSED", "MISSING", "baseline gate")))
