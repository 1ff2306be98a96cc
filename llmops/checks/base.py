"""Check protocol, Outcome, and the ``@check`` decorator that builds checks from factories."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from llmops.cases import Case
from llmops.errors import CheckError, StopSampling

Status = Literal["pass", "fail", "error"]


@dataclass(frozen=True)
class Outcome:
    """What a check says of one sample: pass, fail or error, with a reason and optional score."""

    status: Status
    reason: str = ""
    score: float | None = None

    @property
    def passed(self) -> bool:
        return self.status == "pass"


@runtime_checkable
class Check(Protocol):
    name: str
    params: Mapping[str, Any]
    description: str
    needs_expected: bool

    def __call__(self, output: str, case: Case) -> Outcome: ...


@dataclass(frozen=True, eq=False)
class FunctionCheck:
    """A check made by ``@check``: the inner function plus the arguments that built it."""

    name: str
    params: Mapping[str, Any]
    description: str
    fn: Callable[[str, Case], Any]
    needs_expected: bool = False
    takes_case: bool = field(default=False, repr=False)

    def __call__(self, output: str, case: Case) -> Outcome:
        try:
            result = self.fn(output, case) if self.takes_case else self.fn(output)  # type: ignore[call-arg,misc]
        except StopSampling:
            raise  # the session's budget, spent by a judge this check asked: no verdict, not a check error
        except Exception as e:
            return Outcome("error", f"check {self.name} raised {type(e).__name__}: {e}")
        return to_outcome(result, self.name)


def to_outcome(result: Any, name: str) -> Outcome:
    if isinstance(result, Outcome):
        return result
    if isinstance(result, bool):
        return Outcome("pass" if result else "fail")
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], bool):
        return Outcome("pass" if result[0] else "fail", str(result[1]))
    return Outcome("error", f"check {name} returned {type(result).__name__}; return a bool, (bool, reason) or Outcome")


def check(
    factory: Callable[..., Callable[..., Any]] | None = None,
    *,
    description: str | None = None,
    needs_expected: bool = False,
) -> Any:
    """Turn a check factory into a function that builds recorded checks.

    The factory takes the check's settings and returns the function that judges one
    output, ``fn(output)`` or ``fn(output, case)``, returning a bool, ``(bool, reason)``
    or an ``Outcome``::

        @check(description="at most {limit} words")
        def max_words(limit: int = 50):
            return lambda output: len(output.split()) <= limit

        run.expect(max_words(limit=20), at_least=0.9)

    The arguments are recorded on the check (``params``), so reports and tracking can
    show exactly which check ran.  ``description`` is formatted with them.
    """

    def wrap(f: Callable[..., Callable[..., Any]]) -> Callable[..., FunctionCheck]:
        sig = inspect.signature(f)

        @functools.wraps(f)
        def build(*args: Any, **kwargs: Any) -> FunctionCheck:
            try:
                bound = sig.bind(*args, **kwargs)
            except TypeError as e:
                raise CheckError(f"check {f.__name__}: {e}") from None
            bound.apply_defaults()
            params = dict(bound.arguments)
            inner = f(*bound.args, **bound.kwargs)
            if not callable(inner):
                raise CheckError(f"check factory {f.__name__} must return a function of (output) or (output, case)")
            try:
                n_params = len(inspect.signature(inner).parameters)
            except (TypeError, ValueError):
                n_params = 1
            text = (description or f.__name__.replace("_", " ")).format(**{k: _short(v) for k, v in params.items()})
            return FunctionCheck(f.__name__, params, text, inner, needs_expected, takes_case=n_params >= 2)

        return build

    return wrap(factory) if factory is not None else wrap


class _Short(str):
    def __repr__(self) -> str:
        return str(self)


def _short(v: Any) -> Any:
    """Long parameter values (a whole JSON Schema) are elided in descriptions."""
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    text = repr(v)
    return _Short(text if len(text) <= 40 else text[:37] + "...")
