"""The numbers of each requirement as JUnit properties, and ERROR kept apart from FAIL.

``pytest --junitxml`` writes a ``<property>`` for each of a test's user properties; the
plugin adds these (a few short values per requirement, no sample rows) to the test's last
report.  A test that could not be judged (too many model errors, an undecided comparison
with the baseline, a broken setup) is an ``<error>``, not a ``<failure>``:
``mark_errors`` rewrites the file pytest wrote, since pytest reports every failure in a
test's body as a ``<failure>``.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from llmops.evaluation import Result
from llmops.report._format import requirement

__all__ = ["ERROR_PROPERTY", "PREFIX", "mark_errors", "properties"]

PREFIX = "llmops"
#: Set on a test that raised an llmops error: the name of the error.
ERROR_PROPERTY = f"{PREFIX}.error"


def _num(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "nan"
    return f"{x:.4g}"


def properties(results: Sequence[Result]) -> list[tuple[str, str]]:
    """``llmops.<i>.<name>`` for the i-th requirement of a test (1-based): short values only."""
    out: list[tuple[str, str]] = []
    for i, r in enumerate(results, start=1):
        p = f"{PREFIX}.{i}."
        good, bad = r.tested
        out += [
            (p + "requirement", requirement(r)),
            (p + "prompt", f"{r.prompt}@{r.prompt_version[:12]}"),
            (p + "verdict", r.verdict),
            (p + "rate", _num(r.rate if r.n else None)),
            (p + "interval", f"{_num(r.interval[0])},{_num(r.interval[1])}" if r.n else "nan,nan"),
            (p + "k", str(r.k)),
            (p + "n", str(r.n)),
            (p + "errors", str(r.errors)),
            (p + "tested", f"{_num(good)},{_num(bad)}"),
            (p + "calls", str(r.calls)),
            (p + "replayed", str(r.replayed)),
        ]
        j = r.judge
        if j is not None:  # the judge's calls, apart from the model under test's
            out += [
                (p + "judge_calls", str(j.calls)),
                (p + "judge_replayed", str(j.replayed)),
                (p + "judge_cost_usd", _num(j.cost_usd)),
                (p + "judge_agreement", _num(j.agreement)),
                (p + "judge_low_agreement", "true" if j.low else "false"),
            ]
        c = r.comparison
        if c is not None:
            out += [
                (p + "baseline", c.verdict),
                (p + "baseline_difference", _num(c.difference)),
                (p + "baseline_interval", f"{_num(c.interval[0])},{_num(c.interval[1])}"),
            ]
    return out


def mark_errors(path: str | Path) -> int:
    """In a JUnit XML file, turn the ``<failure>`` of each test marked with ``ERROR_PROPERTY`` into an ``<error>``.

    The suite's ``failures`` and ``errors`` counts follow.  Returns how many were changed.
    """
    path = Path(path)
    tree = ET.parse(path)
    changed = 0
    for suite in tree.getroot().iter("testsuite"):
        moved = 0
        for case in suite.iter("testcase"):
            if not any(p.get("name") == ERROR_PROPERTY for p in case.iter("property")):
                continue
            for failure in case.findall("failure"):
                failure.tag = "error"
                moved += 1
        if moved:
            suite.set("failures", str(max(0, int(suite.get("failures", "0")) - moved)))
            suite.set("errors", str(int(suite.get("errors", "0")) + moved))
            changed += moved
    if changed:
        tree.write(path, encoding="utf-8", xml_declaration=True)
    return changed
