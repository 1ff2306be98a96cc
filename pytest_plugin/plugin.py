"""The llmops pytest plugin: options, marker, fixtures, report hooks and the terminal summary.

Thin on purpose: statistics, checks and sampling live in ``llmops``; this module only turns
pytest's configuration into one ``llmops.Settings`` and carries results to the summary.
Results ride on each test report (``user_properties``) so they survive pytest-xdist.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from llmops.config import OPTIONS, Settings
from llmops.errors import ConfigError

RESULT_PROPERTY = "llmops_result"
ERROR_PROPERTY = "llmops_error"

settings_key = pytest.StashKey[Settings]()
item_results_key = pytest.StashKey[list[Any]]()


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


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "llmops(**settings): per-test llmops settings, e.g. tolerance=0.05, max_samples=300, model='openai:gpt-4o-mini'",
    )
    values: dict[str, Any] = {}
    if os.environ.get("LLMOPS_TRACKING"):
        values["tracking"] = os.environ["LLMOPS_TRACKING"]
    for name in OPTIONS:
        ini = config.getini(f"llmops_{name}")
        if ini not in (None, "", []):
            values[name] = ini
        cli = config.getoption(f"llmops_{name}")
        if cli is not None:
            values[name] = cli
    try:
        config.stash[settings_key] = Settings().replace("llmops options", session=True, **values)
    except ConfigError as e:
        raise pytest.UsageError(f"llmops: ini {e}") from None
    config.pluginmanager.register(Collector(config), "llmops-collector")


def _settings_for(request: pytest.FixtureRequest) -> Settings:
    settings = request.config.stash[settings_key]
    for marker in reversed(list(request.node.iter_markers("llmops"))):
        where = f"@pytest.mark.llmops on {request.node.name}"
        if marker.args:
            raise ConfigError(f"{where}: takes keywords only, got positional {marker.args!r}")
        settings = settings.replace(where, **marker.kwargs)
    return settings


@pytest.fixture
def llmops_model(request: pytest.FixtureRequest) -> Any:
    """The model under test; override in conftest.py to return any LangChain model or callable.

    The default is the model named by ``--llmops-model``, ini ``llmops_model`` or the marker.
    """
    return _settings_for(request).model


@pytest.fixture
def llmops(request: pytest.FixtureRequest, llmops_model: Any) -> Any:
    """A ``llmops.Session`` for this test: ``llmops.sample(prompt, cases).expect(check, at_least=...)``."""
    from llmops.session import Session

    results: list[Any] = []
    request.node.stash[item_results_key] = results
    progress: Collector = request.config.pluginmanager.get_plugin("llmops-collector")

    def on_result(result: Any) -> None:
        results.append(result)
        progress.verdict(result)

    return Session(
        model=llmops_model,
        settings=_settings_for(request),
        test_id=request.node.nodeid,
        on_result=on_result,
        on_draw=progress.drawn,
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    if call.when == "call":
        for result in item.stash.get(item_results_key, []):
            report.user_properties.append((RESULT_PROPERTY, json.dumps(result.to_dict())))
    if call.excinfo is not None and report.failed:
        from llmops.errors import LlmopsError

        if isinstance(call.excinfo.value, LlmopsError):
            # A broken setup (bad schema, missing variable, no model) or too many model errors:
            # the prompt was not judged, so this is an ERROR, not a FAILED requirement.
            report.user_properties.append((ERROR_PROPERTY, type(call.excinfo.value).__name__))
            report.longrepr = f"{type(call.excinfo.value).__name__}: {call.excinfo.value}"
    return report


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

    # -- end of session: MLflow, baseline gate, promotion (controller only) -----------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if not self.results or hasattr(self.config, "workerinput"):
            return
        settings = self.config.stash[settings_key]
        from llmops.tracking import finish, new_record, publish, quiet_mlflow

        record = finish(new_record(settings.as_params(), self.started), self.results)
        run_id = None
        if settings.tracking:
            spool_dir = self.config.rootpath / ".llmops" / "spool"
            run_id, line = publish(record, settings.tracking_uri, settings.experiment, spool_dir)
            self.lines.append(line)
        if settings.baseline:
            with quiet_mlflow():
                self._compare(session, settings, record)
        if settings.promote and run_id:
            from llmops.tracking.mlflow_store import MlflowStore, tracking_uri

            done = MlflowStore(tracking_uri(settings.tracking_uri), settings.experiment).promote(
                run_id, settings.promote
            )
            self.lines.append(f"promoted run {run_id} as baseline @{settings.promote}: " + "; ".join(done))

    def _compare(self, session: pytest.Session, settings: Settings, record: dict[str, Any]) -> None:
        from llmops.baseline import compare, load_baseline

        try:
            label, base = load_baseline(settings.baseline or "", settings.tracking_uri, settings.experiment)
        except Exception as e:
            self.lines.append(f"baseline gate ERROR: {e}")
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
            return
        report = compare(record["results"], base["results"], label, settings.tolerance, settings.false_alarm)
        self.lines += report.lines()
        if report.regressions:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    # -- progress while sampling: a live line on a terminal, a line per verdict in CI logs --

    def _terminal(self) -> Any:
        if self.config.get_verbosity() < 0 or hasattr(self.config, "workerinput"):
            return None
        return self.config.pluginmanager.get_plugin("terminalreporter")

    def _write(self, text: str, final: bool) -> None:
        tr = self._terminal()
        if tr is None or not (final or tr.isatty()):
            return
        capman = self.config.pluginmanager.get_plugin("capturemanager")
        with capman.global_and_fixture_disabled() if capman else contextlib.nullcontext():
            if tr.isatty():
                tr.write("\r" + text.ljust(tr._tw.fullwidth - 1)[: tr._tw.fullwidth - 1])
                if final:
                    tr.write("\n")
            else:
                tr.ensure_newline()
                tr.write_line(text)

    def _so_far(self) -> str:
        verdicts = ", ".join(f"{n} {v}" for v, n in sorted(self.verdicts.items()))
        return f"{self.samples} samples drawn" + (f"; verdicts so far: {verdicts}" if verdicts else "")

    def drawn(self, count: int) -> None:
        self.samples += count
        self._write(f"llmops: sampling... {self._so_far()}", final=False)

    def verdict(self, result: Any) -> None:
        self.verdicts[result.verdict] = self.verdicts.get(result.verdict, 0) + 1
        name = result.test_id.split("::", 1)[-1]
        self._write(
            f"llmops: {name}: {result.description} -> {result.verdict} after {result.calls} calls ({self._so_far()})",
            final=True,
        )

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call":
            self.results.extend(json.loads(v) for k, v in report.user_properties if k == RESULT_PROPERTY)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.results or hasattr(self.config, "workerinput"):
            return
        from llmops.evaluation import Result
        from llmops.report.terminal import footer, table

        parsed = [Result.from_dict(d) for d in self.results]
        terminalreporter.write_sep("=", "llmops summary")
        if self.config.get_verbosity() >= 0:
            terminalreporter.write_line(table(parsed))
        terminalreporter.write_line(footer(parsed))
        for line in self.lines:
            terminalreporter.write_line(line, red=line.startswith(("REGRESSION", "baseline gate ERROR")))
