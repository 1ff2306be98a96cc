"""Truncated sequential probability ratio test (SPRT) for "pass rate >= theta".

Hypotheses: good, p = theta; bad, p = theta - delta.  After n samples with k passes
the log likelihood ratio (bad vs good) is linear in k, so Wald's boundaries are two
parallel lines in the (n, k) plane: FAIL when k falls to the lower line, PASS when it
rises to the upper one.  The test is truncated at ``max_n``, where a cut-off decides.

Wald's boundaries only approximate the error rates (they ignore overshoot, and
truncation adds errors), so the design computes the *exact* operating characteristic by
dynamic programming and searches the two intercepts.  For every candidate pair the
cut-off at the cap comes from the exact distribution of k among the paths still running
(the largest cut-off whose exact false-alarm rate P(FAIL | theta) <= alpha); the pair is
feasible when the exact miss rate P(PASS | theta - delta) <= beta holds too; the
feasible pair with the fewest expected calls at theta plus theta - delta wins.  Both
rates are monotone in p, so they hold for every p >= theta and p <= theta - delta.
Finally the boundaries are curtailed: the test stops as soon as its verdict is certain
(FAIL once even all passes from here on could not reach PASS, and vice versa), which
saves calls and changes no rate.

A design exists for every cap >= the fixed N: the fixed-size test is itself a truncated
design (never stop early, then its own cut-off).  Where the binomial saw-tooth makes
even the fixed test at the cap infeasible (e.g. 392 samples for 0.5 / 0.1 / 0.01 /
0.05, although 391 work), the design decides by the largest feasible size below the cap.

Speed: only the states between the two boundaries carry probability (a band a few dozen
wide, not max_n), every candidate pair and both rates run in one vectorised pass, and a
grid of candidates per pass replaces bisection.  Built designs are also kept on disk
(``LLMOPS_CACHE_DIR``, see :func:`cache_dir`), so a machine builds each design once.

"Rate <= epsilon" requirements (violations) are the mirror image: count clean samples
against theta = 1 - epsilon.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np

from llmops.stats.planning import fixed_feasible, fixed_n, zero_failure_n

PASS = "PASS"
FAIL = "FAIL"

#: Default cap as a multiple of the fixed-N sample size: no run ever needs more than 1.2x
#: the calls of the fixed-size test, and the exact search still finds boundaries that stop
#: most runs far earlier.
CAP_FACTOR = 1.2

#: Bump whenever the design algorithm changes: designs cached on disk under another
#: version are not used.
DESIGN_VERSION = 3

# Candidate intercepts, as multiples of Wald's.  The best pairs sit near Wald's own
# (1.0-1.4): the cap adds errors, overshoot removes some.  The wide grid is tried only
# when no coarse pair is feasible (caps within a few percent of the fixed N).
_COARSE = (0.8, 0.9, 1.0, 1.1, 1.2, 1.35, 1.5, 1.75)
_WIDE = (2.0, 2.5, 3.0, 4.0)
_REFINE_STEPS = (0.025, 0.00625)  # two finer 8 x 8 grids around the best pair so far
_REFINE = np.arange(8) - 3.5

# Rates are compared with this relative margin, so a design chosen in the batched search
# still meets its rates when recomputed alone (sums in another order differ in the last bits).
_SAFE = 1 - 1e-9


@dataclass(frozen=True)
class Operating:
    """Exact behaviour of a design at one true pass rate."""

    p: float
    p_fail: float
    p_pass: float
    expected_n: float


@dataclass(frozen=True)
class SequentialDesign:
    theta: float
    delta: float
    alpha: float
    beta: float
    max_n: int
    fail_at: tuple[int, ...]  # index n: FAIL when k <= fail_at[n] (for n < max_n)
    pass_at: tuple[int, ...]  # index n: PASS when k >= pass_at[n] (for n < max_n)
    cap_cutoff: int  # at max_n: FAIL iff k < cap_cutoff
    fixed_n: int  # single-stage design with the same error rates, for comparison
    false_alarm: float  # exact P(FAIL | p = theta)
    miss: float  # exact P(PASS | p = theta - delta)

    def decide(self, k: int, n: int) -> str | None:
        """PASS, FAIL, or None to keep sampling, after k passes in n samples."""
        if n >= self.max_n:
            return FAIL if k < self.cap_cutoff else PASS
        if k <= self.fail_at[n]:
            return FAIL
        if k >= self.pass_at[n]:
            return PASS
        return None

    def min_more(self, k: int, n: int, at_most: int | None = None) -> int:
        """Fewest further samples that could end the test from (k, n) (``at_most``: no more than that).

        Drawing exactly this many never draws a sample the test would not look at.
        """
        last = self.max_n - n if at_most is None else min(self.max_n - n, at_most)
        for m in range(1, last + 1):
            if self.decide(k + m, n + m) is not None or self.decide(k, n + m) is not None:
                return m
        return max(last, 0)

    def calls_quantile(self, p: float, q: float) -> int:
        """The q-quantile of the number of samples the test takes at true rate p (exact DP).

        For plans (``--llmops-plan``): not on any hot path, so the whole lattice is fine.
        """
        prob = np.zeros(self.max_n + 2)
        prob[0] = 1.0
        for n in range(1, self.max_n + 1):
            new = prob * (1 - p)
            new[1:] += prob[:-1] * p
            prob = new
            if n < self.max_n:
                lo, hi = self.fail_at[n], self.pass_at[n]
                if lo >= 0:
                    prob[: lo + 1] = 0.0
                if hi <= n:
                    prob[hi:] = 0.0
            if prob.sum() <= 1 - q:  # P(still sampling after n) is small enough
                return n
        return self.max_n

    def operating(self, p: float) -> Operating:
        """Exact P(FAIL), P(PASS) and expected sample count at true rate p."""
        pf, pp, en = _operating(self.fail_at, self.pass_at, self.cap_cutoff, self.max_n, p)
        return Operating(p, pf, pp, en)


# --- exact operating characteristic ------------------------------------------------------


class _Band(NamedTuple):
    """What one pass of the band DP returns, for J boundary pairs and P true rates."""

    p_fail: np.ndarray  # (J, P) P(FAIL before the cap)
    p_pass: np.ndarray  # (J, P) P(PASS before the cap)
    expected_n: np.ndarray  # (J, P) expected samples
    at_cap: np.ndarray  # (W, J, P) P(still running at the cap with k = i + k0)
    k0: int


#: Boundaries for the DP: ``bounds(n0, n1)`` gives the (J, n1 - n0) FAIL and PASS boundaries
#: for n in [n0, n1), so long horizons never hold all of them in memory at once.
Bounds = Callable[[int, int], tuple[np.ndarray, np.ndarray]]

_CHUNK = 1024  # steps of the DP per batch of boundaries
#: Probability still running below which the DP stops early: it cannot move any reported
#: rate beyond the rounding of its sums, and a cap far beyond what the lines need costs nothing.
_NEGLIGIBLE = 1e-20


def _band_ok(fail_at: np.ndarray, pass_at: np.ndarray) -> bool:
    """Whether :func:`_band_dp` applies to one pair of (max_n + 1) boundaries.

    It does when a path inside the band can only leave it onto a boundary cell: the FAIL
    boundary (never lowered, since k never falls) rises by at most 1 per sample, the PASS
    boundary never falls, and the two never meet.  True of lines with slope in (0, 1) and
    of their curtailment.
    """
    n = np.arange(len(fail_at) - 1)  # the boundaries at max_n are not used: the cut-off decides
    lo = np.maximum(fail_at[:-1], -1)
    hi = np.minimum(pass_at[:-1], n + 1)
    lo[0], hi[0] = -1, 1  # no verdict before the first sample
    lo = np.maximum.accumulate(lo)
    return bool((np.diff(lo) <= 1).all() and (np.diff(hi) >= 0).all() and (hi > lo).all())


def _band_dp(bounds: Bounds, n_pairs: int, ps: Sequence[float], cap: int) -> _Band:
    """Exact DP over the states between the boundaries, for J boundary pairs and P rates at once.

    The boundaries must satisfy :func:`_band_ok`.  A path inside the band then leaves it
    only onto a boundary cell, so each step absorbs exactly one cell per boundary and pair,
    and states live in a frame that moves with the lowest FAIL boundary: the work per step
    is the band width (tens of states), not n.
    """
    n_rates = len(ps)
    cols = n_pairs * n_rates  # column j * P + r: pair j at rate ps[r]
    both = np.concatenate([np.arange(cols), np.arange(cols)])
    p = np.tile(np.asarray(ps, dtype=float), n_pairs)
    q = 1.0 - p
    width = 4
    cur, nxt, tmp = (np.zeros((width, cols)) for _ in range(3))
    cur[1] = 1.0  # k = 0 at n = 0; row i holds k = i + base - 1
    stopped = np.zeros(2 * cols)  # P(FAIL before the cap), then P(PASS before the cap)
    weighted = np.zeros(2 * cols)  # the same weighted by cap - n, for E[N]
    floor = np.full((n_pairs, 1), -1)  # the FAIL boundary so far (never lowered)
    base = 0

    def advance(shift: int) -> None:
        nonlocal cur, nxt
        if shift == 0:  # row i <- q * row i + p * row i - 1
            np.multiply(cur, q, out=nxt)
            np.multiply(cur[:-1], p, out=tmp[:-1])
            nxt[1:] += tmp[:-1]
        else:  # the frame moved up one: row i <- q * row i + 1 + p * row i
            np.multiply(cur[1:], q, out=nxt[:-1])
            nxt[-1] = 0.0
            np.multiply(cur, p, out=tmp)
            nxt += tmp
        cur, nxt = nxt, cur

    drained = False
    for n0 in range(1, cap, _CHUNK):
        n1 = min(n0 + _CHUNK, cap)  # the boundaries at the cap are not used: the cut-off decides
        fail_at, pass_at = bounds(n0, n1)
        n = np.arange(n0, n1)
        lo = np.maximum.accumulate(np.concatenate([floor, np.maximum(fail_at, -1)], axis=1), axis=1)[:, 1:]
        hi = np.minimum(pass_at, n + 1)
        floor = lo[:, -1:]
        bases = lo.min(axis=0) + 1
        shifts = np.diff(bases, prepend=base).tolist()
        base = int(bases[-1])
        rows = np.concatenate([np.repeat(lo - bases + 1, n_rates, axis=0), np.repeat(hi - bases + 1, n_rates, axis=0)])
        if (need := int(rows.max()) + 2) > width:  # widen the frame (new rows hold no paths yet)
            grow = np.zeros((need - width, cols))
            cur, nxt, tmp = (np.concatenate([a, grow]) for a in (cur, nxt, tmp))
            width = need
        cells = rows.T * cols + both  # flat positions of the absorbing cells, for take / put
        absorbed = np.zeros((n1 - n0, 2 * cols))
        for i, shift in enumerate(shifts):
            advance(shift)
            flat = cur.reshape(-1)
            np.take(flat, cells[i], out=absorbed[i])
            flat.put(cells[i], 0.0)
        stopped += absorbed.sum(axis=0)
        weighted += (absorbed * (cap - n)[:, None]).sum(axis=0)
        if cur.sum(axis=0).max() < _NEGLIGIBLE:
            drained = True
            break
    if drained:
        cur[:] = 0.0
    elif cap >= 1:
        advance(0)  # the last sample; the cut-off decides

    def per_pair(x: np.ndarray) -> np.ndarray:
        return x.reshape(n_pairs, n_rates)

    # E[N] = sum over n < cap of P(N > n) = cap - sum over n < cap of (cap - n) P(N = n).
    expected_n = cap - per_pair(weighted[:cols] + weighted[cols:])
    at_cap = cur.reshape(width, n_pairs, n_rates)
    return _Band(per_pair(stopped[:cols]), per_pair(stopped[cols:]), expected_n, at_cap, base - 1)


def _operating(
    fail_at: Sequence[int] | np.ndarray,
    pass_at: Sequence[int] | np.ndarray,
    cap_cutoff: int,
    max_n: int,
    p: float,
) -> tuple[float, float, float]:
    """Exact (P(FAIL), P(PASS), E[N]) at true rate p for any boundaries."""
    fa, pa = np.asarray(fail_at, dtype=np.int64), np.asarray(pass_at, dtype=np.int64)
    if not _band_ok(fa, pa):
        return _operating_lattice(fa, pa, cap_cutoff, max_n, p)
    band = _band_dp(lambda n0, n1: (fa[None, n0:n1], pa[None, n0:n1]), 1, (p,), max_n)
    ks = np.arange(band.at_cap.shape[0]) + band.k0
    left = band.at_cap[:, 0, 0]
    p_fail = float(band.p_fail[0, 0] + left[ks < cap_cutoff].sum())
    p_pass = float(band.p_pass[0, 0] + left[ks >= cap_cutoff].sum())
    return p_fail, p_pass, float(band.expected_n[0, 0])


def _operating_lattice(
    fail_at: np.ndarray, pass_at: np.ndarray, cap_cutoff: int, max_n: int, p: float
) -> tuple[float, float, float]:
    """The same over the whole (n, k) lattice: slow, but for any boundaries at all."""
    prob = np.zeros(max_n + 2)
    prob[0] = 1.0
    p_fail = p_pass = expected_n = 0.0
    for n in range(1, max_n + 1):
        expected_n += prob.sum()  # P(still sampling before draw n)
        new = prob * (1 - p)
        new[1:] += prob[:-1] * p
        prob = new
        if n == max_n:
            p_fail += prob[:cap_cutoff].sum()
            p_pass += prob[cap_cutoff:].sum()
            break
        lo, hi = fail_at[n], pass_at[n]
        if lo >= 0:
            p_fail += prob[: lo + 1].sum()
            prob[: lo + 1] = 0.0
        if hi <= n:
            p_pass += prob[hi:].sum()
            prob[hi:] = 0.0
    return float(p_fail), float(p_pass), float(expected_n)


# --- the design search -------------------------------------------------------------------


class _Choice(NamedTuple):
    h_fail: float
    h_pass: float
    cutoff: int
    objective: float  # expected calls at theta plus at theta - delta (before curtailment)
    horizon: int  # the cut-off decides at this n (the cap, or the largest feasible size below)
    wide: bool = False  # found only with intercepts far beyond Wald's


def _fixed_test(horizon: int, cutoff: int) -> _Choice:
    """The fixed-size test as a choice: lines that never stop early."""
    return _Choice(math.inf, math.inf, cutoff, 2.0 * horizon, horizon, wide=True)


def _wald(theta: float, delta: float, alpha: float, beta: float) -> tuple[float, float, float]:
    """Slope of the SPRT lines and Wald's FAIL and PASS intercepts (in passes)."""
    p_bad = theta - delta
    log_s = math.log(p_bad / theta)
    log_f = math.log((1 - p_bad) / (1 - theta))
    step = log_f - log_s  # change of the log likelihood ratio per pass
    return log_f / step, math.log((1 - beta) / alpha) / step, math.log((1 - alpha) / beta) / step


def _lines(slope: float, h_fail: np.ndarray, h_pass: np.ndarray, n0: int, n1: int) -> tuple[np.ndarray, np.ndarray]:
    """(J, n1 - n0) boundaries of J intercept pairs for n in [n0, n1), clipped to [-1, n + 1]."""
    n = np.arange(n0, n1)
    fail_at = np.maximum(np.floor(slope * n - h_fail[:, None]), -1)
    pass_at = np.minimum(np.ceil(slope * n + h_pass[:, None]), n + 1)
    return fail_at.astype(np.int64), pass_at.astype(np.int64)


def _cutoffs(
    band: _Band, alpha: float, beta: float, lowest: np.ndarray, highest: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per pair: the largest cap cut-off whose exact false alarm <= alpha, and whether miss <= beta.

    Column 0 of the band is theta, column 1 is theta - delta.  The cut-off is kept within
    [lowest, highest], the k that can be running at the cap (outside it every cut-off has
    the same rates), which keeps the curtailed boundaries smooth.
    """
    cum = np.concatenate([np.zeros((1, *band.at_cap.shape[1:])), np.cumsum(band.at_cap, axis=0)])
    false_alarm = band.p_fail[:, 0] + cum[:, :, 0]  # row i: cut-off i + k0, FAIL iff k < it
    row = (false_alarm <= alpha * _SAFE).sum(axis=0) - 1  # rates rise with the row: a prefix
    pairs = np.arange(row.size)
    safe_row = np.maximum(row, 0)
    miss = band.p_pass[:, 1] + cum[-1, pairs, 1] - cum[safe_row, pairs, 1]
    feasible = (row >= 0) & (miss <= beta * _SAFE)
    return np.clip(safe_row + band.k0, lowest, highest), feasible


def _search(theta: float, delta: float, alpha: float, beta: float, horizon: int) -> _Choice | None:
    """The feasible intercept pair (and cap cut-off) with the fewest expected calls, or None."""
    slope, wald_fail, wald_pass = _wald(theta, delta, alpha, beta)
    best: _Choice | None = None
    best_uv = (1.0, 1.0)

    def run(us: np.ndarray, vs: np.ndarray) -> None:
        nonlocal best, best_uv
        u, v = (a.ravel() for a in np.meshgrid(np.maximum(us, 0.05), np.maximum(vs, 0.05), indexing="ij"))
        h_fail, h_pass = wald_fail * u, wald_pass * v
        band = _band_dp(lambda n0, n1: _lines(slope, h_fail, h_pass, n0, n1), len(u), (theta, theta - delta), horizon)
        # Running at the cap: k in [FAIL boundary + 1, PASS boundary] at horizon - 1.
        fail_last, pass_last = _lines(slope, h_fail, h_pass, horizon - 1, horizon)
        cutoff, feasible = _cutoffs(band, alpha, beta, fail_last[:, 0] + 1, pass_last[:, 0] + 1)
        objective = np.where(feasible, band.expected_n.sum(axis=1), np.inf)
        j = int(np.argmin(objective))
        if feasible[j] and (best is None or objective[j] < best.objective):
            best = _Choice(h_fail[j], h_pass[j], int(cutoff[j]), float(objective[j]), horizon, wide)
            best_uv = (float(u[j]), float(v[j]))

    wide = False
    run(np.array(_COARSE), np.array(_COARSE))
    if best is None:
        wide = True
        run(np.array(_WIDE), np.array(_WIDE))
        if best is None:
            return None
    for step in _REFINE_STEPS:
        run(best_uv[0] + step * _REFINE, best_uv[1] + step * _REFINE)
    return best


def _curtailed(slope: float, choice: _Choice, max_n: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Boundaries of a choice, curtailed: stop as soon as the verdict is certain.

    Every path gets the verdict of the uncurtailed test, so the rates are the same and the
    calls fewer.  From the horizon on (when it is below ``max_n``) the cut-off decides at once.
    """
    c, horizon = choice.cutoff, choice.horizon
    fail, pas = (a[0] for a in _lines(slope, np.array([choice.h_fail]), np.array([choice.h_pass]), 0, horizon + 1))
    n = np.arange(horizon)
    # Certain FAIL at (k, n): even if every remaining sample passes, no PASS - neither the
    # PASS boundary at a later n' < horizon nor the cut-off: k - n < min over n' > n of
    # (pass_at[n'] - n'), with c - horizon for n' = horizon.
    reach = np.append(pas[:horizon] - n, c - horizon)
    need = np.minimum.accumulate(reach[::-1])[::-1]  # need[n] = min over n' >= n
    fail_at = fail.copy()
    fail_at[:horizon] = np.maximum(fail[:horizon], n + need[1:] - 1)
    # Certain PASS: even if every remaining sample fails, no FAIL - k above the FAIL boundary
    # at every later n' < horizon and k >= c.
    later = np.append(np.maximum.accumulate(fail[1:horizon][::-1])[::-1], -1)  # max over n' > n
    pass_at = pas.copy()
    pass_at[:horizon] = np.minimum(pas[:horizon], np.maximum(c, later + 1))
    fail_at[0], pass_at[0] = min(fail_at[0], -1), max(pass_at[0], 1)  # no verdict before a sample
    fail_at[horizon], pass_at[horizon] = c - 1, c  # the lines do not apply at the horizon
    rest = max_n - horizon
    fail_at = np.concatenate([fail_at, np.full(rest, c - 1)])
    pass_at = np.concatenate([pass_at, np.full(rest, c)])
    return tuple(fail_at.tolist()), tuple(pass_at.tolist())


def _choose(theta: float, delta: float, alpha: float, beta: float, max_n: int, n_fixed: int) -> _Choice:
    """The best choice with the cut-off at the cap, or, for caps close to the fixed N, at a
    smaller size where the fixed test is feasible, if that is better or the only way."""
    choice = _search(theta, delta, alpha, beta, max_n)
    if choice is not None and not choice.wide:
        return choice
    sizes = np.arange(n_fixed, max_n + 1)
    ok, cuts = fixed_feasible(sizes, theta, delta, alpha, beta)
    if choice is None and ok[-1]:
        choice = _fixed_test(max_n, int(cuts[-1]))
    below = np.flatnonzero(ok[:-1])
    if below.size:  # the fixed N itself is feasible, so there is one unless max_n == n_fixed
        i = int(below[-1])
        horizon = int(sizes[i])
        other = _search(theta, delta, alpha, beta, horizon) or _fixed_test(horizon, int(cuts[i]))
        if choice is None or other.objective < choice.objective:
            choice = other
    assert choice is not None  # sizes[0] = n_fixed is feasible
    return choice


def _build(theta: float, delta: float, alpha: float, beta: float, max_n: int, n_fixed: int) -> SequentialDesign:
    """Search, curtail and check the design (the slow part; see the module doc)."""
    choice = _choose(theta, delta, alpha, beta, max_n, n_fixed)
    fail_at, pass_at = _curtailed(_wald(theta, delta, alpha, beta)[0], choice, max_n)
    cutoff = choice.cutoff
    false_alarm = _operating(fail_at, pass_at, cutoff, max_n, theta)[0]
    miss = _operating(fail_at, pass_at, cutoff, max_n, theta - delta)[1]
    if false_alarm > alpha or miss > beta:  # pragma: no cover - would be a bug in the search
        raise RuntimeError(f"sequential design for {theta}/{delta}/{alpha}/{beta} misses its rates")
    return SequentialDesign(theta, delta, alpha, beta, max_n, fail_at, pass_at, cutoff, n_fixed, false_alarm, miss)


def _rate_one(
    theta: float, delta: float, alpha: float, beta: float, max_n: int | None, n_fixed: int
) -> SequentialDesign:
    """Degenerate SPRT for rate 1: one failure rules it out (no false alarm is possible);
    PASS after enough clean samples that (1 - delta)^n <= beta."""
    from llmops.errors import ConfigError

    n_pass = zero_failure_n(delta, beta)
    cap = n_pass if max_n is None else max_n
    if cap < n_pass:
        raise ConfigError(
            f"max_samples={cap} is too few for rate 1 with tolerance {delta} and miss "
            f"rate {beta}: {n_pass} clean samples are needed; raise max_samples"
        )
    fail = tuple(n - 1 for n in range(cap + 1))
    pas = tuple(n if n >= n_pass else n + 1 for n in range(cap + 1))
    _, miss, _ = _operating(fail, pas, cap, cap, theta - delta)
    return SequentialDesign(theta, delta, alpha, beta, cap, fail, pas, cap, n_fixed, 0.0, miss)


def validate(theta: float, delta: float, alpha: float, beta: float) -> None:
    from llmops.errors import ConfigError

    if not 0 < theta <= 1:
        raise ConfigError(f"threshold must be in (0, 1], got {theta}")
    if not 0 < delta < theta:
        raise ConfigError(
            f"tolerance must be in (0, {theta}) for threshold {theta}, got {delta}: the "
            "gate tells a rate of threshold from threshold - tolerance, which must be above 0"
        )
    for name, v in (("false-alarm rate", alpha), ("miss rate", beta)):
        if not 0 < v < 0.5:
            raise ConfigError(f"{name} must be in (0, 0.5), got {v}")


@lru_cache(maxsize=256)
def sequential_design(
    theta: float, delta: float, alpha: float, beta: float, max_n: int | None = None
) -> SequentialDesign:
    """The truncated SPRT for "rate >= theta" with exact error rates (see module doc).

    Built once per machine: kept in memory and on disk (see :func:`cache_dir`).
    """
    from llmops.errors import ConfigError

    validate(theta, delta, alpha, beta)
    n_fixed, _ = fixed_n(theta, delta, alpha, beta)
    if theta >= 1.0:
        return _rate_one(theta, delta, alpha, beta, max_n, n_fixed)
    cap = math.ceil(CAP_FACTOR * n_fixed) if max_n is None else int(max_n)
    if cap < n_fixed:
        raise ConfigError(
            f"max_samples={cap} is too few for threshold {theta} with tolerance {delta}, "
            f"false-alarm rate {alpha} and miss rate {beta}: even a fixed-size test needs "
            f"{n_fixed}; raise max_samples or the tolerance"
        )
    path = _cache_path(theta, delta, alpha, beta, cap)
    design = _load(path, theta, delta, alpha, beta, cap) if path is not None else None
    if design is None:
        design = _build(theta, delta, alpha, beta, cap, n_fixed)
        if path is not None:
            _store(path, design)
    return design


# --- the disk cache ----------------------------------------------------------------------


def cache_dir() -> Path | None:
    """Where built designs are kept: ``$LLMOPS_CACHE_DIR/designs``, else ``~/.cache/llmops/designs``."""
    root = os.environ.get("LLMOPS_CACHE_DIR")
    try:
        return (Path(root) if root else Path.home() / ".cache" / "llmops") / "designs"
    except RuntimeError:  # no home directory to be found: no cache
        return None


def _key(theta: float, delta: float, alpha: float, beta: float, max_n: int) -> str:
    return f"sprt-v{DESIGN_VERSION}-t{theta!r}-d{delta!r}-a{alpha!r}-b{beta!r}-n{max_n}"


def _cache_path(theta: float, delta: float, alpha: float, beta: float, max_n: int) -> Path | None:
    folder = cache_dir()
    return None if folder is None else folder / f"{_key(theta, delta, alpha, beta, max_n)}.npz"


def _load(path: Path, theta: float, delta: float, alpha: float, beta: float, max_n: int) -> SequentialDesign | None:
    """The design stored at ``path``, or None if it is missing, unreadable or not this design."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["key"]) != _key(theta, delta, alpha, beta, max_n):
                return None
            stored_max_n, cap_cutoff, n_fixed = (int(x) for x in z["ints"])
            false_alarm, miss = (float(x) for x in z["rates"])
            # Boundaries are stored as a start and 0/1 steps: a few hundred bytes compressed.
            fail_at = np.cumsum(z["fail_at"], dtype=np.int64)
            pass_at = np.cumsum(z["pass_at"], dtype=np.int64)
    except Exception:  # missing, truncated or corrupt (any numpy or zip error): rebuild
        return None
    if stored_max_n != max_n or fail_at.shape != (max_n + 1,) or pass_at.shape != (max_n + 1,):
        return None
    return SequentialDesign(
        theta,
        delta,
        alpha,
        beta,
        max_n,
        tuple(fail_at.tolist()),
        tuple(pass_at.tolist()),
        cap_cutoff,
        n_fixed,
        false_alarm,
        miss,
    )


def _store(path: Path, design: SequentialDesign) -> None:
    """Write atomically (temporary file, then rename), so concurrent workers never see half a
    file; a cache that cannot be written is skipped, never a reason to fail a test run."""
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(
                f,
                key=np.array(_key(design.theta, design.delta, design.alpha, design.beta, design.max_n)),
                ints=np.array([design.max_n, design.cap_cutoff, design.fixed_n], dtype=np.int64),
                rates=np.array([design.false_alarm, design.miss], dtype=np.float64),
                fail_at=np.diff(design.fail_at, prepend=0).astype(np.int32),
                pass_at=np.diff(design.pass_at, prepend=0).astype(np.int32),
            )
        os.replace(tmp, path)
        tmp = None
    except Exception:
        pass
    finally:
        if tmp is not None:
            with suppress(OSError):
                os.unlink(tmp)
