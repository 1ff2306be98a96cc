"""The terminal summary: one row per requirement, the failing samples under ``-v``, and a footer.

Takes the results (objects, their dicts or the session record); every number is a
``Result``'s.  Reasons and messages are never cut: a terminal wraps long lines.
"""

from __future__ import annotations

from collections.abc import Sequence

from llmops.evaluation import Result
from llmops.report._format import (
    ERROR,
    FAIL,
    PASS,
    REGRESSED,
    WARNING,
    bad_samples,
    counts_text,
    interval,
    judge_facts,
    k_of_n,
    latency,
    pct,
    problem_list,
    rate,
    requirement,
    results_of,
    seconds,
    short_test,
    status,
    tested,
    totals,
    why_not_decided,
)

__all__ = ["HEADER", "failures", "family", "footer", "rows", "table"]


def baseline_cell(r: Result) -> str:
    c = r.comparison
    if c is None:
        return "-"
    if c.verdict in ("unchanged", ERROR):
        return c.verdict
    return f"{c.verdict} {100 * c.difference:+.0f}%"


def rows(results: Sequence[Result]) -> list[list[str]]:
    out = []
    for r in results:
        saved = r.fixed_n - (r.n + r.errors)
        calls = str(r.calls) + (f" (+{r.reused} reused)" if r.reused else "")
        if r.replayed:
            calls += f" ({r.replayed} replayed)"
        if r.judge is not None:  # the judge's calls, apart from the model under test's
            calls += f" +{r.judge.calls} judge" + (f" ({r.judge.replayed} replayed)" if r.judge.replayed else "")
        out.append(
            [
                short_test(r),
                f"{r.prompt}@{r.prompt_version[:7]}",
                requirement(r),
                tested(r),
                k_of_n(r),
                rate(r),
                interval(r),
                status(r),
                baseline_cell(r),
                calls,
                f"{saved:+d} ({100 * saved / r.fixed_n:.0f}%)" if r.fixed_n else "-",
            ]
        )
    return out


HEADER = [
    "test",
    "prompt",
    "requirement",
    "tested",
    "k/n",
    "rate",
    "95% CI",
    "verdict",
    "vs baseline",
    "new calls",
    "saved vs fixed-N",
]


def table(results: Sequence[Result]) -> str:
    body = rows(results)
    widths = [max(len(h), *(len(row[i]) for row in body)) if body else len(h) for i, h in enumerate(HEADER)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(HEADER, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in body]
    return "\n".join(lines)


def _indent(text: str, prefix: str) -> str:
    return "\n".join(prefix + line for line in (text.splitlines() or [""]))


def failures(results: Sequence[Result], limit: int | None = 5) -> str:
    """Under ``-v``: each requirement that did not pass, its full message, then its failing samples.

    ``limit`` samples per requirement (None: all), each with its case, outcome, the
    check's full reason and the model's full output.
    """
    blocks = []
    for r in results:
        s = status(r)
        if s not in (FAIL, REGRESSED, ERROR):
            continue
        lines = [f"{s} {short_test(r)}: {requirement(r)}"]
        message = why_not_decided(r) if s == ERROR else r.message
        lines.append(_indent(message, "  "))
        c = r.comparison
        if c is not None and c.verdict in (REGRESSED.lower(),) and c.message:
            lines.append(_indent(c.message, "  "))
        bad = bad_samples(r)
        shown = bad if limit is None else bad[:limit]
        for row in shown:
            lines.append(
                f"  - case {row.get('case_id')} sample {row.get('sample')}: {row.get('outcome')}"
                + (f": {row['reason']}" if row.get("reason") else "")
            )
            output = row.get("output")
            lines.append(_indent("(no output)" if output is None else str(output), "      | "))
        if len(bad) > len(shown):
            lines.append(
                f"  ... and {len(bad) - len(shown)} more failing samples (-vv shows all; or --llmops-report-html)"
            )
        elif not bad and r.n + r.errors:
            lines.append("  (no failing sample kept for this requirement)")
        blocks.append("\n".join(lines))
    return "\n".join(blocks)


def family(results: Sequence[Result]) -> str:
    """The session's family error rates: union bounds over every verdict it gave."""
    alphas = [r.false_alarm for r in results if r.verdict in (PASS, FAIL) and not _no_false_alarm(r)]
    betas = [r.miss for r in results if r.verdict in (PASS, FAIL)]
    for r in results:
        c = r.comparison
        if c is not None and c.verdict not in ("unchanged", ERROR):
            alphas.append(c.false_alarm)
            betas.append(c.miss)
    fa, miss = min(1.0, sum(alphas)), min(1.0, sum(betas))
    return (
        f"family error rates of this session: a false alarm anywhere <= {pct(fa)}, "
        f"a miss anywhere <= {pct(miss)} (union bounds over {len(betas)} verdicts)"
    )


def _no_false_alarm(r: Result) -> bool:
    """Rate-1 requirements (at_least=1, at_most=0) fail only on a real failure: no false alarm."""
    return (r.direction == "at_least" and r.threshold >= 1) or (r.direction == "at_most" and r.threshold <= 0)


def footer(results: Sequence[Result] | object, wall_time: float | None = None) -> str:
    """Counts, calls, cache replays, cost; the judges' calls apart; wall time and latency; the family
    error rates; a warning per requirement whose judge disagreed with itself too often."""
    results = results_of(results)  # type: ignore[arg-type]
    t = totals(results)
    unused = sum(r.unused for r in results)
    fixed = sum(r.fixed_n for r in results)
    looked = sum(r.n + r.errors for r in results)
    text = (
        counts_text(results)
        + f"; {t['calls']} model calls"
        + (f" ({t['baseline_calls']} of them the baseline prompt's)" if t["baseline_calls"] else "")
        + (f", {t['retries']} retries ({t['calls'] + t['retries']} requests to the model)" if t["retries"] else "")
        + f"; {t['replayed']} samples replayed from the cache"
        + f"; verdicts looked at {looked} samples against {fixed} for fixed-size designs"
    )
    if unused:
        text += f"; {unused} drawn but not looked at by a verdict (batches in flight, stored samples)"
    costs = [r.cost_usd for r in results if r.cost_usd is not None]
    if costs:
        text += f"; cost ${sum(costs):.4f}" + ("" if len(costs) == len(results) else " (where a price is known)")
    p50, p95 = latency(results)
    timing = []
    if wall_time is not None:
        timing.append(f"wall time {seconds(wall_time)}")
    if p50 is not None or p95 is not None:
        timing.append(f"model latency p50 {seconds(p50)}, p95 {seconds(p95)} (slowest requirement)")
    lines = [text]
    judges = judge_facts(results)
    if judges:
        lines.append(judges + "; not in the model calls above")
    if timing:
        lines.append("; ".join(timing))
    lines.append(family(results))
    lines += [f"{kind} {name}: {sentence}" for kind, name, sentence, _ in problem_list(results, {}) if kind == WARNING]
    return "\n".join(lines)
