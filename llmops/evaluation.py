"""Requirements and the loop: draw -> check -> decide -> draw more or stop.

A ``Run`` is one prompt sampled on one or more cases by one model.  ``run.expect(check,
at_least=...)`` walks the run's draws in stream order (``llmops.designs``) through the
requirement's rule, and, when the session has a baseline for this requirement, through the
paired comparison as well, drawing more only while one of them has not decided, and never
more at once than could matter.  Samples are keyed by (prompt version, case, index), so
requirements on one run share what was drawn and each model call happens once.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import asdict, dataclass
from typing import Any

from llmops.ahead import Ahead
from llmops.baseline import Baseline, Entry, requirement_key
from llmops.cases import Case, as_cases
from llmops.checks.base import Check, Outcome
from llmops.checks.judge import Judged, JudgeMeter, JudgeStats, judge_stats, judges_in
from llmops.config import Settings, default_tolerance
from llmops.costs import Budget, cost_of, price_of, reserve, settle
from llmops.designs import PairedRule, SprtRule, Stream, stream_for
from llmops.errors import (
    CheckError,
    ConfigError,
    ErrorBudgetExceeded,
    ModelUnavailable,
    NotDecided,
    RequirementFailed,
    StopSampling,
)
from llmops.models import Model, model_identity
from llmops.prompts import Message, Prompt
from llmops.sampling import Breaker, Limit, Request, Sample, Sampler, sample_seed
from llmops.stats import FAIL, PASS, clopper_pearson_lower, clopper_pearson_upper, sequential_design, wilson
from llmops.stats.paired import NOT_WORSE, REGRESSED, paired_design
from llmops.stats.planning import fixed_n

#: Errors tolerated before the budget is enforced mid-run (a few early errors say little).
MIN_ERRORS_TO_ABORT = 5
ERROR = "ERROR"


@dataclass(frozen=True)
class CaseCount:
    case_id: str
    k: int  # on the requirement's scale: passes (at_least) or violations (at_most)
    n: int
    errors: int
    example: str = ""  # the reason of one failing sample, for the failure message
    key: str = ""  # content key (inputs and expected), what baselines pair on


@dataclass(frozen=True)
class Comparison:
    """The paired verdict against the baseline, on the requirement's scale."""

    baseline: str  # where the baseline came from
    mode: str  # rerun, stored, or unchanged (same prompt and model: nothing to compare)
    base_version: str
    verdict: str  # "not worse", "regressed", "unchanged" or ERROR
    difference: float  # new - baseline rate (violations for at_most), NaN when not compared
    interval: tuple[float, float]
    pairs: int
    wins: int  # pairs where the new prompt did better
    losses: int
    ties: int
    tolerance: float
    false_alarm: float
    miss: float
    message: str = ""
    stopped: str = ""  # why it stopped undecided before its cap (the session's budget), if it did


@dataclass(frozen=True)
class Result:
    """The verdict on one requirement, with every number behind it."""

    prompt: str
    prompt_version: str
    model: str
    check: str
    check_params: dict[str, Any]
    description: str
    direction: str  # "at_least" or "at_most"
    threshold: float
    tolerance: float
    false_alarm: float
    miss: float
    k: int  # samples where the check passed (at_least) or found a violation (at_most)
    n: int  # samples with an answer (errors left out)
    errors: int  # model errors + check errors among the samples the verdict looked at
    calls: int  # model calls this requirement made (each counted once; baseline calls in, judge calls not)
    rate: float  # k / n
    interval: tuple[float, float]  # 95% two-sided, for display
    bound: float  # exact one-sided bound on the side of the requirement
    verdict: str  # PASS, FAIL or ERROR
    fixed_n: int  # samples a fixed-size design with the same error rates would use
    n_cases: int
    population: str = "cases"  # cases (these cases) or inputs (inputs like these); one case: cases
    cases: tuple[CaseCount, ...] = ()  # in the run's case order
    model_errors: int = 0
    check_errors: int = 0
    reused: int = 0  # samples looked at that an earlier requirement of the run had drawn
    unused: int = 0  # calls made here that no decision looked at (drawn in a batch, not needed)
    retries: int = 0  # extra attempts behind the calls
    baseline_calls: int = 0  # of ``calls``, those of the baseline prompt (rerun mode)
    replayed: int = 0  # samples this requirement drew from the response cache: no call, no cost
    latency_p50: float | None = None
    latency_p95: float | None = None
    input_tokens: int = 0  # tokens of exactly the calls counted in ``calls``
    output_tokens: int = 0
    error_budget: float = 0.1
    first_error: str = ""
    test_id: str = ""
    message: str = ""
    cost_usd: float | None = None  # None when no price is known for the model
    comparison: Comparison | None = None
    key: str = ""  # test, prompt, check with arguments, direction, threshold
    model_settings: dict[str, Any] | None = None  # llmops.models.model_identity: no secrets
    stopped: str = ""  # why sampling stopped before a verdict (the session's budget), if it did
    plan: dict[str, Any] | None = None  # --llmops-plan: expected / p95 / max calls, no model called
    template: tuple[tuple[str, str], ...] = ()  # the prompt's (role, template) parts, for the registry
    trace: str = ""  # pass-scale outcome per stream position: 1, 0, e (for a stored baseline)
    trace_cases: tuple[int, ...] = ()  # case position per stream position
    samples: tuple[dict[str, Any], ...] = ()  # one row per sample looked at: the drill-down table
    judge: JudgeStats | None = None  # the judge's calls, tokens, cost and agreement, apart from ``calls``

    @property
    def passed(self) -> bool:
        return self.verdict == PASS

    @property
    def regressed(self) -> bool:
        return self.comparison is not None and self.comparison.verdict == REGRESSED

    @property
    def tested(self) -> tuple[float, float]:
        """The two rates the test tells apart, on the requirement's scale."""
        sign = 1 if self.direction == "at_least" else -1
        return (self.threshold, self.threshold - sign * self.tolerance)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["interval"] = list(self.interval)
        d["check_params"] = {k: _jsonable(v) for k, v in self.check_params.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Result:
        d = {k: v for k, v in d.items() if k in _FIELDS}
        d["interval"] = tuple(d["interval"])
        d["cases"] = tuple(CaseCount(**c) for c in d.get("cases", ()))
        d["template"] = tuple(tuple(p) for p in d.get("template", ()))
        d["trace_cases"] = tuple(d.get("trace_cases", ()))
        d["samples"] = tuple(d.get("samples", ()))
        for name in ("rate", "bound"):  # JSON has no NaN: null means "not known"
            d[name] = _nan(d.get(name))
        d["interval"] = tuple(_nan(x) for x in d["interval"])
        if d.get("comparison"):
            c = dict(d["comparison"])
            c["difference"] = _nan(c.get("difference"))
            c["interval"] = tuple(_nan(x) for x in c["interval"])
            d["comparison"] = Comparison(**c)
        d["judge"] = JudgeStats.from_dict(d["judge"]) if d.get("judge") else None
        return cls(**d)


_FIELDS = {f.name for f in dataclasses.fields(Result)}


def _nan(x: Any) -> float:
    return float("nan") if x is None else float(x)


def _jsonable(v: Any) -> Any:
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return getattr(v, "__name__", None) or repr(v)


def _pct(x: float) -> str:
    """A rate as written: 95%, 99.9%, 0.5%."""
    return f"{round(100 * x, 2):g}%"


def _percentile(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


@dataclass(frozen=True)
class Requirement:
    """One expect(): what is tested and at which rates, on the pass scale where it matters."""

    check: Check
    direction: str
    threshold: float
    tolerance: float
    false_alarm: float
    miss: float
    population: str
    key: str
    compare_false_alarm: float  # for the baseline comparison, when there is one

    @property
    def theta(self) -> float:
        """The threshold on the pass scale (a clean sample passes an at_most requirement)."""
        return self.threshold if self.direction == "at_least" else 1 - self.threshold

    def good(self, o: Outcome) -> bool:
        return o.passed if self.direction == "at_least" else not o.passed


class Run:
    """Samples of one prompt on one or more cases from one model, shared by its requirements."""

    def __init__(
        self,
        prompt: Prompt,
        cases: Any,
        model: Model,
        settings: Settings,
        *,
        test_id: str = "",
        on_result: Callable[[Result], None] | None = None,
        on_draw: Callable[[int], None] | None = None,
        baseline: Baseline | None = None,
        false_alarm_for: Callable[[float, bool], tuple[float, float]] | None = None,
        budget: Budget | None = None,
        pinned: dict[str, Any] | None = None,
        breaker: Breaker | None = None,
        limit: Limit | None = None,
        ahead: Ahead | None = None,
        looking_ahead: bool = False,
    ) -> None:
        self.prompt = prompt
        self._breaker = breaker
        self._pinned = {k: v for k, v in (pinned or {}).items() if k != "model"}
        self.cases: list[Case] = as_cases(cases)
        keys: dict[str, str] = {}
        for c in self.cases:
            prompt.check_inputs(c.inputs, c.id)
            if c.key in keys:
                raise ConfigError(
                    f"cases {keys[c.key]!r} and {c.id!r} have the same inputs and expected answer; "
                    "remove one (a baseline pairs cases by their content)"
                )
            keys[c.key] = c.id
        self._keys = [c.key for c in self.cases]  # content keys, computed once (a hash each)
        self._position = {key: i for i, key in enumerate(self._keys)}
        self.model = model
        self.settings = settings
        self.test_id = test_id
        self._on_result = on_result
        self._on_draw = on_draw
        self._baseline = baseline
        self._false_alarm_for = false_alarm_for
        self._budget = budget
        self._price = price_of(model.id, settings.price, settings.prices)
        self._sampler = Sampler(
            model,
            concurrency=settings.concurrency,
            timeout=settings.timeout,
            retries=settings.retries,
            seed=settings.seed,
            cache=settings.cache,  # the response cache: replayed samples count, cost nothing
            cache_path=settings.cache_path,
            on_sample=(lambda _sample: on_draw(1)) if on_draw is not None else None,  # progress per sample
            breaker=breaker,  # a model that keeps failing permanently is not called again
            limit=limit,  # the session's calls in flight, shared with its other runs
        )
        self._messages: dict[tuple[str, int], list[Message]] = {}
        self._samples: dict[tuple[str, int, int], Sample] = {}  # (prompt version, case position, index)
        self._inflight: dict[tuple[str, int, int], Future[Sample | None]] = {}  # submitted, not taken yet
        self._log: list[Sample] = []  # every sample drawn, in the order taken: a requirement's calls are a slice
        self._unsettled: list[Sample | None] = []  # taken, not yet charged to the budget
        self._outcomes: dict[tuple[Check, str, int, int], Outcome] = {}
        self._judged: list[Judged] = []  # outputs judged (by a judge inside a check) since evaluate() began
        self._meter: JudgeMeter | None = None
        self._streams: dict[str, Stream] = {}
        # --llmops-prefetch: the samples this test's two runs (the look-ahead's, the test's own) share.
        self._ahead = ahead
        self._looking = looking_ahead  # this run is the look-ahead: expect() records, look_ahead() decides
        self._recorded: list[tuple[Requirement, Settings]] = []
        self._theirs: set[tuple[str, int, int]] = set()  # in flight, drawn by the other run (it pays)
        self._prompts = {prompt.version: prompt}
        self.results: list[Result] = []
        self.requirements: list[Requirement] = []  # what the test declared, for the optimizer
        self.baseline_prompt: Prompt | None = None  # the baseline's version of this prompt, when compared

    # -- drawing ---------------------------------------------------------------------------

    @property
    def calls(self) -> int:
        """Model calls this run made (each sample is one call, whatever its retries)."""
        return len(self._samples)

    def _stream(self, population: str) -> Stream:
        if population not in self._streams:
            seed = sample_seed(self.settings.seed, "stream", population, *(c.key for c in self.cases))
            self._streams[population] = stream_for(population, len(self.cases), seed)
        return self._streams[population]

    def _render(self, prompt: Prompt, pos: int) -> list[Message]:
        key = (prompt.version, pos)
        if key not in self._messages:
            inputs = self.cases[pos].inputs
            self._messages[key] = prompt.render({v: inputs[v] for v in prompt.variables})
        return self._messages[key]

    def _draw(self, slots: list[tuple[Prompt, int, int]]) -> list[Sample]:
        """Draw the samples not drawn yet and wait for them; returns the new ones."""
        self._submit(slots)
        return [x for x in (self._take(p.version, c, i) for p, c, i in slots) if x is not None]

    def _submit(self, slots: list[tuple[Prompt, int, int]]) -> None:
        """Start drawing the samples not drawn or in flight yet; ``_take`` collects them."""
        todo: dict[tuple[str, int, int], tuple[Prompt, int, int]] = {}
        for prompt, pos, index in slots:
            key = (prompt.version, pos, index)
            if key not in self._samples and key not in self._inflight:
                todo[key] = (prompt, pos, index)
        if not todo:
            return
        cause = self._breaker.cause(self._sampler.breaker_key) if self._breaker is not None else None
        if cause:
            self._drain(withdraw=True)  # queued calls never reach the broken model; started ones are counted
            raise ModelUnavailable(
                f"model {self.model.id}: {cause}; fix the key, the model name or the permissions and run again"
            )
        if self._ahead is None:
            self._call(todo)
            return
        with self._ahead.lock:  # take what the test's other run drew, draw the rest: each key once
            shared = {k: (self._sampler.breaker_key, self.settings.seed, k[0], self._keys[k[1]], k[2]) for k in todo}
            for key, future in self._ahead.take(self.test_id, shared, self._looking).items():
                self._inflight[key] = future
                self._theirs.add(key)
                del todo[key]
            if todo:
                made = self._call(todo)
                self._ahead.offer(self.test_id, {shared[k]: f for k, f in made.items()}, self._looking)

    def _call(self, todo: dict[tuple[str, int, int], tuple[Prompt, int, int]]) -> dict[Any, Future[Sample | None]]:
        """Reserve the budget for these samples and hand them to the sampler; their futures, by key."""
        by_prompt: dict[str, list[Request]] = {}
        for prompt, pos, index in todo.values():
            self._prompts.setdefault(prompt.version, prompt)
            by_prompt.setdefault(prompt.version, []).append(Request(self._keys[pos], index, self._render(prompt, pos)))
        reserve(self._budget, self._price, f"model {self.model.id}", len(todo))  # BudgetSpent: they do not fit
        futures = self._sampler.submit(by_prompt)
        made: dict[Any, Future[Sample | None]] = {}
        for version, fs in futures.items():
            positions = (k for k in todo if k[0] == version)
            made.update(zip(positions, fs, strict=True))
        self._inflight.update(made)
        return made

    def _take(self, version: str, pos: int, index: int, draw: bool = True) -> Sample | None:
        """The sample at this key, waiting for it if it is in flight (None: never drawn)."""
        key = (version, pos, index)
        if key in self._samples:
            return self._samples[key]
        future = self._inflight.pop(key, None)
        if future is None:
            return None
        x = None if future.cancelled() else future.result()
        theirs = key in self._theirs
        if theirs:
            self._theirs.discard(key)
            if x is None and draw:  # the other run withdrew it before its call: draw it here
                self._submit([(self._prompts[version], pos, index)])
                return self._take(version, pos, index)
        if x is None:  # withdrawn before its call started: no call, no sample
            if not theirs:
                self._unsettled.append(None)  # its reservation is given back
        else:
            self._samples[key] = x
            self._log.append(x)
            if not theirs:  # the run that made the call pays for it
                self._unsettled.append(x)
            elif self._on_draw is not None:  # drawn by the look-ahead: the live line counts it now
                self._on_draw(1)
        if len(self._unsettled) >= self.settings.concurrency:
            self._settle()
        return x

    def _settle(self) -> None:
        """The budget learns what the samples taken since the last settlement cost; the cache gets them."""
        taken, self._unsettled = self._unsettled, []
        self._sampler.flush()
        settle(self._budget, self._price, taken)

    def _drain(self, withdraw: bool = False) -> None:
        """Wait for every call in flight (``withdraw``: cancel those not started); settle them.

        Calls the test's other run made are its to withdraw: they are waited for, not cancelled.
        """
        if withdraw:
            self._withdraw()
        for key in list(self._inflight):
            self._take(*key, draw=False)
        self._settle()

    def _abandon(self, wait: bool) -> None:
        """Withdraw the calls queued for this run; ``wait``: also wait for (and count) the started ones.

        On an interruption nothing is waited for: the session is ending, and the calls that
        had started are cancelled with the sampler's loop.
        """
        if wait:
            self._drain(withdraw=True)
            return
        self._withdraw()
        self._inflight.clear()

    def _withdraw(self) -> None:
        """Cancel this run's calls that have not started (the other run's are its own to withdraw)."""
        for key, future in self._inflight.items():
            if key not in self._theirs:
                future.cancel()

    def _outcome(self, check: Check, version: str, pos: int, index: int) -> tuple[Outcome, str]:
        """The check's outcome on a drawn sample, and its kind: ok, model error or check error."""
        sample = self._take(version, pos, index)
        assert sample is not None, "an outcome is asked of a sample that was drawn"
        if sample.error is not None:
            return Outcome("error", sample.error), "model"
        key = (check, version, pos, index)
        if key not in self._outcomes:
            assert sample.output is not None
            try:
                with self._judge_meter():  # a judge inside the check: cached, budgeted, counted apart
                    self._outcomes[key] = check(sample.output, self.cases[pos])
            except StopSampling:
                raise  # the session's budget, spent by the judge's calls
            except Exception as e:  # a Check that is not made by @check may raise
                self._outcomes[key] = Outcome("error", f"check {check.name} raised {type(e).__name__}: {e}")
        o = self._outcomes[key]
        return o, ("check" if o.status == "error" else "ok")

    def _judge_meter(self) -> JudgeMeter:
        """What a judge asked by a check gets from this run: the response cache, the budget, the prices."""
        if self._meter is None:
            from llmops.cache import open_cache

            cache = open_cache(self.settings.cache, self.settings.cache_path)
            self._meter = JudgeMeter(cache, self._budget, self.settings.prices, self._judged, self._sampler.limit)
        return self._meter

    # -- requirements ----------------------------------------------------------------------

    def expect(
        self,
        check: Check,
        *,
        at_least: float | None = None,
        at_most: float | None = None,
        **overrides: Any,
    ) -> Result:
        """Sample until the requirement (and the baseline comparison) is decided; raise on FAIL.

        ``at_least=0.95``: the check passes in at least 95% of samples.  ``at_most=0.01``:
        the check (a detector) fires in at most 1% of samples.  ``overrides`` take any
        setting (tolerance, false_alarm, miss, population, max_samples, ...) for this
        requirement.  A FAIL or a regression raises RequirementFailed (the test fails); a
        result that could not be decided raises an LlmopsError (the test is an ERROR).
        """
        __tracebackhide__ = True  # pytest shows the test's line, not ours
        result = self.evaluate(check, at_least=at_least, at_most=at_most, **overrides)
        if result.verdict == FAIL or result.regressed:
            parts = [result.message] if result.verdict == FAIL else []
            if result.regressed and result.comparison is not None:
                parts.append(result.comparison.message)
            raise RequirementFailed("\n".join(parts), result)
        return result

    def evaluate(
        self,
        check: Check,
        *,
        at_least: float | None = None,
        at_most: float | None = None,
        **overrides: Any,
    ) -> Result:
        """Like ``expect`` but returns a FAIL or a regression instead of raising it.

        Errors that leave no verdict (too many failed calls, too few cases for the
        ``inputs`` population, a comparison that could not be decided) still raise.
        """
        __tracebackhide__ = True
        req = self._requirement(check, at_least, at_most, overrides)
        self.requirements.append(req)
        settings = self._settings(overrides)
        if self._looking:  # the look-ahead records the requirement; look_ahead() decides it, unreported
            if not judges_in(check):  # a judge's calls would be made twice (the test's own run judges again)
                self._recorded.append((req, settings))
            return self._decide(req, dataclasses.replace(settings, plan=True))
        self._judged.clear()  # what judges spend from here on is this requirement's, each output once
        result = self._decide(req, settings)
        result = _with_message(dataclasses.replace(result, judge=judge_stats(self._judged)))
        self.results.append(result)
        if self._on_result is not None:
            self._on_result(result)
        if result.verdict == ERROR:
            raise ErrorBudgetExceeded(result.message, result)
        if result.comparison is not None and result.comparison.verdict == ERROR:
            raise NotDecided(result.comparison.message, result)
        return result

    @property
    def recorded(self) -> bool:
        """A look-ahead run that has requirements to decide."""
        return bool(self._recorded)

    def look_ahead(self) -> None:
        """Decide the recorded requirements, drawing what the test's own run will take; no Result is kept."""
        for req, s in self._recorded:
            if self._ahead is None or not self._ahead.running(self.test_id):
                return
            self._decide(req, s)

    def _settings(self, overrides: dict[str, Any]) -> Settings:
        """The run's settings with expect()'s keywords, under what the command line pinned."""
        if not overrides:
            return self.settings
        s = self.settings.replace("expect()", **overrides)
        return s.replace("command line", **self._pinned) if self._pinned else s

    def _requirement(
        self, check: Check, at_least: float | None, at_most: float | None, overrides: dict[str, Any]
    ) -> Requirement:
        if (at_least is None) == (at_most is None):
            raise ConfigError("give exactly one of at_least= (a rate to reach) or at_most= (a rate not to exceed)")
        if not isinstance(check, Check):
            raise CheckError(f"expect() needs a check (e.g. checks.json_valid()), got {check!r}")
        s = self._settings(overrides)
        direction = "at_least" if at_least is not None else "at_most"
        threshold = float(at_least if at_least is not None else at_most)  # type: ignore[arg-type]
        if not 0 <= threshold <= 1:
            raise ConfigError(f"{direction}={threshold} is not a rate; give a number in [0, 1]")
        if check.needs_expected:
            missing = [c.id for c in self.cases if c.expected is None]
            if missing and not any(check.params.get(k) is not None for k in ("expected", "text")):
                raise CheckError(
                    f"check {check.name} compares with the expected answer, but case {missing[0]!r} has "
                    f"none; give the case an expected value or pass expected= to the check"
                )
        allowed = 1 - threshold if direction == "at_least" else threshold
        tolerance = s.tolerance if s.tolerance is not None else default_tolerance(allowed)
        theta = 1 - allowed
        if 0 < theta < 1 and tolerance >= theta:
            tolerance = theta / 2  # the default at very low thresholds: "at least 5%" against 2.5%
        key = requirement_key(
            self.test_id, self.prompt.name, check.name, _jsonable(dict(check.params)), direction, threshold
        )
        has_baseline = self._baseline is not None and self._baseline.entry(key) is not None
        alpha = alpha_cmp = s.false_alarm
        if self._false_alarm_for is not None:
            alpha, alpha_cmp = self._false_alarm_for(s.false_alarm, has_baseline)
        population = s.population if len(self.cases) > 1 else "cases"
        return Requirement(check, direction, threshold, tolerance, alpha, s.miss, population, key, alpha_cmp)

    def _decide(self, req: Requirement, s: Settings) -> Result:
        """The loop, written once: draw what could matter, feed each rule in stream order."""
        n_cases = len(self.cases)
        stream = self._stream(req.population)
        cap = s.max_samples
        if req.population == "inputs":
            needed = fixed_n(req.theta, req.tolerance, req.false_alarm, req.miss)[0] if req.theta < 1 else None
            if needed is not None and n_cases < needed:
                raise NotDecided(_too_few_cases(req, n_cases, needed, self.prompt.name))
            cap = min(cap or n_cases, n_cases)
        design = sequential_design(req.theta, req.tolerance, req.false_alarm, req.miss, cap)
        if req.population == "inputs" and design.max_n > n_cases:
            raise NotDecided(_too_few_cases(req, n_cases, design.max_n, self.prompt.name))
        rule = SprtRule(design)
        arm = self._paired_arm(req, s)
        if s.plan:
            return self._planned(req, s, design, arm)

        drawn_before = set(self._samples)
        mark = len(self._log)  # the samples taken from here on are this requirement's calls
        looked: dict[tuple[str, int, int], None] = {}  # in the order looked at
        counts = _Counts()
        pos = 0  # next stream position for the requirement
        stopped = ""
        if self._on_draw is not None:
            self._on_draw(0)  # sampling starts: the live line shows before the first call returns
        try:
            try:
                pos = self._walk(req, s, stream, rule, arm, looked, counts)
            except StopSampling as e:
                rule.verdict, stopped, pos = ERROR, str(e), counts.positions
            verdict = rule.verdict
            if verdict is None or (verdict != ERROR and counts.blown(s.error_budget, final=True)):
                verdict = ERROR
            try:
                arm.run(self, req, s, stream, looked)
                # Samples kept for a later stored-baseline comparison: a fixed length, not looked
                # at by the verdict, so they bias nothing (see llmops.stats.paired on stored traces).
                end = s.store_samples if stream.limit is None else min(s.store_samples, stream.limit)
                front, step = pos, _step(s)
                for j in range(pos, end):
                    if front < end and front - j <= s.concurrency - step:  # keep the pipe full, a few at a time
                        top = min(end, j + s.concurrency)
                        self._submit([(self.prompt, *stream[t]) for t in range(front, top)])
                        front = top
                    self._take(self.prompt.version, *stream[j])  # in stream order
            except StopSampling as e:
                if arm.rule is not None and arm.rule.verdict is None:
                    arm.rule.stop(ERROR)
                    arm.stopped = str(e)
            self._drain(withdraw=True)  # calls that had started are waited for and counted as unused
        except BaseException as e:  # an error, Ctrl-C or SIGTERM mid-requirement: nothing left queued
            self._abandon(wait=isinstance(e, Exception))
            raise
        calls = self._log[mark:]
        result = self._result(req, s, verdict, design.fixed_n, stream, pos, counts, calls, drawn_before, looked, arm)
        return dataclasses.replace(result, stopped=stopped)

    def _walk(
        self,
        req: Requirement,
        s: Settings,
        stream: Stream,
        rule: SprtRule,
        arm: _Arm,
        looked: dict[tuple[str, int, int], None],
        counts: _Counts,
    ) -> int:
        """The requirement's loop: keep in flight what could matter, observe in stream order.

        The positions up to ``pos + wants`` are submitted (``wants``: the fewest further
        observations that could decide, looked up to twice ``concurrency`` ahead), and the
        sampler starts them as calls finish, ``concurrency`` at a time: calls never wait for
        a batch's slowest one, nor for a slow call at the head of the stream, and no call is
        made that the rule could not need (the decision comes at or after the last position
        drawn).  ``overshoot`` submits that many more, trading calls that may go unused for
        fewer waits at the end.  The samples and the order they are observed in depend on
        neither: the verdicts are those of a batch-by-batch loop.
        """
        pos = front = 0  # next position to observe; next position to draw
        limit = stream.limit
        step = _step(s)
        while rule.verdict is None:
            if limit is not None and pos >= limit:
                break  # the inputs stream ran out early: only errors can do that
            if front - pos < s.concurrency:
                end = pos + rule.wants(at_most=2 * s.concurrency) + s.overshoot
                end = end if limit is None else min(end, limit)
                if end - front >= step or (end > front and front - pos < step):
                    slots = [stream[j] for j in range(front, end)]
                    self._submit([(self.prompt, c, i) for c, i in slots] + arm.extra_slots(slots))
                    front = end
            c, i = stream[pos]
            o, kind = self._outcome(req.check, self.prompt.version, c, i)
            looked[(self.prompt.version, c, i)] = None
            counts.add(c, o, kind, req)
            pos += 1
            counts.positions = pos
            if kind == "ok":
                rule.observe(req.good(o))
            arm.feed(self, req, c, i, looked)  # the comparison decides alongside (rerun)
            if counts.blown(s.error_budget, final=False):
                rule.verdict = ERROR
        return pos

    def _named(self, req: Requirement) -> dict[str, Any]:
        """The fields that say which requirement of which prompt a Result is about."""
        return {
            "prompt": self.prompt.name,
            "prompt_version": self.prompt.version,
            "model": self.model.id,
            "check": req.check.name,
            "check_params": dict(req.check.params),
            "description": req.check.description,
            "direction": req.direction,
            "threshold": req.threshold,
            "tolerance": req.tolerance,
            "false_alarm": req.false_alarm,
            "miss": req.miss,
        }

    def _planned(self, req: Requirement, s: Settings, design: Any, arm: _Arm) -> Result:
        """--llmops-plan: what this requirement would cost, from its design; no model call.

        Expected and p95 calls at the hardest true rate (halfway between the two tested
        rates, where the test takes longest), the cap, and the cost where a price and a
        token estimate (prompt length / 4, the model's max_tokens) are known.
        """
        mid = req.theta - req.tolerance / 2
        plan: dict[str, Any] = {
            "expected": round(max(design.operating(p).expected_n for p in (req.theta, mid, req.theta - req.tolerance))),
            "p95": design.calls_quantile(mid, 0.95),
            "max": design.max_n,
            "fixed_n": design.fixed_n,
        }
        if arm.rule is not None:
            per_pair = 2 if arm.mode == "rerun" else 1
            plan["baseline_max_calls"] = per_pair * arm.rule.design.max_pairs
        repeats = sum(j.repeats for j in judges_in(req.check))
        if repeats:  # each sample drawn is judged `repeats` times, apart from the model's calls
            plan["judge_calls_expected"] = repeats * plan["expected"]
            plan["judge_calls_max"] = repeats * (plan["max"] + plan.get("baseline_max_calls", 0))
        settings = model_identity(self.model) or {}
        out_tokens = next((settings[k] for k in ("max_tokens", "max_completion_tokens") if settings.get(k)), None)
        if self._price is not None and (out_tokens or self._price == (0.0, 0.0)):
            chars = sum(len(text) for pos in range(len(self.cases)) for _, text in self._render(self.prompt, pos))
            in_tokens = chars / 4 / len(self.cases)
            per_call = cost_of(self._price, round(in_tokens), int(out_tokens or 0)) or 0.0
            plan["cost_expected"] = per_call * plan["expected"]
            plan["cost_max"] = per_call * plan["max"]
        nan = float("nan")
        return Result(
            **self._named(req),
            k=0,
            n=0,
            errors=0,
            calls=0,
            rate=nan,
            interval=(nan, nan),
            bound=nan,
            verdict="PLAN",
            fixed_n=design.fixed_n,
            n_cases=len(self.cases),
            population=req.population,
            test_id=self.test_id,
            key=req.key,
            template=tuple(self.prompt.parts),
            plan=plan,
        )

    def _paired_arm(self, req: Requirement, s: Settings) -> _Arm:
        entry = self._baseline.entry(req.key) if self._baseline is not None else None
        if entry is None or self._baseline is None:
            return _Arm(None, None, "", None)
        label = self._baseline.label
        if entry.template:
            self.baseline_prompt = Prompt.from_parts(entry.prompt, list(entry.template))
        if entry.version == self.prompt.version and entry.model == self.model.id:
            return _Arm(entry, None, "unchanged", None, label)
        alpha_cmp = req.compare_false_alarm
        if s.baseline_mode == "stored":
            slots = []
            for case_pos, outcome in zip(entry.trace_cases, entry.trace, strict=False):
                key = entry.case_keys[case_pos] if case_pos < len(entry.case_keys) else ""
                slots.append((self._position.get(key, -1), outcome))
            return _Arm(
                entry, None, "stored", paired_design(req.tolerance, alpha_cmp, req.miss, len(slots)), label, slots
            )
        base = Prompt.from_parts(entry.prompt, list(entry.template))
        for c in self.cases:
            lacking = [v for v in base.variables if v not in c.inputs]
            if lacking:
                raise ConfigError(
                    f"baseline prompt {entry.prompt}@{entry.version[:7]} needs variable {lacking[0]!r}, which case "
                    f"{c.id!r} does not supply, so it cannot be sampled again (rerun mode); compare with the "
                    "stored samples instead: --llmops-baseline-mode stored"
                )
        cap = s.max_samples
        if req.population == "inputs":
            cap = min(cap or len(self.cases), len(self.cases))
        return _Arm(entry, base, "rerun", paired_design(req.tolerance, alpha_cmp, req.miss, cap), label)

    # -- the result ------------------------------------------------------------------------

    def _result(
        self,
        req: Requirement,
        s: Settings,
        verdict: str,
        fixed: int,
        stream: Stream,
        positions: int,
        counts: _Counts,
        calls: list[Sample],
        drawn_before: set[tuple[str, int, int]],
        looked: dict[tuple[str, int, int], None],
        arm: _Arm,
    ) -> Result:
        at_least = req.direction == "at_least"
        k_good, n = counts.k, counts.n
        k = k_good if at_least else n - k_good  # what the check counted on the requirement's scale
        rate = k / n if n else float("nan")
        if n:
            bound = (
                clopper_pearson_lower(k, n, req.false_alarm)
                if at_least
                else clopper_pearson_upper(k, n, req.false_alarm)
            )
        else:
            bound = float("nan")
        verdict_samples = [self._samples[(self.prompt.version, c, i)] for c, i in (stream[j] for j in range(positions))]
        latencies = [x.latency_s for x in verdict_samples if x.error is None]
        per_case = tuple(
            CaseCount(
                c.id,
                counts.case_k[p] if at_least else counts.case_n[p] - counts.case_k[p],
                counts.case_n[p],
                counts.case_err[p],
                counts.example.get(p, ""),
                c.key,
            )
            for p, c in enumerate(self.cases)
        )
        # The trace a later session can pair with (stored mode): every contiguous stream
        # position that has a sample, pass-scale outcome 1 / 0 / e.
        trace, trace_cases = [], []
        j = 0
        while (stream.limit is None or j < stream.limit) and (self.prompt.version, *stream[j]) in self._samples:
            c, i = stream[j]
            try:
                o, kind = self._outcome(req.check, self.prompt.version, c, i)
            except StopSampling:  # a judge in the check, out of budget: the trace ends here
                break
            trace.append("e" if kind != "ok" else ("1" if req.good(o) else "0"))
            trace_cases.append(c)
            j += 1
        new_looked = looked.keys() - drawn_before
        drawn = calls
        calls = [x for x in drawn if not x.cached]  # a replayed sample is no call and costs nothing
        tokens_in = sum(x.input_tokens or 0 for x in calls)
        tokens_out = sum(x.output_tokens or 0 for x in calls)
        comparison = arm.comparison(req, self.prompt.version)
        return Result(
            **self._named(req),
            k=k,
            n=n,
            errors=counts.model_errors + counts.check_errors,
            calls=len(calls),
            replayed=len(drawn) - len(calls),
            rate=rate,
            interval=wilson(k, n),
            bound=bound,
            verdict=verdict,
            fixed_n=fixed,
            n_cases=len(self.cases),
            population=req.population,
            cases=per_case,
            model_errors=counts.model_errors,
            check_errors=counts.check_errors,
            reused=len(looked.keys() & drawn_before),
            unused=len(drawn) - len(new_looked),
            retries=sum(x.attempts - 1 for x in calls),
            baseline_calls=sum(1 for x in calls if x.prompt_version != self.prompt.version),
            latency_p50=_percentile(latencies, 0.5),
            latency_p95=_percentile(latencies, 0.95),
            input_tokens=tokens_in,
            output_tokens=tokens_out,
            error_budget=s.error_budget,
            first_error=counts.first_error,
            test_id=self.test_id,
            cost_usd=cost_of(self._price, tokens_in, tokens_out),
            comparison=comparison,
            key=req.key,
            model_settings=model_identity(self.model),
            template=tuple(self.prompt.parts),
            trace="".join(trace),
            trace_cases=tuple(trace_cases),
            samples=tuple(self._rows(req, list(looked))),
        )

    def _rows(self, req: Requirement, looked: list[tuple[str, int, int]]) -> list[dict[str, Any]]:
        """The drill-down table: one row per sample looked at, outcome on the requirement's scale.

        Redacted here, as built: each case's id and inputs once, each output and reason once.
        """
        from llmops.redact import redact

        words = ("pass", "fail") if req.direction == "at_least" else ("clean", "violation")
        check = redact(req.check.name)
        cases: dict[int, tuple[str, Any]] = {}  # case position -> (id, inputs), shared by its rows
        rows = []
        for version, c, i in looked:
            if c not in cases:
                cases[c] = redact((self.cases[c].id, _jsonable(self.cases[c].inputs)))
            case_id, inputs = cases[c]
            x = self._samples[(version, c, i)]
            o, kind = self._outcome(req.check, version, c, i)
            outcome = f"{kind} error" if kind != "ok" else (words[0] if req.good(o) else words[1])
            rows.append(
                {
                    "case_id": case_id,
                    "sample": i,
                    "prompt_version": version,
                    "inputs": inputs,
                    "output": redact(x.output),
                    "check": check,
                    "outcome": outcome,
                    "reason": redact(o.reason),
                    "latency_s": round(x.latency_s, 4),
                }
            )
        return rows


class _Counts:
    """Counts over the positions the requirement's verdict looked at."""

    def __init__(self) -> None:
        self.k = self.n = self.model_errors = self.check_errors = 0
        self.case_k: defaultdict[int, int] = defaultdict(int)
        self.case_n: defaultdict[int, int] = defaultdict(int)
        self.case_err: defaultdict[int, int] = defaultdict(int)
        self.example: dict[int, str] = {}
        self.first_error = ""
        self.positions = 0  # stream positions looked at

    def add(self, c: int, o: Outcome, kind: str, req: Requirement) -> None:
        if kind != "ok":
            if kind == "model":
                self.model_errors += 1
            else:
                self.check_errors += 1
            self.case_err[c] += 1
            if not self.first_error:
                self.first_error = f"{kind} error: {o.reason}"
            return
        good = req.good(o)
        self.n += 1
        self.k += good
        self.case_n[c] += 1
        self.case_k[c] += good
        if not good and c not in self.example:
            self.example[c] = o.reason or "no reason given"

    @property
    def errors(self) -> int:
        return self.model_errors + self.check_errors

    def blown(self, budget: float, final: bool) -> bool:
        looked = self.n + self.errors
        over = looked > 0 and self.errors > budget * looked
        return over and (final or self.errors >= MIN_ERRORS_TO_ABORT)


class _Arm:
    """The paired comparison of one requirement with its baseline (or nothing to compare)."""

    def __init__(
        self,
        entry: Entry | None,
        base: Prompt | None,
        mode: str,
        design: Any,
        label: str = "",
        stored: list[tuple[int, str]] | None = None,
    ) -> None:
        self.entry = entry
        self.base = base
        self.mode = mode
        self.rule = PairedRule(design) if design is not None else None
        self.label = label
        self.stored = stored or []
        self.stopped = ""  # why the comparison stopped undecided (the session's budget)
        self.j = 0  # next stream position the comparison looks at (rerun)

    def extra_slots(self, slots: list[tuple[int, int]]) -> list[tuple[Prompt, int, int]]:
        """Baseline samples drawn with the requirement's, interleaved (rerun mode)."""
        if self.base is None or self.rule is None or self.rule.verdict is not None:
            return []
        return [(self.base, c, i) for c, i in slots]

    def feed(self, run: Run, req: Requirement, c: int, i: int, looked: dict[tuple[str, int, int], None]) -> None:
        """Observe the pair at the next stream position (both samples are drawn), while undecided."""
        rule = self.rule
        self.j += 1
        if rule is None or self.base is None or rule.verdict is not None:
            return
        new, kind_new = run._outcome(req.check, run.prompt.version, c, i)
        old, kind_old = run._outcome(req.check, self.base.version, c, i)
        looked[(run.prompt.version, c, i)] = None
        looked[(self.base.version, c, i)] = None
        if kind_new == "ok" and kind_old == "ok":
            rule.observe(int(req.good(new)) - int(req.good(old)))

    def run(
        self, run: Run, req: Requirement, s: Settings, stream: Stream, looked: dict[tuple[str, int, int], None]
    ) -> None:
        """Feed pairs in stream order until the comparison decides (the run keeps the calls made)."""
        rule = self.rule
        if rule is None:
            return
        version = run.prompt.version
        if self.mode == "stored":
            # The stored trace is the stream: position j is the baseline's outcome on its
            # case (-1: a case this run no longer has); the new prompt's sample is the next
            # one of that case.  Valid although the baseline stopped where its data said:
            # its outcome at j is independent of everything before j (see llmops.stats.paired).
            count: dict[int, int] = {}
            slots3: list[tuple[int, int, str]] = []
            for c, o in self.stored:
                slots3.append((c, count.get(c, 0), o))
                count[c] = count.get(c, 0) + 1
            j = 0
            while rule.verdict is None and j < len(slots3):
                batch: list[tuple[int, int, str]] = []
                while j < len(slots3) and len(batch) < s.concurrency:
                    batch.append(slots3[j])
                    j += 1
                run._draw([(run.prompt, c, i) for c, i, _ in batch if c >= 0])
                for c, i, o in batch:
                    if rule.verdict is not None:
                        break
                    if c < 0 or o == "e":
                        continue
                    new, kind = run._outcome(req.check, version, c, i)
                    looked[(version, c, i)] = None
                    if kind != "ok":
                        continue
                    rule.observe(int(req.good(new)) - int(o == "1"))
            if rule.verdict is None:
                rule.stop(ERROR)
            return
        base = self.base
        assert base is not None
        while rule.verdict is None:
            limit = stream.limit
            if limit is not None and self.j >= limit:
                rule.stop(ERROR)
                break
            m = s.concurrency if limit is None else min(s.concurrency, limit - self.j)
            slots = [stream[self.j + t] for t in range(m)]
            run._draw([(run.prompt, c, i) for c, i in slots] + [(base, c, i) for c, i in slots])
            for c, i in slots:
                self.feed(run, req, c, i, looked)
                if rule.verdict is not None:
                    break

    def comparison(self, req: Requirement, version: str) -> Comparison | None:
        if self.entry is None:
            return None
        nan = float("nan")
        if self.mode == "unchanged":
            return Comparison(
                self.label, "unchanged", self.entry.version, "unchanged", nan, (nan, nan), 0, 0, 0, 0,
                req.tolerance, req.false_alarm, req.miss,
            )  # fmt: skip
        assert self.rule is not None
        st = self.rule.state
        sign = 1 if req.direction == "at_least" else -1  # report on the requirement's scale
        lo, hi = st.interval()
        interval = (lo, hi) if sign == 1 else (-hi, -lo)
        return Comparison(
            baseline=self.label,
            mode=self.mode,
            base_version=self.entry.version,
            verdict=self.rule.verdict if self.rule.verdict in (REGRESSED, NOT_WORSE) else ERROR,
            difference=sign * st.difference(),
            interval=interval,
            pairs=st.pairs,
            wins=st.wins,
            losses=st.losses,
            ties=st.ties,
            tolerance=req.tolerance,
            false_alarm=self.rule.design.alpha,
            miss=self.rule.design.beta,
            stopped=self.stopped,
        )


def _step(s: Settings) -> int:
    """How many free places in flight make a top-up: a few at a time, fewer hand-overs to the sampler's thread."""
    return max(1, s.concurrency // 8)


def _too_few_cases(req: Requirement, n_cases: int, needed: int, prompt: str) -> str:
    good, bad = _tested(req.direction, req.threshold, req.tolerance)
    return (
        f"{prompt}: population 'inputs' (inputs like these cases): {n_cases} cases are too few to tell "
        f"{good} from {bad} with false-alarm rate {_pct(req.false_alarm)} and miss rate {_pct(req.miss)}; "
        f"{needed} cases are needed (one sample each). Add cases, loosen the tolerance or the rates, or use "
        f"population='cases' for a verdict about these {n_cases} cases"
    )


def _tested(direction: str, threshold: float, tolerance: float) -> tuple[str, str]:
    if direction == "at_least":
        return _pct(threshold), _pct(threshold - tolerance)
    return _pct(threshold), _pct(threshold + tolerance) + " violations"


def _with_message(r: Result) -> Result:
    c = r.comparison
    if c is not None and not c.message:
        c = dataclasses.replace(c, message=describe_comparison(r, c))
    from llmops.redact import redact  # every output channel is built from the Result: no secrets in it

    # The sample rows were redacted as they were made (Run._rows): not walked again.
    out = redact(dataclasses.replace(r, comparison=c, message=describe(r), samples=()))
    return dataclasses.replace(out, samples=r.samples)


def population_words(r: Result) -> str:
    if r.n_cases == 1:
        return ""
    if r.population == "inputs":
        return f" over {r.n_cases} cases (about inputs like these cases; one sample per case)"
    return f" over {r.n_cases} cases (about these cases; each sample a random case)"


def describe(r: Result) -> str:
    """The verdict in words, e.g. "valid JSON in 41 of 50 samples, 82%, 95% interval 70-90%; ..."."""
    word = "at least" if r.direction == "at_least" else "at most"
    lo, hi = r.interval
    rate = f"{100 * r.rate:.0f}%" if r.n else "n/a"
    scale = "" if r.direction == "at_least" else "violation rate "
    head = (
        f"{r.description} in {r.k} of {r.n} samples{population_words(r)}, {scale}{rate}, "
        f"95% interval {100 * lo:.0f}-{100 * hi:.0f}%"
    )
    if r.errors:
        kinds = []
        if r.model_errors:
            kinds.append(f"{r.model_errors} model error{'s' if r.model_errors != 1 else ''}")
        if r.check_errors:
            kinds.append(f"{r.check_errors} check error{'s' if r.check_errors != 1 else ''}")
        head += ", " + " and ".join(kinds) + " left out"
    good, bad = _tested(r.direction, r.threshold, r.tolerance)
    need = f"requirement {word} {_pct(r.threshold)}, tested {good} against {bad}"
    if r.plan is not None:
        p = r.plan
        return (
            f"{head.split(' in 0 of 0 samples')[0]}; {need}; PLAN: about {p['expected']} calls expected, "
            f"{p['p95']} at the 95th percentile, at most {p['max']} (a fixed-size test needs {p['fixed_n']})"
        )
    if r.verdict == ERROR and r.stopped:
        return f"{head}; {need}; ERROR: {r.stopped}; no verdict"
    if r.verdict == ERROR:
        looked = r.n + r.errors
        share = r.errors / looked if looked else 0.0
        return (
            f"{head}; {need}; ERROR: {r.errors} of {looked} samples ({_pct(share)}) ended in errors, more than "
            f"the error budget {_pct(r.error_budget)}; no verdict. First {r.first_error}"
        )
    if r.verdict == FAIL:
        tail = f"FAIL with false-alarm rate <= {_pct(r.false_alarm)}"
    else:
        tail = f"PASS with miss rate <= {_pct(r.miss)}"
    text = f"{head}; {need}; {tail}"
    if r.verdict != PASS:
        bad_cases = sorted(
            (c for c in r.cases if c.n), key=lambda c: (c.k / c.n) * (1 if r.direction == "at_least" else -1)
        )
        if r.n_cases > 1:
            text += ". Worst cases: " + ", ".join(
                f"{c.case_id} {c.k}/{c.n}" + (f" ({_clip(c.example, 80)})" if c.example else "") for c in bad_cases[:5]
            )
        elif bad_cases and bad_cases[0].example:
            text += f". Example: {_clip(bad_cases[0].example, 160)}"
    return text


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_comparison(r: Result, c: Comparison) -> str:
    """The comparison in words: "regressed", "not worse (within tolerance)" or what it would need."""
    word = "at least" if r.direction == "at_least" else "at most"
    what = f"{r.prompt} {c.base_version[:7]} -> {r.prompt_version[:7]}: {r.description} ({word} {_pct(r.threshold)})"
    if c.mode == "unchanged":
        return f"unchanged: {what}: same prompt and model as baseline {c.baseline}; nothing to compare"
    scale = "pass rate" if r.direction == "at_least" else "violation rate"
    lo, hi = c.interval
    numbers = (
        f"{scale} changed by {100 * c.difference:+.1f}% (95% interval {100 * lo:+.1f}% to {100 * hi:+.1f}%) over "
        f"{c.pairs} pairs ({c.wins} better, {c.losses} worse, {c.ties} tied; baseline {c.mode}, {c.baseline})"
    )
    if c.verdict == REGRESSED:
        return f"REGRESSED {what}: {numbers}; worse than the baseline, with false-alarm rate <= {_pct(c.false_alarm)}"
    if c.verdict == NOT_WORSE:
        return (
            f"not worse (within tolerance {_pct(c.tolerance)}) {what}: {numbers}; a drop of {_pct(c.tolerance)} "
            f"or more is ruled out with miss rate <= {_pct(c.miss)}"
        )
    more = " (the stored baseline has no more samples; use --llmops-baseline-mode rerun)" if c.mode == "stored" else ""
    if c.stopped:
        more = f" ({c.stopped})"
    return (
        f"ERROR {what}: could not decide whether it is worse than the baseline within {c.pairs} pairs{more}: "
        f"{numbers}; {'add cases or raise the tolerance' if r.population == 'inputs' else 'raise max_samples or the tolerance'}"
    )
