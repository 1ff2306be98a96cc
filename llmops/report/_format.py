"""What every renderer shares: reading a record, a requirement's status, numbers as written.

Nothing here computes a statistic: every number comes from a ``Result`` (or the record's
own timestamps); this module only decides how it is written.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from llmops.evaluation import Result

PASS, FAIL, ERROR, REGRESSED = "PASS", "FAIL", "ERROR", "REGRESSED"
#: A problem that is no verdict: the judge disagreed with itself too often (``JudgeStats.low``).
WARNING = "WARNING"
#: The session's verdict is its worst requirement's, in this order.
SEVERITY = (FAIL, REGRESSED, ERROR)
#: Outcomes of a sample that count against a requirement (or left it out), as ``Result.samples`` writes them.
BAD_OUTCOMES = ("fail", "violation", "model error", "check error")

Source = Mapping[str, Any] | Iterable[Result | Mapping[str, Any]]


def results_of(source: Source) -> list[Result]:
    """The results of a session record, or of a list of results (objects or their dicts)."""
    if isinstance(source, Mapping):
        items: Iterable[Any] = source.get("results", ())
    else:
        items = source
    return [r if isinstance(r, Result) else Result.from_dict(dict(r)) for r in items]


def record_of(source: Source) -> Mapping[str, Any]:
    """The record itself, or an empty one around a bare list of results."""
    return source if isinstance(source, Mapping) else {}


def missing(record: Mapping[str, Any]) -> list[str]:
    """Requirements the baseline has that the session did not evaluate, in words."""
    out = []
    for m in record.get("missing") or ():
        if isinstance(m, Mapping):
            text = str(m.get("requirement") or m.get("key") or "")
            if m.get("baseline"):
                text += f" (in baseline {m['baseline']})"
            out.append(text)
        else:
            out.append(str(m))
    return out


def missing_fails(record: Mapping[str, Any]) -> bool:
    """Missing requirements fail the gate unless the session allowed them (--llmops-allow-missing)."""
    return (record.get("settings") or {}).get("allow_missing") is not True


def errors_before_verdict(record: Mapping[str, Any]) -> list[str]:
    """Tests that ended in an llmops ERROR before any verdict (a bad schema, too few cases), in words."""
    out = []
    for e in record.get("test_errors") or ():
        name = str(e.get("test_id", "")).split("::", 1)[-1] or "-"
        out.append(f"{name}: {e.get('error', 'error')}: {e.get('message', '')}")
    return out


def status(r: Result) -> str:
    """The requirement as the gate sees it: PASS, FAIL, REGRESSED or ERROR (or PLAN).

    An undecided comparison with the baseline is an ERROR whatever the verdict: the test
    raised, and nobody knows whether the prompt got worse.
    """
    c = r.comparison
    if r.verdict == ERROR or (c is not None and c.verdict == ERROR):
        return ERROR
    if r.verdict == FAIL:
        return FAIL
    if r.regressed:
        return REGRESSED
    return r.verdict


def counts(results: Sequence[Result]) -> dict[str, int]:
    """Requirements per status, PASS / FAIL / REGRESSED / ERROR first (zeros kept), others after."""
    out = {PASS: 0, FAIL: 0, REGRESSED: 0, ERROR: 0}
    for r in results:
        s = status(r)
        out[s] = out.get(s, 0) + 1
    return out


def session_status(results: Sequence[Result], missing: int = 0, errors: int = 0) -> str:
    """The session in one word: its worst requirement's status.

    ``missing``: requirements of the baseline not evaluated that fail the gate (a FAIL);
    ``errors``: tests that ended in ERROR before any verdict.
    """
    found = {status(r) for r in results}
    if missing:
        found.add(FAIL)
    if errors:
        found.add(ERROR)
    for s in SEVERITY:
        if s in found:
            return s
    if results and found <= {"PLAN"}:
        return "PLAN"
    return PASS


def counts_text(results: Sequence[Result], *, regressed_always: bool = False) -> str:
    """ "3 requirements: 1 PASS, 1 FAIL, 1 REGRESSED, 0 ERROR" (REGRESSED only when there is one)."""
    c = counts(results)
    parts = [f"{n} {s}" for s, n in c.items() if n or s in (PASS, FAIL, ERROR) or (regressed_always and s == REGRESSED)]
    noun = "requirement" if len(results) == 1 else "requirements"
    return f"{len(results)} {noun}: " + ", ".join(parts)


def pct(x: float) -> str:
    """A rate as written: 95%, 99.9%, 0.5%."""
    return f"{round(100 * x, 2):g}%"


def _finite(*xs: float) -> bool:
    return all(x is not None and math.isfinite(x) for x in xs)


def rate(r: Result) -> str:
    return f"{100 * r.rate:.0f}%" if r.n and _finite(r.rate) else "n/a"


def interval(r: Result) -> str:
    lo, hi = r.interval
    return f"{100 * lo:.0f}-{100 * hi:.0f}%" if r.n and _finite(lo, hi) else "n/a"


def requirement(r: Result) -> str:
    """ "valid JSON >= 90%", "personal data (violations) <= 1%"."""
    sign = ">=" if r.direction == "at_least" else "<="
    what = r.description if r.direction == "at_least" else f"{r.description} (violations)"
    return f"{what} {sign} {pct(r.threshold)}"


def tested(r: Result) -> str:
    """The two rates the test tells apart: "90% vs 80%"."""
    good, bad = r.tested
    return f"{pct(good)} vs {pct(bad)}"


def k_of_n(r: Result) -> str:
    return f"{r.k}/{r.n}" + (f" +{r.errors} err" if r.errors else "")


def baseline(r: Result) -> str:
    """The comparison's verdict and the baseline prompt version, or "-" without a baseline."""
    c = r.comparison
    if c is None:
        return "-"
    return f"{c.verdict} vs {c.base_version[:7]}" if c.base_version and c.mode != "unchanged" else c.verdict


def difference(r: Result) -> str:
    """ "-12.5% (-20.1% to -4.0%)" on the requirement's scale, or "-" when nothing was compared."""
    c = r.comparison
    if c is None or not _finite(c.difference):
        return "-"
    lo, hi = c.interval
    text = f"{100 * c.difference:+.1f}%"
    if _finite(lo, hi):
        text += f" ({100 * lo:+.1f}% to {100 * hi:+.1f}%)"
    return text


def short_test(r: Result) -> str:
    """The test as pytest names it, without the file: "test_triage[gpt]" or "-" outside pytest."""
    return r.test_id.split("::", 1)[-1] or "-"


def seconds(x: float | None) -> str:
    if x is None or not _finite(x):
        return "n/a"
    if x < 1:
        return f"{1000 * x:.0f}ms" if x >= 0.001 else f"{1000 * x:.2f}ms"
    if x < 120:
        return f"{x:.1f}s"
    minutes, rest = divmod(round(x), 60)
    return f"{minutes}m{rest:02d}s"


def wall_time(record: Mapping[str, Any]) -> float | None:
    """Seconds between the record's start and finish (milliseconds since the epoch), if both are known."""
    start, end = record.get("started"), record.get("finished")
    if isinstance(start, (int, float)) and isinstance(end, (int, float)) and end >= start:
        return (end - start) / 1000
    return None


def latency(results: Sequence[Result]) -> tuple[float | None, float | None]:
    """The slowest requirement's p50 and p95: each is measured per requirement, never pooled here."""
    p50 = [r.latency_p50 for r in results if r.latency_p50 is not None]
    p95 = [r.latency_p95 for r in results if r.latency_p95 is not None]
    return (max(p50) if p50 else None, max(p95) if p95 else None)


def money(costs: Sequence[float | None]) -> str:
    """ "$0.0123", "$0.0123 (where a price is known)" or "unknown" (no price known): never a made-up $0."""
    known = [c for c in costs if c is not None]
    if not known:
        return "unknown (no price given)" if costs else "$0"
    text = f"${sum(known):.4f}"
    return text if len(known) == len(costs) else text + " (where a price is known)"


def cost(results: Sequence[Result]) -> str:
    """What the calls to the models under test cost (the judges' apart: ``judge_cost``)."""
    return money([r.cost_usd for r in results])


def judged(results: Sequence[Result]) -> list[Result]:
    """The results whose check asked a judge model."""
    return [r for r in results if r.judge is not None]


def judge_cost(results: Sequence[Result]) -> str:
    """What the judges' calls cost, priced with each judge model's own price."""
    return money([r.judge.cost_usd for r in judged(results) if r.judge is not None])


def totals(results: Sequence[Result]) -> dict[str, int]:
    """Sums of per-requirement counts: calls, replayed samples, baseline calls, retries; the judges' apart."""
    judges = [r.judge for r in results if r.judge is not None]
    return {
        "calls": sum(r.calls for r in results),
        "replayed": sum(r.replayed for r in results),
        "baseline_calls": sum(r.baseline_calls for r in results),
        "retries": sum(r.retries for r in results),
        "judge_calls": sum(j.calls for j in judges),
        "judge_replayed": sum(j.replayed for j in judges),
        "judge_tokens": sum(j.input_tokens + j.output_tokens for j in judges),
    }


def judge_facts(results: Sequence[Result]) -> str:
    """The judges' calls in a phrase, apart from the models under test's; "" when no check asked a judge."""
    rs = judged(results)
    if not rs:
        return ""
    t = totals(rs)
    models = ", ".join(dict.fromkeys(m for r in rs if r.judge is not None for m in r.judge.models))
    return (
        f"{t['judge_calls']} judge calls ({models}), {t['judge_replayed']} judge answers replayed from the cache, "
        f"{t['judge_tokens']} judge tokens, judge cost {judge_cost(rs)}"
    )


def judge_cell(r: Result) -> str:
    """A requirement's judge numbers, short: "120 calls, 40 replayed, agreement 84%, $0.0012"."""
    j = r.judge
    if j is None:
        return "-"
    parts = [f"{j.calls} calls"]
    if j.replayed:
        parts.append(f"{j.replayed} replayed")
    if j.unparsed:
        parts.append(f"{j.unparsed} unparsed")
    if j.agreement is not None:
        parts.append(f"agreement {100 * j.agreement:.0f}% ({j.repeats} repeats)" + (" LOW" if j.low else ""))
    parts.append(f"${j.cost_usd:.4f}" if j.cost_usd is not None else "cost unknown")
    return ", ".join(parts)


def bad_samples(r: Result) -> list[dict[str, Any]]:
    """The samples that counted against the requirement or ended in errors, in the order looked at."""
    return [
        row
        for row in r.samples
        if row.get("outcome") in BAD_OUTCOMES and row.get("prompt_version") in (None, r.prompt_version)
    ]


def why_not_decided(r: Result) -> str:
    """The sentence that explains an ERROR: the budget, the error budget or the comparison."""
    if r.stopped:
        return r.stopped
    c = r.comparison
    if r.verdict != ERROR and c is not None and c.verdict == ERROR:
        return c.stopped or c.message
    return r.message


def gate_status(results: Sequence[Result], record: Mapping[str, Any]) -> str:
    """The session's word for the report's first line, missing requirements and test errors included."""
    fails = len(missing(record)) if missing_fails(record) else 0
    return session_status(results, fails, len(errors_before_verdict(record)))


def gate_counts(results: Sequence[Result], record: Mapping[str, Any]) -> str:
    """ "3 requirements: 2 PASS, 1 FAIL, 0 ERROR, 1 missing from the session, 1 test ERROR before a verdict"."""
    text = counts_text(results)
    n_missing, n_errors = len(missing(record)), len(errors_before_verdict(record))
    if n_missing:
        text += f", {n_missing} missing from the session" + ("" if missing_fails(record) else " (allowed)")
    if n_errors:
        text += f", {n_errors} test{'s' if n_errors != 1 else ''} ERROR before a verdict"
    return text


def problem_list(results: Sequence[Result], record: Mapping[str, Any]) -> list[tuple[str, str, str, int | None]]:
    """One sentence per problem: (kind, test, sentence, index of the result or None).

    A FAIL's own message, a regression's (``Comparison.message``), an ERROR's cause, a
    judge's low agreement (a WARNING: no verdict changes), then requirements missing from
    the session and tests that ended in ERROR before a verdict.
    """
    items: list[tuple[str, str, str, int | None]] = []
    for i, r in enumerate(results):
        s = status(r)
        if s == ERROR:
            items.append((ERROR, short_test(r), why_not_decided(r), i))
            continue
        if r.verdict == FAIL:
            items.append((FAIL, short_test(r), r.message, i))
        if r.regressed and r.comparison is not None:
            items.append((REGRESSED, short_test(r), r.comparison.message, i))
    for i, r in enumerate(results):  # warnings last among the results: they change no verdict
        if r.judge is not None and r.judge.warning:
            items.append((WARNING, short_test(r), f"{requirement(r)}: {r.judge.warning}", i))
    kind = "MISSING" if missing_fails(record) else "MISSING (allowed)"
    items += [(kind, "", m + ": in the baseline, not evaluated in this session", None) for m in missing(record)]
    for e in record.get("test_errors") or ():
        name = str(e.get("test_id", "")).split("::", 1)[-1] or "-"
        items.append((ERROR, name, f"{e.get('error', 'error')}: {e.get('message', '')}", None))
    return items


def candidate_where(c: Mapping[str, Any], name: Callable[[str], str] = str) -> str:
    """Where an optimizer's candidate can be had: its registry alias, or (tracking off) its
    file; ``name`` formats the alias or path (Markdown code, say)."""
    if c.get("registry"):
        return f"registered as {name(str(c['registry']))}"
    if c.get("file"):
        return f"written to {name(str(c['file']))} (not registered: tracking is off)"
    return "not registered (tracking is off)"
