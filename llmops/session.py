"""Session: where prompts are sampled and results collected; the object behind the fixture."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llmops.ahead import Ahead
from llmops.baseline import Baseline, load_baseline
from llmops.config import Settings
from llmops.costs import Budget, budget_from
from llmops.evaluation import Result, Run
from llmops.models import Model, resolve_model
from llmops.prompts import Prompt
from llmops.sampling import Breaker, Limit


class Session:
    """Samples prompts with one set of settings and keeps every result.

    Outside pytest::

        session = Session(model="openai:gpt-4o-mini", tolerance=0.05)
        run = session.sample(prompt, cases)
        run.expect(checks.json_valid(), at_least=0.95)

    Inside pytest the ``llmops`` fixture is a Session built from options, ini and marker.
    ``baseline`` (a loaded Baseline, or what ``--llmops-baseline`` takes) makes every
    requirement that the baseline also has a paired comparison with it.
    """

    def __init__(
        self,
        model: Any = None,
        settings: Settings | None = None,
        *,
        test_id: str = "",
        on_result: Callable[[Result], None] | None = None,
        on_draw: Callable[[int], None] | None = None,
        baseline: Baseline | str | None = None,
        family_share: float | None = None,
        budget: Budget | None = None,
        pinned: dict[str, Any] | None = None,
        breaker: Breaker | None = None,
        limit: Limit | None = None,
        ahead: Ahead | None = None,
        looking_ahead: bool = False,
        **overrides: Any,
    ) -> None:
        self.settings = (settings or Settings()).replace("Session()", session=True, **overrides)
        self._model_spec = model if model is not None else self.settings.model
        self._model: Model | None = None
        self.test_id = test_id
        self._on_result = on_result
        self._on_draw = on_draw
        if isinstance(baseline, str) or (baseline is None and self.settings.baseline and settings is None):
            spec = baseline if isinstance(baseline, str) else self.settings.baseline
            baseline = load_baseline(spec or "", self.settings.tracking_uri, self.settings.experiment)
        self.baseline: Baseline | None = baseline
        # The family false-alarm rate this session may spend (its test's share under pytest).
        family = self.settings.family_false_alarm
        self._family = family_share if family_share is not None else family
        self._requirements = 0
        self.budget = budget if budget is not None else budget_from(self.settings.budget)
        # Settings given on the command line: they win over sample()/expect() keywords too.
        self.pinned = dict(pinned or {})
        self.results: list[Result] = []
        self.runs: list[Run] = []
        # A model that keeps failing permanently is not called again (shared per pytest session).
        self.breaker = breaker if breaker is not None else Breaker()
        # One limit on calls in flight for all the session's runs (per pytest session under pytest).
        self.limit = limit if limit is not None else Limit(self.settings.concurrency)
        # --llmops-prefetch: where this test's look-ahead run and its own run share samples.
        self.ahead = ahead
        self.looking_ahead = looking_ahead

    @property
    def model(self) -> Model:
        if self._model is None:
            self._model = resolve_model(self._model_spec)
        return self._model

    def sample(self, prompt: Prompt, cases: Any, *, model: Any = None, **overrides: Any) -> Run:
        """A Run of ``prompt`` on ``cases`` (a Case, inputs dict, list or case file path).

        Nothing is drawn until a requirement asks for samples.
        """
        settings = self.settings.replace("sample()", **overrides) if overrides else self.settings
        if overrides and self.pinned:
            settings = settings.replace("command line", **self.pinned)
        if "model" in self.pinned:
            model = None  # --llmops-model retargets every sample() of the suite
        run = Run(
            prompt,
            cases,
            resolve_model(model) if model is not None else self.model,
            settings,
            test_id=self.test_id,
            on_result=self._record,
            on_draw=self._on_draw,
            baseline=self.baseline,
            false_alarm_for=self._false_alarm_for if self._family is not None else None,
            budget=self.budget,
            pinned=self.pinned,
            breaker=self.breaker,
            limit=self.limit,
            ahead=self.ahead,
            looking_ahead=self.looking_ahead,
        )
        self.runs.append(run)
        return run

    def _false_alarm_for(self, per_requirement: float, has_baseline: bool) -> tuple[float, float]:
        """The requirement's share of the family rate: 1/2, 1/4, 1/8, ... in declaration order.

        Any number of requirements then stays within the family rate (Bonferroni); with a
        baseline the share is split evenly between the verdict and the comparison.
        """
        assert self._family is not None
        self._requirements += 1
        share = self._family * 0.5**self._requirements
        return (share / 2, share / 2) if has_baseline else (share, share)

    def _record(self, result: Result) -> None:
        self.results.append(result)
        if self._on_result is not None:
            self._on_result(result)
