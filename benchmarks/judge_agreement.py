"""When does the LOW JUDGE AGREEMENT warning fire?  Calibrated against judges of known accuracy.

A simulated judge is right with probability q on each judgement, independently across its
``repeats``.  Each run judges ``n`` outputs; the votes go through the judge check's own
majority rule (``JudgeCheck._decide``) and the run's accounting (``judge_stats``), exactly
as in a test.  The warning fires when more than ``1 - min_agreement`` of the outputs split
their repeats below ``min_agreement`` (default 0.75).

For each judge the table gives the empirical rate of the warning over ``--runs`` runs,
with its 95% Wilson interval, next to the exact probability (a binomial tail over the
per-output split probability); the mean agreement, empirical and exact; and how often
the majority of the repeats is right.  An exact value outside the interval would mean
the code does not do what the docs say.

    .venv/bin/python benchmarks/judge_agreement.py            # about a minute
    .venv/bin/python benchmarks/judge_agreement.py --runs 4000

Writes the table to benchmarks/results/judge_agreement.md as well.
"""

from __future__ import annotations

import argparse
import math
import random
from pathlib import Path

from llmops import FunctionModel, checks
from llmops.checks.judge import Judged, Judgement, judge_stats
from llmops.stats import wilson

OUT = Path(__file__).parent / "results" / "judge_agreement.md"
QS = (0.55, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
REPEATS = (3, 5)
OUTPUTS = (10, 30, 100)


def exact(q: float, repeats: int, n: int, min_agreement: float) -> tuple[float, float, float]:
    """P(warning), mean agreement, P(majority right) for a judge right with probability q."""
    p_low = mean = right = 0.0
    for k in range(repeats + 1):  # k judgements right
        p = math.comb(repeats, k) * q**k * (1 - q) ** (repeats - k)
        share = max(k, repeats - k) / repeats
        p_low += p * (share < min_agreement)
        mean += p * share
        right += p * (2 * k > repeats)
    limit = (1 - min_agreement) * n  # the warning: more than this many low outputs
    warn = sum(math.comb(n, j) * p_low**j * (1 - p_low) ** (n - j) for j in range(math.floor(limit) + 1, n + 1))
    return warn, mean, right


def simulate(q: float, repeats: int, n: int, runs: int, rng: random.Random) -> tuple[int, float]:
    """Runs that warned, and the mean agreement over all outputs of all runs."""
    judge = checks.judge("r", model=FunctionModel(lambda t, r: "", id="simulated"), repeats=repeats)
    warned, agreement = 0, 0.0
    for _ in range(runs):
        events = []
        for _ in range(n):
            # the output deserves a pass; each judgement is right with probability q
            votes = [Judgement("pass" if rng.random() < q else "fail", 5, "r") for _ in range(repeats)]
            outcome = judge._decide(votes)
            a = outcome.judge_agreement
            assert a is not None
            events.append(
                Judged(
                    model="simulated",
                    price=None,
                    calls=repeats,
                    replayed=0,
                    failed_calls=0,
                    unparsed=0,
                    input_tokens=0,
                    output_tokens=0,
                    repeats=repeats,
                    agreement=a,
                    low=a < judge.min_agreement,
                    min_agreement=judge.min_agreement,
                )
            )
        stats = judge_stats(events)
        assert stats is not None and stats.agreement is not None
        warned += stats.low
        agreement += stats.agreement / runs
    return warned, agreement


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    lines = [
        "# The LOW JUDGE AGREEMENT warning, calibrated",
        "",
        f"`.venv/bin/python benchmarks/judge_agreement.py --runs {args.runs}`: a judge right with probability q on "
        "each judgement (independent repeats), `min_agreement` 0.75, n outputs judged per run. The warning fires "
        "when more than 25% of the outputs split their repeats below 75% agreement. Empirical rates over "
        f"{args.runs} runs each, with 95% Wilson intervals; exact values from the binomial distribution.",
        "",
        "| q | repeats | n | warning (empirical) | 95% interval | warning (exact) | mean agreement (emp. / exact) "
        "| majority right (exact) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    outside = 0
    for repeats in REPEATS:
        for q in QS:
            for n in OUTPUTS:
                warned, agreement = simulate(q, repeats, n, args.runs, rng)
                lo, hi = wilson(warned, args.runs)
                p_warn, mean, right = exact(q, repeats, n, 0.75)
                outside += not lo <= p_warn <= hi
                lines.append(
                    f"| {q:g} | {repeats} | {n} | {warned / args.runs:.3f} | {lo:.3f}-{hi:.3f} | {p_warn:.3f} "
                    f"| {agreement:.3f} / {mean:.3f} | {right:.3f} |"
                )
                print(lines[-1], flush=True)
    cells = len(REPEATS) * len(QS) * len(OUTPUTS)
    lines += [
        "",
        f"Exact values outside the empirical 95% interval: {outside} of {cells} (about {0.05 * cells:.1f} "
        "expected by chance).",
        "",
        "Reading it: with 3 repeats the mean agreement never falls below 2/3 (0.75 for a coin-flipping judge), "
        "so the mean alone cannot flag a weak judge; the share of split outputs can. The warning's boundary is "
        "the judge whose outputs split a quarter of the time: q = 0.91 with 3 repeats, q = 0.80 with 5 (a 4-1 vote "
        "agrees 80%, which is not low). Judges well below it (3 repeats: q <= 0.8) are flagged almost surely from "
        "30 outputs on, judges well above it (q >= 0.95) seldom; near the boundary, and with few outputs (10), "
        "it is a coin toss, as any rule on a sample that small must be.",
    ]
    OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"\n{outside} of {cells} exact values outside the 95% interval; written to {OUT}")


if __name__ == "__main__":
    main()
