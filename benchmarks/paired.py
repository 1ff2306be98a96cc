"""Calibration of the baseline regression gate against known truth.

Pairs of sessions run through the real gate code: a baseline session and a new session
over the same cases, with seeded simulated models whose per-case rates are known.  The
new prompt's rates are the baseline's minus a true drop.  Prints how often the gate
declares a regression: at zero drop that is the false-alarm rate (target <= the stated
false alarm), at a drop of the tolerance it is the power.

    .venv/bin/python benchmarks/paired.py               # 500 pairs per row
    .venv/bin/python benchmarks/paired.py --pairs 100   # quick look
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from pathlib import Path

from llmops import Case, FunctionModel, Prompt, Session, checks
from llmops.baseline import compare
from llmops.stats import clopper_pearson

YES = checks.exact("yes")


def session(prompt: Prompt, rates: list[float], cases: list[Case], seed: int, alpha: float, delta: float) -> list[dict]:
    def model(text: str, rng: random.Random) -> str:
        return "yes" if rng.random() < rates[int(text.split()[-1])] else "no"

    s = Session(model=FunctionModel(model), seed=seed, concurrency=64, tolerance=delta, false_alarm=alpha, promote="x")
    s.sample(prompt, cases).evaluate(YES, at_least=0.8)
    return [r.to_dict() for r in s.results]


def row(pairs: int, drop: float, n_cases: int, alpha: float, delta: float) -> str:
    cases = [Case({"x": i}, id=f"c{i}") for i in range(n_cases)]
    base_prompt, new_prompt = Prompt("p", "v1 {x}"), Prompt("p", "v2 {x}")
    flagged, calls = 0, []
    for i in range(pairs):
        pick = random.Random(i)
        base_rates = [pick.uniform(0.65, 1.0) for _ in range(n_cases)]
        new_rates = [max(0.0, r - drop) for r in base_rates]
        base = session(base_prompt, base_rates, cases, 2 * i, alpha, delta)
        new = session(new_prompt, new_rates, cases, 2 * i + 1, alpha, delta)
        report = compare(new, base, "baseline", delta, alpha)
        flagged += bool(report.regressions)
        calls.append(sum(r["calls"] + r["compare_calls"] for r in new + base))
    lo, hi = clopper_pearson(flagged, pairs)
    kind = "false alarm" if drop == 0 else ("power" if drop >= delta else "-")
    return (
        f"| {drop:.3f} | {kind} | {100 * flagged / pairs:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}] "
        f"| {statistics.mean(calls):.0f} |"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=500)
    ap.add_argument("--cases", type=int, default=20)
    args = ap.parse_args()
    alpha, delta = 0.05, 0.1
    start = time.time()
    lines = [
        "# Calibration of the baseline regression gate",
        "",
        f"{args.pairs} pairs of sessions per row, {args.cases} cases, per-case rates uniform in [0.65, 1] for the "
        f"baseline, the new prompt lower by the true drop; requirement 'at least 0.8' sampled by the gate "
        f"(calls: both sessions together). False alarm {alpha:g}, tolerance {delta:g}.",
        "",
        "| true drop | | regression declared [95% CI] | mean calls (2 sessions) |",
        "|---|---|---|---|",
    ]
    for drop in (0.0, delta / 2, delta, 2 * delta):
        lines.append(row(args.pairs, drop, args.cases, alpha, delta))
    text = "\n".join(lines) + f"\n\n({time.time() - start:.0f} s)\n"
    print(text)
    out = Path(__file__).parent / "results" / "paired.md"
    out.write_text(text)
    print(f"written to {out}")


if __name__ == "__main__":
    main()
