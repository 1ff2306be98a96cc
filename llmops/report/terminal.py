"""The terminal summary: one row per requirement."""

from __future__ import annotations

from collections.abc import Sequence

from llmops.evaluation import Result


def _requirement(r: Result) -> str:
    sign = ">=" if r.direction == "at_least" else "<="
    return f"{r.description} {sign} {100 * r.threshold:g}%"


def rows(results: Sequence[Result]) -> list[list[str]]:
    out = []
    for r in results:
        saved = r.fixed_n - r.calls
        verdict = r.verdict + ("?" if not r.conclusive and r.verdict != "ERROR" else "")
        out.append(
            [
                r.test_id.split("::", 1)[-1] or "-",
                f"{r.prompt}@{r.prompt_version[:7]}",
                _requirement(r),
                f"{r.k}/{r.n}" + (f" +{r.errors}err" if r.errors else ""),
                f"{100 * r.rate:.0f}%" if r.n else "n/a",
                f"{100 * r.interval[0]:.0f}-{100 * r.interval[1]:.0f}%",
                verdict,
                str(r.calls),
                f"{saved:+d} ({100 * saved / r.fixed_n:.0f}%)" if r.fixed_n else "-",
            ]
        )
    return out


HEADER = ["test", "prompt", "requirement", "k/n", "rate", "95% CI", "verdict", "calls", "saved vs fixed-N"]


def table(results: Sequence[Result]) -> str:
    body = rows(results)
    widths = [max(len(h), *(len(row[i]) for row in body)) if body else len(h) for i, h in enumerate(HEADER)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(HEADER, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in body]
    return "\n".join(lines)


def footer(results: Sequence[Result]) -> str:
    calls = sum(r.calls for r in results)
    fixed = sum(r.fixed_n for r in results)
    extra = sum(r.compare_calls for r in results)
    counts = {v: sum(r.verdict == v for r in results) for v in ("PASS", "FAIL", "ERROR")}
    inconclusive = sum(not r.conclusive and r.verdict != "ERROR" for r in results)
    text = (
        f"{len(results)} requirements: {counts['PASS']} PASS, {counts['FAIL']} FAIL, {counts['ERROR']} ERROR; "
        f"{calls} model calls, {fixed - calls} fewer than fixed-size designs ({fixed})"
    )
    if extra:
        text += f"; +{extra} calls for the baseline comparison (a fixed number per case)"
    costs = [r.cost_usd for r in results if r.cost_usd is not None]
    if costs:
        text += f"; cost ${sum(costs):.4f}" + ("" if len(costs) == len(results) else " (where a price is known)")
    if inconclusive:
        text += f"; {inconclusive} inconclusive (marked ?: too few cases for the stated error rates)"
    return text
