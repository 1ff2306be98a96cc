"""Requirements and the loop: draw -> check -> decide -> draw more or stop.

A ``Run`` is one prompt sampled on one or more cases by one model.  ``run.expect(check,
at_least=...)`` walks the run's samples in draw order through the sequential test and
draws more only when the test has not decided, and never more than it could look at.
Several requirements on one run share the samples already drawn.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from llmops.cases import Case, as_cases
from llmops.checks.base import Check, Outcome
from llmops.config import Settings
from llmops.errors import CheckError, ConfigError, ErrorBudgetExceeded, RequirementFailed
from llmops.models import Model
from llmops.prompts import Prompt
from llmops.sampling import Request, Sample, Sampler
from llmops.stats import FAIL, PASS, clopper_pearson_lower, clopper_pearson_upper, wilson
from llmops.stats.clustered import cases_needed, clustered_design, clustered_interval, mean_bounds

#: Errors tolerated before the budget is enforced mid-run (a few early errors say little).
MIN_ERRORS_TO_ABORT = 5


@dataclass(frozen=True)
class CaseCount:
    case_id: str
    k: int
    n: int
    errors: int
    example: str = ""  # the reason of one failing sample, for the failure message


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
    errors: int
    calls: int  # samples drawn to reach this verdict (errors included)
    rate: float  # k / n, or the mean per-case rate for several cases
    interval: tuple[float, float]  # 95% two-sided, for display
    bound: float  # exact one-sided bound on the side of the requirement
    verdict: str  # PASS, FAIL or ERROR
    conclusive: bool
    fixed_n: int  # calls a fixed-size design with the same error rates would use
    n_cases: int
    cases: tuple[CaseCount, ...] = ()
    latency_p50: float | None = None
    latency_p95: float | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    error_budget: float = 0.1
    first_error: str = ""
    test_id: str = ""
    message: str = ""
    cost_usd: float | None = None  # None when no price is known for the model
    paired: tuple[CaseCount, ...] = ()  # fixed-size per-case counts for the baseline comparison
    compare_calls: int = 0  # samples drawn for the comparison beyond what the verdict needed
    template: tuple[tuple[str, str], ...] = ()  # the prompt's (role, template) parts, for the registry
    samples: tuple[dict[str, Any], ...] = ()  # one row per sample used: the drill-down table

    @property
    def key(self) -> str:
        """What a baseline is matched on: prompt, check with its arguments, direction."""
        import json

        params = json.dumps({k: _jsonable(v) for k, v in self.check_params.items()}, sort_keys=True)
        return f"{self.prompt}|{self.check}{params}|{self.direction}"

    @property
    def passed(self) -> bool:
        return self.verdict == PASS

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["interval"] = list(self.interval)
        d["check_params"] = {k: _jsonable(v) for k, v in self.check_params.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Result:
        d = dict(d)
        d["interval"] = tuple(d["interval"])
        d["cases"] = tuple(CaseCount(**c) for c in d.get("cases", ()))
        d["paired"] = tuple(CaseCount(**c) for c in d.get("paired", ()))
        d["template"] = tuple(tuple(p) for p in d.get("template", ()))
        d["samples"] = tuple(d.get("samples", ()))
        return cls(**d)


def _jsonable(v: Any) -> Any:
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return getattr(v, "__name__", None) or repr(v)


def _pct(x: float) -> str:
    """A requirement level as written: 95%, 99.9%, 0.5%."""
    return f"{round(100 * x, 2):g}%"


def _percentile(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


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
    ) -> None:
        self.prompt = prompt
        self.cases: list[Case] = as_cases(cases)
        for c in self.cases:
            prompt.check_inputs(c.inputs, c.id)
        self.model = model
        self.settings = settings
        self.test_id = test_id
        self._on_result = on_result
        self._on_draw = on_draw
        self._sampler = Sampler(
            model,
            concurrency=settings.concurrency,
            timeout=settings.timeout,
            retries=settings.retries,
            seed=settings.seed,
        )
        self._messages = {c.id: prompt.render(c.inputs) for c in self.cases}
        self.samples: dict[str, list[Sample]] = {c.id: [] for c in self.cases}
        self._outcomes: dict[tuple[int, str, int], Outcome] = {}
        self.results: list[Result] = []

    # -- drawing ---------------------------------------------------------------------------

    @property
    def calls(self) -> int:
        return sum(len(s) for s in self.samples.values())

    def _draw(self, per_case: dict[str, int]) -> None:
        requests = []
        for case_id, count in per_case.items():
            start = len(self.samples[case_id])
            requests += [Request(case_id, start + i, self._messages[case_id]) for i in range(count)]
        for s in self._sampler.draw(requests, seed_key=self.prompt.version):
            self.samples[s.case_id].append(s)
        if self._on_draw is not None:
            self._on_draw(len(requests))

    def _outcome(self, check: Check, case: Case, sample: Sample) -> Outcome:
        key = (id(check), case.id, sample.index)
        if key not in self._outcomes:
            if sample.error is not None:
                self._outcomes[key] = Outcome("error", sample.error)
            else:
                assert sample.output is not None
                self._outcomes[key] = check(sample.output, case)
        return self._outcomes[key]

    # -- requirements ----------------------------------------------------------------------

    def expect(
        self,
        check: Check,
        *,
        at_least: float | None = None,
        at_most: float | None = None,
        **overrides: Any,
    ) -> Result:
        """Sample until the requirement is decided; raise RequirementFailed on FAIL.

        ``at_least=0.95``: the check passes in at least 95% of samples.  ``at_most=0.01``:
        the check (a detector) fires in at most 1% of samples.  ``overrides`` take any
        setting (tolerance, false_alarm, miss, max_samples, ...) for this requirement.
        """
        __tracebackhide__ = True  # pytest shows the test's line, not ours
        result = self.evaluate(check, at_least=at_least, at_most=at_most, **overrides)
        if result.verdict == FAIL:
            raise RequirementFailed(result.message, result)
        return result

    def evaluate(
        self,
        check: Check,
        *,
        at_least: float | None = None,
        at_most: float | None = None,
        **overrides: Any,
    ) -> Result:
        """Like ``expect`` but returns a FAIL instead of raising it."""
        __tracebackhide__ = True
        if (at_least is None) == (at_most is None):
            raise ConfigError("give exactly one of at_least= (a rate to reach) or at_most= (a rate not to exceed)")
        if not isinstance(check, Check):
            raise CheckError(f"expect() needs a check (e.g. checks.json_valid()), got {check!r}")
        settings = self.settings.replace("expect()", **overrides) if overrides else self.settings
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
        # Everything is computed on the pass-rate scale: for at_most, a clean sample is a pass.
        theta = threshold if direction == "at_least" else 1 - threshold
        good = (lambda o: o.passed) if direction == "at_least" else (lambda o: not o.passed)
        if len(self.cases) == 1:
            state = self._sequential(check, theta, good, settings)
        else:
            state = self._clustered(check, theta, good, settings)
        result = self._result(check, direction, threshold, settings, state)
        self.results.append(result)
        if self._on_result is not None:
            self._on_result(result)
        if result.verdict == "ERROR":
            raise ErrorBudgetExceeded(result.message, result)
        return result

    def _budget_blown(self, errors: int, consumed: int, budget: float, final: bool) -> bool:
        over = consumed > 0 and errors > budget * consumed
        return over and (final or errors >= MIN_ERRORS_TO_ABORT)

    def _sequential(self, check: Check, theta: float, good: Callable[[Outcome], bool], s: Settings) -> dict[str, Any]:
        from llmops.stats import sequential_design

        design = sequential_design(theta, s.tolerance, s.false_alarm, s.miss, s.max_samples)
        case = self.cases[0]
        samples = self.samples[case.id]
        k = n = errors = pos = 0
        verdict: str | None = None
        while verdict is None:
            while pos < len(samples) and verdict is None:
                o = self._outcome(check, case, samples[pos])
                pos += 1
                if o.status == "error":
                    errors += 1
                    if self._budget_blown(errors, pos, s.error_budget, final=False):
                        verdict = "ERROR"
                    continue
                n += 1
                k += good(o)
                verdict = design.decide(k, n)
            if verdict is None:
                # Draw only as many as could possibly matter, and at most `concurrency` at once.
                self._draw({case.id: max(1, min(s.concurrency, design.min_more(k, n)))})
        if verdict != "ERROR" and self._budget_blown(errors, pos, s.error_budget, final=True):
            verdict = "ERROR"
        return {
            "verdict": verdict,
            "conclusive": verdict != "ERROR",
            "k": k,
            "n": n,
            "errors": errors,
            "calls": pos,
            "fixed_n": design.fixed_n,
            "used": {case.id: pos},
            "good": good,
        }

    def _clustered(self, check: Check, theta: float, good: Callable[[Outcome], bool], s: Settings) -> dict[str, Any]:
        design = clustered_design(theta, s.tolerance, s.false_alarm, s.miss, len(self.cases), s.max_samples)
        verdict: str | None = None
        conclusive = False
        rounds = 0
        for look in design.looks:
            short = {c.id: look - len(self.samples[c.id]) for c in self.cases if len(self.samples[c.id]) < look}
            if short:
                self._draw(short)
            rounds = look
            k, n, errors, rates, any_fail = self._count(check, good, rounds)
            if self._budget_blown(errors, rounds * len(self.cases), s.error_budget, final=False):
                verdict = "ERROR"
                break
            verdict, conclusive = design.decide(rates, rounds, any_fail)
            if verdict is not None:
                break
        k, n, errors, rates, _ = self._count(check, good, rounds)
        calls = rounds * len(self.cases)
        if verdict != "ERROR" and self._budget_blown(errors, calls, s.error_budget, final=True):
            verdict = "ERROR"
        return {
            "verdict": verdict,
            "conclusive": conclusive,
            "k": k,
            "n": n,
            "errors": errors,
            "calls": calls,
            "fixed_n": design.max_calls,
            "used": {c.id: rounds for c in self.cases},
            "good": good,
            "rates": rates,
        }

    def _count(
        self, check: Check, good: Callable[[Outcome], bool], rounds: int
    ) -> tuple[int, int, int, list[float], bool]:
        k = n = errors = 0
        rates: list[float] = []
        any_fail = False
        for c in self.cases:
            ck = cn = 0
            for smp in self.samples[c.id][:rounds]:
                o = self._outcome(check, c, smp)
                if o.status == "error":
                    errors += 1
                    continue
                cn += 1
                ck += good(o)
            k, n = k + ck, n + cn
            any_fail = any_fail or ck < cn
            if cn:
                rates.append(ck / cn)
        return k, n, errors, rates, any_fail

    # -- the result ------------------------------------------------------------------------

    def _compare_size(self, s: Settings) -> int:
        """Samples per case kept for a baseline comparison, when this session compares or promotes."""
        if not (s.baseline or s.promote):
            return 0
        return max(2, math.ceil(s.compare_samples / len(self.cases)))

    def _result(self, check: Check, direction: str, threshold: float, s: Settings, st: dict[str, Any]) -> Result:
        good = st["good"]
        at_least = direction == "at_least"
        per_case = []
        used: list[Sample] = []
        drawn: list[Sample] = []  # used, plus samples drawn only for the baseline comparison
        rows: list[dict[str, Any]] = []
        paired: list[CaseCount] = []
        compare_k = self._compare_size(s) if st["verdict"] != "ERROR" else 0
        if compare_k:
            # The comparison looks at the first K samples of every case, K fixed in advance:
            # counts cut where the sequential test happened to stop would be biased by it.
            self._draw(
                {c.id: compare_k - len(self.samples[c.id]) for c in self.cases if len(self.samples[c.id]) < compare_k}
            )
        for c in self.cases:
            smp = self.samples[c.id][: max(st["used"][c.id], compare_k)]
            drawn += smp
            if compare_k:
                first = [self._outcome(check, c, x) for x in smp[:compare_k]]
                answered_k = [o for o in first if o.status != "error"]
                good_k = sum(good(o) for o in answered_k)
                paired.append(
                    CaseCount(
                        c.id,
                        good_k if at_least else len(answered_k) - good_k,
                        len(answered_k),
                        len(first) - len(answered_k),
                    )
                )
            smp_verdict = smp[: st["used"][c.id]]
            used += smp_verdict
            ok = [self._outcome(check, c, x) for x in smp]
            rows += [
                {
                    "case_id": c.id,
                    "sample": x.index,
                    "inputs": _jsonable(c.inputs),
                    "output": x.output,
                    "check": check.name,
                    "outcome": o.status,
                    "reason": o.reason,
                    "latency_s": round(x.latency_s, 4),
                }
                for x, o in zip(smp, ok, strict=True)
            ]
            ok = ok[: len(smp_verdict)]
            answered = [o for o in ok if o.status != "error"]
            n_good = sum(good(o) for o in answered)
            bad_reason = next((o.reason for o in answered if not good(o)), "")
            count = n_good if at_least else len(answered) - n_good
            per_case.append(CaseCount(c.id, count, len(answered), len(ok) - len(answered), bad_reason))
        k_good, n = st["k"], st["n"]
        k = k_good if at_least else n - k_good  # report what the check counted
        if len(self.cases) == 1:
            rate = k / n if n else float("nan")
            interval = wilson(k, n)
            bound = (
                (clopper_pearson_lower(k, n, s.false_alarm) if at_least else clopper_pearson_upper(k, n, s.false_alarm))
                if n
                else float("nan")
            )
        else:
            rates = [c.k / c.n for c in per_case if c.n]
            rate = sum(rates) / len(rates) if rates else float("nan")
            interval = clustered_interval(rates)
            lower, upper = mean_bounds(rates, s.false_alarm, s.false_alarm)
            bound = lower if at_least else upper
        latencies = [x.latency_s for x in used if x.error is None]
        worst = sorted(per_case, key=lambda c: (c.k / c.n if c.n else 0.0) * (1 if at_least else -1))
        result = Result(
            prompt=self.prompt.name,
            prompt_version=self.prompt.version,
            model=self.model.id,
            check=check.name,
            check_params=dict(check.params),
            description=check.description,
            direction=direction,
            threshold=threshold,
            tolerance=s.tolerance,
            false_alarm=s.false_alarm,
            miss=s.miss,
            k=k,
            n=n,
            errors=st["errors"],
            calls=st["calls"],
            rate=rate,
            interval=interval,
            bound=bound,
            verdict=st["verdict"],
            conclusive=st["conclusive"],
            fixed_n=st["fixed_n"],
            n_cases=len(self.cases),
            cases=tuple(worst if len(self.cases) > 1 else per_case),
            latency_p50=_percentile(latencies, 0.5),
            latency_p95=_percentile(latencies, 0.95),
            input_tokens=sum(x.input_tokens or 0 for x in used),
            output_tokens=sum(x.output_tokens or 0 for x in used),
            test_id=self.test_id,
            error_budget=s.error_budget,
            first_error=next((x.error for x in used if x.error), ""),
            cost_usd=_cost(self.model.id, s.price, drawn),
            paired=tuple(paired),
            compare_calls=sum(max(0, compare_k - st["used"][c.id]) for c in self.cases) if compare_k else 0,
            template=tuple(self.prompt.parts),
            samples=tuple(rows),
        )
        return _with_message(result)


def _cost(model_id: str, price: tuple[float, float] | None, samples: list[Sample]) -> float | None:
    """USD for these samples' tokens, when the price is known (the embedded model is free)."""
    if model_id.startswith("local:"):
        return 0.0
    if price is None:
        return None
    tokens_in = sum(x.input_tokens or 0 for x in samples)
    tokens_out = sum(x.output_tokens or 0 for x in samples)
    return (tokens_in * price[0] + tokens_out * price[1]) / 1e6


def _with_message(r: Result) -> Result:
    import dataclasses

    return dataclasses.replace(r, message=describe(r))


def describe(r: Result) -> str:
    """The verdict in words, e.g. "valid JSON in 41 of 50 samples, 82%, 95% interval 70-90%; ..."."""
    word = "at least" if r.direction == "at_least" else "at most"
    over = f" over {r.n_cases} cases" if r.n_cases > 1 else ""
    lo, hi = r.interval
    rate = f"{100 * r.rate:.0f}%" if r.n else "n/a"
    head = f"{r.description} in {r.k} of {r.n} samples{over}, {rate}, 95% interval {100 * lo:.0f}-{100 * hi:.0f}%"
    if r.n_cases > 1:
        head += " (clustered by case; about inputs like these cases)"
    if r.errors:
        head += f", {r.errors} error{'s' if r.errors != 1 else ''} left out"
    need = f"requirement {word} {_pct(r.threshold)} (tolerance {_pct(r.tolerance)})"
    if r.verdict == "ERROR":
        share = r.errors / r.calls if r.calls else 0.0
        return (
            f"{head}; {need}; ERROR: {r.errors} of {r.calls} calls ({_pct(share)}) failed, more than the "
            f"error budget {_pct(r.error_budget)}; no verdict. First error: {r.first_error}"
        )
    if not r.conclusive:
        rates = [c.k / c.n for c in r.cases if c.n]
        mean = sum(rates) / len(rates) if rates else 0.0
        sd = (sum((x - mean) ** 2 for x in rates) / max(len(rates) - 1, 1)) ** 0.5
        needed = cases_needed(r.threshold, r.tolerance, r.false_alarm, r.miss, spread=max(sd, 0.1))
        mid = r.threshold - r.tolerance / 2 if r.direction == "at_least" else r.threshold + r.tolerance / 2
        tail = (
            f"{r.verdict}, inconclusive: {r.n_cases} cases are too few to hold false-alarm "
            f"{_pct(r.false_alarm)} and miss {_pct(r.miss)}, so the observed rate was compared with "
            f"{_pct(mid)}; about {needed} cases would be needed"
        )
    elif r.verdict == FAIL:
        tail = f"FAIL with false-alarm rate <= {_pct(r.false_alarm)}"
    else:
        tail = f"PASS with miss rate <= {_pct(r.miss)}"
    text = f"{head}; {need}; {tail}"
    if r.n_cases > 1 and r.verdict != PASS:
        worst = [c for c in r.cases[:5] if c.n]
        text += ". Worst cases: " + ", ".join(
            f"{c.case_id} {c.k}/{c.n}" + (f" ({c.example[:60]})" if c.example else "") for c in worst
        )
    elif r.n_cases == 1 and r.verdict == FAIL and r.cases and r.cases[0].example:
        text += f". Example: {r.cases[0].example[:120]}"
    return text
