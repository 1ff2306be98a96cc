"""Paired comparison of a prompt with its baseline, and Holm's correction across prompts.

The difference is new rate minus baseline rate, on the pass-rate scale (for "at most"
requirements, the clean rate), paired by case: d_i = r_new_i - r_base_i over the cases
both runs saw.  Pairing removes the between-case variance, which is most of it.

The gate's vocabulary carries over: a *false alarm* flags a regression when the new prompt
is not worse (true difference >= 0); a *miss* lets through a drop larger than the
tolerance.  A regression is declared when the one-sided test of "no drop" rejects at the
false-alarm level (after Holm across the comparisons of one session) and the observed drop
is more than half the tolerance, so significant but trivial drops do not block a PR.

p-values (one-sided, H0: difference >= 0):
- one case: Fisher's exact test on the two 2x2 counts,
- 2..12 cases: exact sign-flip permutation of the per-case differences,
- more cases: Student t on the per-case differences (clustered standard error, Miller 2024).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from scipy.stats import fisher_exact
from scipy.stats import t as _t

from llmops.stats.intervals import wilson

EXACT_PERMUTATION_MAX = 12


@dataclass(frozen=True)
class Comparison:
    difference: float  # mean per-case difference, new - baseline (pass-rate scale)
    interval: tuple[float, float]  # 95% two-sided
    p_value: float  # one-sided, H0: no drop
    method: str
    n_cases: int
    moved: tuple[tuple[str, float], ...]  # (case id, difference), most negative first


def compare_cases(new: Mapping[str, tuple[int, int]], base: Mapping[str, tuple[int, int]]) -> Comparison:
    """Compare per-case (passes, samples) counts on the cases both have."""
    common = [c for c in new if c in base and new[c][1] > 0 and base[c][1] > 0]
    if not common:
        raise ValueError("no cases in common with samples in both runs")
    diffs = {c: new[c][0] / new[c][1] - base[c][0] / base[c][1] for c in common}
    moved = tuple(sorted(diffs.items(), key=lambda kv: kv[1]))
    d = list(diffs.values())
    mean = sum(d) / len(d)
    if len(common) == 1:
        (kn, nn), (kb, nb) = new[common[0]], base[common[0]]
        p = float(fisher_exact([[kn, nn - kn], [kb, nb - kb]], alternative="less")[1])
        return Comparison(mean, _newcombe(kn, nn, kb, nb), p, "Fisher exact", 1, moved)
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (len(d) - 1))
    se = sd / math.sqrt(len(d))
    half = float(_t.ppf(0.975, len(d) - 1)) * se
    interval = (max(-1.0, mean - half), min(1.0, mean + half))
    if len(d) <= EXACT_PERMUTATION_MAX:
        return Comparison(mean, interval, _sign_flip(d), "sign-flip permutation", len(d), moved)
    p = 1.0 if se == 0 and mean >= 0 else (0.0 if se == 0 else float(_t.cdf(mean / se, len(d) - 1)))
    return Comparison(mean, interval, p, "paired t (clustered by case)", len(d), moved)


def _sign_flip(d: Sequence[float]) -> float:
    """Exact one-sided p: share of sign assignments whose mean is <= the observed mean."""
    observed = sum(d)
    hits = total = 0
    for signs in itertools.product((1, -1), repeat=len(d)):
        total += 1
        hits += sum(s * x for s, x in zip(signs, d, strict=True)) <= observed + 1e-12
    return hits / total


def _newcombe(kn: int, nn: int, kb: int, nb: int) -> tuple[float, float]:
    """Newcombe's hybrid score interval for a difference of two proportions (95%)."""
    p1, p2 = kn / nn, kb / nb
    l1, u1 = wilson(kn, nn)
    l2, u2 = wilson(kb, nb)
    d = p1 - p2
    return (d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values (family-wise error across the comparisons of one session)."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted
