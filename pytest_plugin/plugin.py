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
baseline_key = pytest.StashKey[Any]()
budget_key = pytest.StashKey[Any]()
family_key = pytest.StashKey[float | None]()
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
        settings = Settings().replace("llmops options", session=True, **values)
    except ConfigError as e:
        raise pytest.UsageError(f"llmops: ini {e}") from None
    if settings.cache_path is None:  # the response cache: one file per project, shared by xdist workers
        settings = settings.replace(session=True, cache_path=str(config.rootpath / ".llmops" / "cache.sqlite"))
    config.stash[settings_key] = settings
    config.stash[family_key] = None
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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With a family false-alarm rate, each llmops test gets an equal share (Bonferroni)."""
    family = config.stash[settings_key].family_false_alarm
    if family is not None:
        tests = sum(1 for item in items if "llmops" in getattr(item, "fixturenames", ()))
        config.stash[family_key] = family / max(1, tests)


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
        baseline=request.config.stash[baseline_key],
        budget=request.config.stash[budget_key],
        family_share=request.config.stash[family_key],
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
        if hasattr(self.config, "workerinput"):
            return
        settings = self.config.stash[settings_key]
        if settings.baseline:
            self._missing(session, settings)
        if not self.results:
            return
        from llmops.tracking import finish, new_record, publish, quiet_mlflow

        record = finish(new_record(settings.as_params(), self.started), self.results)
        if settings.report_json:
            path = self.config.invocation_params.dir / settings.report_json
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(record, indent=1), encoding="utf-8")
            self.lines.append(f"results written to {path}")
        run_id = None
        if settings.tracking and not settings.plan:
            spool_dir = self.config.rootpath / ".llmops" / "spool"
            run_id, line = publish(record, settings.tracking_uri, settings.experiment, spool_dir)
            self.lines.append(line)
        if settings.promote and run_id:
            from llmops.tracking.mlflow_store import MlflowStore, tracking_uri

            with quiet_mlflow():
                done = MlflowStore(tracking_uri(settings.tracking_uri), settings.experiment).promote(
                    run_id, settings.promote
                )
            self.lines.append(f"promoted run {run_id} as baseline @{settings.promote}: " + "; ".join(done))

    def _missing(self, session: pytest.Session, settings: Settings) -> None:
        """Requirements the baseline has that this session did not evaluate fail the gate."""
        baseline = self.config.stash[baseline_key]
        if baseline is None:
            return
        missing = baseline.missing(r["key"] for r in self.results)
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
        reused = f", reused {result.reused} samples" if result.reused else ""
        versus = ""
        if result.comparison is not None:
            versus = f"; vs baseline: {result.comparison.verdict}"
        self._write(
            f"llmops: {name}: {result.description} -> {result.verdict}{versus} "
            f"({result.calls} new calls{reused}; {self._so_far()})",
            final=True,
        )

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call":
            self.results.extend(json.loads(v) for k, v in report.user_properties if k == RESULT_PROPERTY)

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
        if self.config.get_verbosity() >= 0:
            terminalreporter.write_line(table(parsed))
        terminalreporter.write_line(footer(parsed))
        for line in self.lines:
            terminalreporter.write_line(line, red=line.startswith(("REGRESSED", "MISSING", "baseline gate")))
