"""Accuracy checks: compare the output with an expected value (given, or the case's ``expected``)."""

from __future__ import annotations

import math
import re
import unicodedata
from typing import Any

from llmops.cases import Case
from llmops.checks.base import Outcome, check
from llmops.checks.format import parse_json
from llmops.errors import CheckError

_MISSING = object()


def _expected(given: Any, case: Case, name: str) -> Any:
    if given is not None:
        return given
    if case.expected is None:
        raise CheckError(f"check {name} needs an expected value: give Case(expected=...) or {name}(expected=...)")
    return case.expected


def normalize(text: str) -> str:
    """Lower case, no accents, punctuation as spaces, single spaces."""
    text = unicodedata.normalize("NFKD", str(text))
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    text = re.sub(r"[^\w\s]", " ", text)
    return " ".join(text.split())


@check(description="exactly the expected answer", needs_expected=True)
def exact(expected: str | None = None):  # type: ignore[no-untyped-def]
    def run(output: str, case: Case) -> Outcome:
        want = str(_expected(expected, case, "exact"))
        got = output.strip()
        return Outcome("pass") if got == want else Outcome("fail", f"got {got[:60]!r}, expected {want!r}")

    return run


@check(description="the expected answer (normalised)", needs_expected=True)
def normalized_exact(expected: str | None = None):  # type: ignore[no-untyped-def]
    def run(output: str, case: Case) -> Outcome:
        want = normalize(_expected(expected, case, "normalized_exact"))
        got = normalize(output)
        return Outcome("pass") if got == want else Outcome("fail", f"got {got[:60]!r}, expected {want!r}")

    return run


@check(description="containing {text}", needs_expected=True)
def contains(text: str | None = None, case_sensitive: bool = True):  # type: ignore[no-untyped-def]
    def run(output: str, case: Case) -> Outcome:
        want = str(_expected(text, case, "contains"))
        hay, needle = (output, want) if case_sensitive else (output.lower(), want.lower())
        return Outcome("pass", f"found {want!r}") if needle in hay else Outcome("fail", f"{want!r} not found")

    return run


_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?")


def extract_number(text: str) -> float | None:
    """The last number in free text ("... so the answer is 1,250." -> 1250.0), or None."""
    found = _NUMBER.findall(text)
    if not found:
        return None
    return float(found[-1].replace(",", ""))


@check(description="the expected number", needs_expected=True)
def numeric(expected: float | None = None, tolerance: float = 1e-6):  # type: ignore[no-untyped-def]
    def run(output: str, case: Case) -> Outcome:
        want = float(_expected(expected, case, "numeric"))
        got = extract_number(output)
        if got is None:
            return Outcome("fail", "no number in the output")
        ok = math.isclose(got, want, abs_tol=tolerance, rel_tol=0)
        return Outcome("pass" if ok else "fail", f"got {got:g}, expected {want:g}", score=abs(got - want))

    return run


def _field(data: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return _MISSING
    return data


@check(description="JSON field {path} equal to the expected value", needs_expected=True)
def json_field(path: str, expected: Any = None, normalized: bool = True):  # type: ignore[no-untyped-def]
    """JSON output whose field at dotted ``path`` equals ``expected`` (or the case's
    expected value; if that is a dict, its entry for ``path``)."""

    def run(output: str, case: Case) -> Outcome:
        want = expected
        if want is None:
            want = _expected(None, case, "json_field")
            if isinstance(want, dict):
                want = want.get(path)
        try:
            got = _field(parse_json(output), path)
        except ValueError:
            return Outcome("fail", "not JSON")
        if got is _MISSING:
            return Outcome("fail", f"no field {path}")
        same = normalize(str(got)) == normalize(str(want)) if normalized else got == want
        return Outcome("pass" if same else "fail", f"{path}={got!r}, expected {want!r}")

    return run
