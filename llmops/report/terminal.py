"""The terminal summary: one row per requirement, and a footer with the session's totals."""

from __future__ import annotations

from collections.abc import Sequence

from llmops.evaluation import Result


def _pct(x: float) -> str:
    return f"{round(100 * x, 2):g}%"


def requirement(r: Result) -> str:
    sign = ">=" if r.direction == "at_least" else "<="
    what = r.description if r.direction == "at_least" else f"{r.description} (violations)"
    return f"{what} {sign} {_pct(r.threshold)}"


def tested(r: Result) -> str:
    good, bad = r.tested
    return f"{_pct(good)} vs {_pct(bad)}"


def baseline_cell(r: Result) -> str:
    c = r.comparison
    if c is None:
        return "-"
    if c.verdict in ("unchanged", "ERROR"):
        return c.verdict
    return f"{c.verdict} {100 * c.difference:+.0f}%"


def verdict_cell(r: Result) -> str:
    return r.verdict


def rows(results: Sequence[Result]) -> list[list[str]]:
    out = []
    for r in results:
        saved = r.fixed_n - (r.n + r.errors)
        out.append(
            [
                r.test_id.split("::", 1)[-1] or "-",
                f"{r.prompt}@{r.prompt_version[:7]}",
                requirement(r),
                tested(r),
                f"{r.k}/{r.n}" + (f" +{r.errors}err" if r.errors else ""),
                f"{100 * r.rate:.0f}%" if r.n else "n/a",
                f"{100 * r.interval[0]:.0f}-{100 * r.interval[1]:.0f}%",
                verdict_cell(r),
                baseline_cell(r),
                str(r.calls) + (f" (+{r.reused} reused)" if r.reused else ""),
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


def family(results: Sequence[Result]) -> str:
    """The session's family error rates: union bounds over every verdict it gave."""
    alphas = [r.false_alarm for r in results if r.verdict != "ERROR" and not _no_false_alarm(r)]
    betas = [r.miss for r in results if r.verdict != "ERROR"]
    for r in results:
        c = r.comparison
        if c is not None and c.verdict not in ("unchanged",):
            alphas.append(c.false_alarm)
            betas.append(c.miss)
    fa, miss = min(1.0, sum(alphas)), min(1.0, sum(betas))
    return (
        f"family error rates of this session: a false alarm anywhere <= {_pct(fa)}, "
        f"a miss anywhere <= {_pct(miss)} (union bounds over {len(betas)} verdicts)"
    )


def _no_false_alarm(r: Result) -> bool:
    """Rate-1 requirements (at_least=1, at_most=0) fail only on a real failure: no false alarm."""
    return (r.direction == "at_least" and r.threshold >= 1) or (r.direction == "at_most" and r.threshold <= 0)


def footer(results: Sequence[Result]) -> str:
    calls = sum(r.calls for r in results)
    retries = sum(r.retries for r in results)
    base = sum(r.baseline_calls for r in results)
    unused = sum(r.unused for r in results)
    fixed = sum(r.fixed_n for r in results)
    looked = sum(r.n + r.errors for r in results)
    counts = {v: sum(r.verdict == v for r in results) for v in ("PASS", "FAIL", "ERROR")}
    regressed = sum(r.regressed for r in results)
    text = (
        f"{len(results)} requirements: {counts['PASS']} PASS, {counts['FAIL']} FAIL, {counts['ERROR']} ERROR"
        + (f", {regressed} regressed" if regressed else "")
        + f"; {calls} model calls"
        + (f" ({base} of them the baseline prompt's)" if base else "")
        + (f", {retries} retries" if retries else "")
        + f"; verdicts looked at {looked} samples against {fixed} for fixed-size designs"
    )
    if unused:
        text += f"; {unused} drawn but not looked at by a verdict (batches in flight, stored samples)"
    costs = [r.cost_usd for r in results if r.cost_usd is not None]
    if costs:
        text += f"; cost ${sum(costs):.4f}" + ("" if len(costs) == len(results) else " (where a price is known)")
    return text + "\n" + family(results)
