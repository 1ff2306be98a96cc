"""Calibration of the gate against known truth.

Thousands of simulated runs, through the real gate code (Session -> Run -> sampler ->
sequential test), with seeded models whose true rates are known.  Prints, per true rate,
the empirical FAIL rate with its own 95% Clopper-Pearson interval next to the exact value
computed by dynamic programming, and the calls used (mean / p95 / max) against a
fixed-size design with the same error rates.

    .venv/bin/python benchmarks/calibration.py            # 2000 runs per row, a few minutes
    .venv/bin/python benchmarks/calibration.py --runs 300 # quick look

Writes the tables to benchmarks/results/calibration.md as well.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from pathlib import Path

from llmops import Case, FunctionModel, Prompt, Session, checks
from llmops.stats import clopper_pearson, sequential_design

P = Prompt("calibration", "{x}")
ONE = Case({"x": 0}, id="only")
YES = checks.exact("yes")


def bernoulli(p: float) -> FunctionModel:
    return FunctionModel(lambda text, rng: "yes" if rng.random() < p else "no", id=f"bernoulli:{p}")


def ci(k: int, n: int) -> str:
    lo, hi = clopper_pearson(k, n)
    return f"{100 * k / n:.2f}% [{100 * lo:.2f}, {100 * hi:.2f}]"


def calls_cols(calls: list[int]) -> str:
    s = sorted(calls)
    return f"{statistics.mean(s):.1f} | {s[int(0.95 * (len(s) - 1))]} | {s[-1]}"


def single(runs: int, theta: float, delta: float, alpha: float, beta: float, direction: str) -> str:
    d = sequential_design(theta if direction == "at_least" else 1 - theta, delta, alpha, beta)
    if direction == "at_least":
        grid = [theta - 1.5 * delta, theta - delta, theta - delta / 2, theta, min(1.0, theta + delta / 2), 1.0]
        label = f"pass rate >= {theta:g}"
    else:
        grid = [0.0, theta + delta / 2, theta + delta, theta + 2 * delta]
        label = f"violation rate <= {theta:g}"
    lines = [
        f"### {label}, tolerance {delta:g}, false alarm {alpha:g}, miss {beta:g} "
        f"(fixed-N design: {d.fixed_n} samples; cap {d.max_n})",
        "",
        "| true rate | should | FAIL rate, empirical [95% CI] | FAIL rate, exact | mean calls | p95 | max | vs fixed-N |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for p in sorted(set(round(x, 6) for x in grid)):
        if direction == "at_least":
            model = bernoulli(p)
            check, kw, good_p = YES, {"at_least": theta}, p
            should = "PASS" if p >= theta else ("FAIL" if p <= theta - delta else "either")
        else:
            model = bernoulli(p)  # "yes" = a violation
            check, kw, good_p = YES, {"at_most": theta}, 1 - p
            should = "PASS" if p <= theta else ("FAIL" if p >= theta + delta else "either")
        fails, calls = 0, []
        for seed in range(runs):
            r = Session(model=model, seed=seed, concurrency=64, tolerance=delta, false_alarm=alpha, miss=beta)
            result = r.sample(P, ONE).evaluate(check, **kw)
            fails += result.verdict == "FAIL"
            calls.append(result.calls)
        exact = d.operating(good_p)
        lines.append(
            f"| {p:.3f} | {should} | {ci(fails, runs)} | {100 * exact.p_fail:.2f}% | {calls_cols(calls)} "
            f"| {100 * (1 - statistics.mean(calls) / d.fixed_n):.0f}% fewer |"
        )
    return "\n".join(lines)


def clustered(runs: int, theta: float, delta: float, alpha: float, beta: float, n_cases: int) -> str:
    """Super-population truth: each run draws fresh cases whose rates average mu."""
    lines = [
        f"### {n_cases} cases, mean per-case rate >= {theta:g}, tolerance {delta:g}, false alarm {alpha:g}, "
        f"miss {beta:g}; cases drawn afresh each run from a population with mean mu",
        "",
        "| population mean mu | should | FAIL rate [95% CI] | conclusive FAIL rate [95% CI] | inconclusive | mean calls |",
        "|---|---|---|---|---|---|",
    ]
    cases = [Case({"x": i}, id=f"c{i}") for i in range(n_cases)]
    for mu in (theta - delta, theta - delta / 2, theta, min(1.0, theta + delta / 2)):
        fails = hard_fails = inconclusive = 0
        calls = []
        for seed in range(runs):
            pick = random.Random(10_000 + seed)
            # Per-case rates: a mix of easy (rate 1) and hard cases, plus noise, averaging mu.
            rates = [min(1.0, max(0.0, mu + pick.uniform(-0.2, 0.2))) for _ in range(n_cases)]
            shift = mu - sum(rates) / n_cases
            rates = [min(1.0, max(0.0, r + shift)) for r in rates]

            def model(text: str, rng: random.Random, rates: list[float] = rates) -> str:
                return "yes" if rng.random() < rates[int(text)] else "no"

            s = Session(
                model=FunctionModel(model), seed=seed, concurrency=64, tolerance=delta, false_alarm=alpha, miss=beta
            )
            r = s.sample(P, cases).evaluate(YES, at_least=theta)
            fails += r.verdict == "FAIL"
            hard_fails += r.verdict == "FAIL" and r.conclusive
            inconclusive += not r.conclusive
            calls.append(r.calls)
        should = "PASS" if mu >= theta else ("FAIL" if mu <= theta - delta else "either")
        lines.append(
            f"| {mu:.3f} | {should} | {ci(fails, runs)} | {ci(hard_fails, runs)} | {100 * inconclusive / runs:.1f}% "
            f"| {statistics.mean(calls):.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=2000, help="simulated runs per row (default 2000)")
    args = ap.parse_args()
    start = time.time()
    parts = [
        "# Calibration of the llmops gate",
        f"{args.runs} simulated runs per row through the real gate code. A FAIL at a true rate that meets "
        "the requirement is a false alarm; a PASS at a rate worse than requirement - tolerance is a miss "
        "(so there the FAIL rate should be >= 1 - miss).",
        single(args.runs, 0.9, 0.1, 0.01, 0.05, "at_least"),
        single(args.runs, 0.95, 0.05, 0.05, 0.1, "at_least"),
        single(args.runs, 0.0, 0.05, 0.01, 0.05, "at_most"),
        clustered(max(200, args.runs // 4), 0.8, 0.1, 0.05, 0.1, 40),
    ]
    text = "\n\n".join(parts) + f"\n\n({time.time() - start:.0f} s)\n"
    print(text)
    out = Path(__file__).parent / "results" / "calibration.md"
    out.write_text(text)
    print(f"written to {out}")


if __name__ == "__main__":
    main()
