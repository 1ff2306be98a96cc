"""The plan (``--llmops-plan``): what each requirement would cost, before any model call."""

from __future__ import annotations

from collections.abc import Sequence

from llmops.evaluation import Result


def _money(x: float | None) -> str:
    return "unknown" if x is None else f"${x:.4f}"


def plan_table(results: Sequence[Result]) -> str:
    """One row per requirement: expected, p95 and maximum calls (and cost), then the total."""
    header = [
        "test",
        "requirement",
        "cases",
        "expected calls",
        "p95",
        "max",
        "+ baseline max",
        "cost expected",
        "cost max",
        "judge calls exp/max",
    ]
    rows = []
    for r in results:
        p = r.plan or {}
        sign = ">=" if r.direction == "at_least" else "<="
        rows.append(
            [
                r.test_id.split("::", 1)[-1] or "-",
                f"{r.description} {sign} {round(100 * r.threshold, 2):g}%",
                str(r.n_cases),
                str(p.get("expected", "-")),
                str(p.get("p95", "-")),
                str(p.get("max", "-")),
                str(p.get("baseline_max_calls", "-")),
                _money(p.get("cost_expected")),
                _money(p.get("cost_max")),
                f"{p['judge_calls_expected']}/{p['judge_calls_max']}" if "judge_calls_max" in p else "-",
            ]
        )
    costs = [r.plan.get("cost_expected") for r in results if r.plan]
    cost_max = [r.plan.get("cost_max") for r in results if r.plan]
    known = all(c is not None for c in costs)

    def judge(which: str) -> list[int]:
        return [(r.plan or {}).get(f"judge_calls_{which}", 0) for r in results]

    def total(xs: list[float | None]) -> str:
        if all(x is None for x in xs):
            return "unknown"
        return _money(sum(x for x in xs if x is not None)) + ("" if known else " (where known)")

    rows.append(
        [
            "total",
            f"{len(results)} requirements",
            "",
            str(sum((r.plan or {}).get("expected", 0) for r in results)),
            "",
            str(sum((r.plan or {}).get("max", 0) + (r.plan or {}).get("baseline_max_calls", 0) for r in results)),
            "",
            total(costs),
            total(cost_max),
            f"{sum(judge('expected'))}/{sum(judge('max'))}" if any(judge("max")) else "-",
        ]
    )
    if not any(judge("max")):  # no judge in the session: no judge column
        header, rows = header[:-1], [row[:-1] for row in rows]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    note = (
        "plan only: no model was called. Expected and p95 calls are at the hardest true rate (halfway "
        "between the two tested rates); max is the cap. Costs assume prompt length / 4 input tokens and "
        "the model's max_tokens output tokens. Judge calls (a judge check: each sample judged `repeats` "
        "times) are apart from the calls and the costs."
    )
    return "\n".join([*lines, note])
