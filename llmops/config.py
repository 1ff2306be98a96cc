"""One settings object for sampling and statistics.

The pytest plugin builds it from options, ini keys and the marker; library users build it
directly.  Every value is parsed by one function here, so a bad value is rejected the same
way everywhere, quoting the value.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from llmops.errors import ConfigError


def _number(kind: type, text: Any, name: str) -> Any:
    try:
        return kind(text)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: expected a {kind.__name__}, got {text!r}") from None


def probability(name: str) -> Callable[[Any], float]:
    def parse(text: Any) -> float:
        v = _number(float, text, name)
        if not 0 < v < 0.5:
            raise ConfigError(f"{name}: expected a rate in (0, 0.5), got {text!r}")
        return v

    return parse


def fraction(name: str, *, optional: bool = False) -> Callable[[Any], float | None]:
    def parse(text: Any) -> float | None:
        if optional and (text is None or str(text).strip().lower() in ("", "auto")):
            return None
        v = _number(float, text, name)
        if not 0 <= v <= 1:
            raise ConfigError(f"{name}: expected a number in [0, 1], got {text!r}")
        return v

    return parse


def choice(name: str, *values: str) -> Callable[[Any], str]:
    def parse(text: Any) -> str:
        v = str(text).strip().lower()
        if v not in values:
            raise ConfigError(f"{name}: expected one of {', '.join(values)}, got {text!r}")
        return v

    return parse


def default_tolerance(allowed: float) -> float:
    """The tolerance when none is given, from the allowed failure (or violation) rate.

    The smaller of 0.1 and the allowed rate itself: a PASS then means the failure rate is at
    most about double what was asked ("at least 99%" is tested 1% against 2% failures,
    "at most 1%" 1% against 2% violations), and 0.01 when nothing is allowed (rule of three
    at 1%: about 300 clean samples).
    """
    return min(0.1, allowed) if allowed > 0 else 0.01


def positive(kind: type, name: str, *, optional: bool = False) -> Callable[[Any], Any]:
    def parse(text: Any) -> Any:
        if optional and (text is None or text == "" or str(text).lower() == "auto"):
            return None
        v = _number(kind, text, name)
        if v <= 0:
            raise ConfigError(f"{name}: expected a positive {kind.__name__}, got {text!r}")
        return v

    return parse


def non_negative_int(name: str) -> Callable[[Any], int]:
    def parse(text: Any) -> int:
        v = _number(int, text, name)
        if v < 0:
            raise ConfigError(f"{name}: expected an integer >= 0, got {text!r}")
        return int(v)

    return parse


def _price(text: Any) -> tuple[float, float] | None:
    if text in (None, ""):
        return None
    if isinstance(text, (tuple, list)) and len(text) == 2:
        parts = [str(x) for x in text]
    else:
        parts = str(text).split(",")
    try:
        inp, out = (float(x) for x in parts)
    except ValueError:
        raise ConfigError(
            f"price: expected 'INPUT,OUTPUT' in USD per million tokens, e.g. '0.15,0.60', got {text!r}"
        ) from None
    if inp < 0 or out < 0:
        raise ConfigError(f"price: prices cannot be negative, got {text!r}")
    return (inp, out)


def _budget(text: Any) -> tuple[str, float] | None:
    """'500' (model calls) or '$2.50' (USD)."""
    if text in (None, ""):
        return None
    if isinstance(text, tuple):
        return text
    raw = str(text).strip()
    try:
        if raw.startswith("$"):
            value, kind = float(raw[1:]), "usd"
        else:
            value, kind = float(int(raw)), "calls"
    except ValueError:
        raise ConfigError(f"budget: expected a number of calls (500) or dollars ($2.50), got {text!r}") from None
    if value <= 0:
        raise ConfigError(f"budget: expected a positive amount, got {text!r}")
    return (kind, value)


def _text(text: Any) -> str | None:
    return None if text in (None, "") else str(text)


@dataclass(frozen=True)
class Option:
    parse: Callable[[Any], Any]
    help: str
    session: bool = False  # a whole-session setting: not a marker or expect() keyword


def on_off(name: str) -> Callable[[Any], bool]:
    def parse(text: Any) -> bool:
        value = str(text).strip().lower()
        if value in ("on", "true", "1", "yes"):
            return True
        if value in ("off", "false", "0", "no"):
            return False
        raise ConfigError(f"{name}: expected on or off, got {text!r}")

    return parse


#: Every setting: its parser and its help text.  The plugin turns each into
#: ``--llmops-<name>`` (dashes), ini key ``llmops_<name>`` and a marker keyword.
OPTIONS: dict[str, Option] = {
    "model": Option(_text, 'model to sample: "provider:model" (LangChain init_chat_model) or "local:smollm2"'),
    "tolerance": Option(
        fraction("tolerance", optional=True),
        "how far past a requirement a rate may be before a PASS is a miss (default: the smaller of 0.1 "
        "and the allowed failure rate, 0.01 for at_most=0)",
    ),
    "population": Option(
        choice("population", "cases", "inputs"),
        "what a verdict over several cases speaks about: 'cases' (these cases; default) or 'inputs' "
        "(inputs like these cases; needs enough cases)",
    ),
    "false_alarm": Option(
        probability("false_alarm"), "chance of failing a prompt that meets its requirement (default 0.01)"
    ),
    "miss": Option(probability("miss"), "chance of passing a prompt worse than requirement - tolerance (default 0.05)"),
    "max_samples": Option(
        positive(int, "max_samples", optional=True),
        "cap on samples per requirement (default: 1.2x the fixed-size design; for population inputs, the number of cases)",
    ),
    "concurrency": Option(
        positive(int, "concurrency"),
        "model calls in flight at once, for the whole session (shared by pytest-xdist workers; default 8)",
    ),
    "overshoot": Option(
        non_negative_int("overshoot"),
        "samples a requirement may draw beyond those that could decide it, so that calls stay in flight when "
        "latency has a long tail; drawn but not looked at, they are reported as unused (default 0: never)",
    ),
    "prefetch": Option(
        on_off("prefetch"),
        "sample every test's requirements side by side under the session's concurrency: before the tests "
        "run, each llmops test's body runs once to record its requirements (bodies and fixtures run twice); "
        "the tests then take the samples drawn for them (default off)",
        session=True,
    ),
    "timeout": Option(positive(float, "timeout"), "seconds per model call before it counts as failed (default 60)"),
    "retries": Option(non_negative_int("retries"), "retries of a transient model error (default 3)"),
    "error_budget": Option(
        fraction("error_budget"),
        "largest share of samples that may end in errors before a requirement is an ERROR (default 0.1)",
    ),
    "seed": Option(non_negative_int("seed"), "seed for simulated models and sample order (default 0)"),
    "price": Option(
        _price,
        "USD per million input and output tokens, 'IN,OUT', to report cost (default: unknown; local models are free)",
    ),
    "baseline_mode": Option(
        choice("baseline_mode", "rerun", "stored"),
        "how the baseline is compared: 'rerun' samples the baseline prompt again on the same cases, "
        "interleaved (default); 'stored' uses the baseline run's stored samples",
    ),
    "store_samples": Option(
        non_negative_int("store_samples"),
        "after a verdict, draw the requirement's samples up to this many, so a later session can compare "
        "with them (--llmops-baseline-mode stored); set it on the session you promote (default 0)",
    ),
    "cache": Option(
        choice("cache", "off", "read", "write", "readwrite"),
        "response cache: off, read (replay only), write (record only) or readwrite (default)",
        session=True,
    ),
    "cache_path": Option(_text, "response cache file (default .llmops/cache.sqlite under the rootdir)", session=True),
    "budget": Option(
        _budget,
        "stop drawing once the session has made this many model calls (e.g. 500) or spent this much ($2.50); "
        "requirements left undecided end as ERROR",
        session=True,
    ),
    "plan": Option(
        on_off("plan"),
        "print the expected, p95 and maximum calls (and cost) per requirement without calling a model",
        session=True,
    ),
    "prices": Option(
        _text, "a JSON file of USD per million input/output tokens by model, over the built-in table", session=True
    ),
    "report_md": Option(_text, "write the Markdown report (the PR comment) to this file", session=True),
    "report_html": Option(_text, "write the self-contained HTML report to this file", session=True),
    "optimize": Option(
        choice("optimize", "off", "on-regression", "on-fail"),
        "after a test, search for a better prompt when it regressed (on-regression) or also when it failed "
        "(on-fail); the candidate is proposed, never applied (default off)",
    ),
    "optimizer_model": Option(_text, "the model that proposes rewrites (default: the model under test)"),
    "optimizer_budget": Option(
        positive(int, "optimizer_budget"),
        "the most calls to the model under test that one optimizer search may spend, its final scoring "
        "on held-out cases included (default 3000)",
    ),
    "tracking": Option(
        on_off("tracking"), "log each session to MLflow: on or off (default on; env LLMOPS_TRACKING)", session=True
    ),
    "tracking_uri": Option(
        _text, "MLflow tracking URI (MLFLOW_TRACKING_URI wins when set; default: MLflow's local store)", session=True
    ),
    "experiment": Option(_text, "MLflow experiment name (default llmops)", session=True),
    "baseline": Option(
        _text, "compare with a baseline: an alias set by `llmops promote`, a run id, or a results .json", session=True
    ),
    "promote": Option(_text, "after logging, mark this session's run as the baseline with this alias", session=True),
    "report_json": Option(
        _text,
        "write the session's results (the record MLflow gets) to this .json file, tracking on or off; "
        "usable as --llmops-baseline",
        session=True,
    ),
    "allow_missing": Option(
        on_off("allow_missing"),
        "let requirements that are in the baseline but not evaluated now pass the gate (default off)",
        session=True,
    ),
    "family_false_alarm": Option(
        lambda text: None if text in (None, "") else probability("family_false_alarm")(text),
        "split this false-alarm rate over the whole session's requirements (Bonferroni) instead of "
        "giving each its own false_alarm",
        session=True,
    ),
}


@dataclass(frozen=True)
class Settings:
    model: str | None = None
    tolerance: float | None = None  # None: default_tolerance() of each requirement
    population: str = "cases"
    false_alarm: float = 0.01
    miss: float = 0.05
    max_samples: int | None = None
    # At about a second per call, 8 in flight is about 480 requests a minute: inside the entry
    # tiers of hosted APIs (OpenAI's first tier allows 500 a minute for its small models); a 429
    # is retried after its Retry-After.  Raise it for a local server or a higher tier.
    concurrency: int = 8
    overshoot: int = 0
    prefetch: bool = False
    timeout: float = 60.0
    retries: int = 3
    error_budget: float = 0.1
    seed: int = 0
    baseline_mode: str = "rerun"
    store_samples: int = 0
    optimize: str = "off"
    optimizer_model: str | None = None
    optimizer_budget: int = 3000
    price: tuple[float, float] | None = None
    tracking: bool = True
    tracking_uri: str | None = None
    experiment: str = "llmops"
    baseline: str | None = None
    promote: str | None = None
    report_json: str | None = None
    report_md: str | None = None
    report_html: str | None = None
    cache: str = "readwrite"
    cache_path: str | None = None
    budget: tuple[str, float] | None = None
    plan: bool = False
    prices: str | None = None
    allow_missing: bool = False
    family_false_alarm: float | None = None

    def replace(self, where: str = "settings", *, session: bool = False, **changes: Any) -> Settings:
        """A copy with ``changes`` parsed and applied; unknown names are rejected by name.

        Session-wide settings (tracking, baseline, ...) are accepted only with ``session=True``.
        """
        parsed: dict[str, Any] = {}
        for key, value in changes.items():
            if key not in OPTIONS or (OPTIONS[key].session and not session):
                valid = ", ".join(sorted(k for k, o in OPTIONS.items() if session or not o.session))
                raise ConfigError(f"{where}: unknown keyword {key!r}; valid keywords: {valid}")
            parsed[key] = (
                value
                if value is None and key in ("model", "max_samples", "price", "tolerance")
                else OPTIONS[key].parse(value)
            )
        return dataclasses.replace(self, **parsed)  # type: ignore[arg-type]

    def as_params(self) -> dict[str, Any]:
        params = dataclasses.asdict(self)
        if self.tolerance is None:
            params["tolerance"] = "auto"  # default_tolerance() per requirement
        return params
