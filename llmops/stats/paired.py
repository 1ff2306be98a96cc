"""Sequential paired test of "is the new prompt worse than the baseline?", both error rates controlled.

Each pair is the new prompt and the baseline sampled once on the same randomly chosen
case; its difference D = X_new - X_base is +1 (new won), 0 (tie) or -1 (new lost), on
the pass-rate scale.  Delta = E[D] is the new rate minus the baseline rate.

- "not worse" (H0): Delta >= 0.  Declaring REGRESSED then is a false alarm (rate <= alpha).
- "regressed" (H1): Delta <= -delta.  Declaring NOT_WORSE then is a miss (rate <= beta).

Both rates hold for every distribution of D on {-1, 0, +1}, whatever the share of ties,
and under any stopping rule: the test is *testing by betting* (Shafer 2021; Shafer and
Vovk 2019; Waudby-Smith and Ramdas 2024).  Two gamblers each start with 1 unit and bet on
every pair:

- K_reg = prod(1 - lam_i D_i) bets that the new prompt loses.  If Delta >= 0 every bet
  has expected factor <= 1, so K_reg is a nonnegative supermartingale and, by Ville's
  inequality, reaches 1/alpha with probability at most alpha, ever.  Ties leave it
  unchanged: it is a sequential sign test.
- K_ok = prod(1 + mu_i (D_i + delta)) bets that the new prompt is not delta worse.  If
  Delta <= -delta it is a supermartingale and reaches 1/beta with probability <= beta.

The test stops at the first pair where K_reg >= 1/alpha (REGRESSED) or K_ok >= 1/beta
(NOT_WORSE); at ``max_pairs`` without either it is UNDECIDED, never a verdict at no
guaranteed rate.  On {-1, 0, 1} every e-value for either hypothesis is at most one of
these linear bets (check the three extreme distributions of each hypothesis), so
nothing is lost by their form; only the bet sizes are learned.

Bet sizes follow Kelly (1956): the growth-optimal bet against the alternative.  Against a
drop of m with a non-tie share s the optimal lam is m / s, so when the prompts agree on
most samples the bets are larger and the wealth grows faster: the test adapts to the
variance, and many ties need far fewer pairs than the worst case.  The bet for each pair
uses only earlier pairs (predictable, which is what Ville needs) and regularised
estimates: the non-tie share starts from NS pseudo-pairs without ties (modest early
bets) and the mean from 1/delta^2 pseudo-pairs at zero.  Each gambler aims at an effect
of at least PHI * delta (not the full delta), so that true differences between the two
hypotheses are still decided before the cap at a small cost at the design points; if the
estimate shows a larger effect, the bet follows it.  Bets are clipped so that one pair
never takes more than a share CLIP of the wealth.

The distribution-free fixed-size design with the same rates, for comparison
(``fixed_pairs``): break ties with a fair coin, so each pair is Bernoulli((1 + Delta)/2),
and run the exact one-sided binomial test of 1/2 against 1/2 - delta/2.

References: Ville (1939), Etude critique de la notion de collectif; Kelly (1956), A new
interpretation of information rate; Shafer and Vovk (2019), Game-Theoretic Foundations
for Probability and Finance; Shafer (2021), Testing by betting, JRSS A; Waudby-Smith and
Ramdas (2024), Estimating means of bounded random variables by betting, JRSS B.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

from llmops.stats.intervals import wilson
from llmops.stats.planning import fixed_n

REGRESSED = "regressed"
NOT_WORSE = "not worse"
UNDECIDED = "undecided"

#: Default cap as a multiple of ``fixed_pairs``.  The cap only binds when ties are rare:
#: with no ties at all (the worst case) a few percent of runs at the design points need
#: more than 1.5 x fixed and none in our simulations more than 3 x, even with the truth
#: between the hypotheses; with half the pairs tied no run needed even 1.5 x
#: (benchmarks/results/paired_stats.md).  Two prompts with the same rate p on every case
#: tie on at least half the pairs (p^2 + (1 - p)^2 >= 1/2).
CAP_FACTOR = 3

#: Each gambler aims at an effect of at least PHI * delta.  Aiming at the full delta is
#: best at the design points but stalls when the truth lies between the hypotheses (the
#: bet is then twice the optimal one and the wealth does not grow); 0.75 gives up a few
#: percent of pairs at the design points and decides the middle ground before the cap.
PHI = 0.75
#: Pseudo-pairs without ties in the non-tie share estimate: early bets stay modest.
NS = 5.0
#: Largest share of the wealth one pair can take; keeps every factor >= 1 - CLIP > 0.
CLIP = 0.9
#: Each gambler splits its unit: WEIGHT on bets aimed at the design point (the mean shrunk
#: with 1/delta^2 pseudo-pairs, patient), the rest on bets that follow the observed mean
#: after NS pseudo-pairs (quick on effects much larger than delta, where the patient bets
#: barely grow when delta is small).  An average of e-processes is an e-process, so the
#: guarantees hold; the price is log(1/WEIGHT) more evidence at the design points.
WEIGHT = 0.75


@dataclass(frozen=True)
class PairedDesign:
    """The tolerance, error rates and cap of one paired comparison; ``start`` begins one."""

    delta: float
    alpha: float
    beta: float
    max_pairs: int

    def start(self) -> PairedState:
        """A fresh comparison (one per test and requirement)."""
        return PairedState(self)

    @property
    def fixed_pairs(self) -> int:
        """The distribution-free fixed-size design with the same rates, for comparison."""
        return fixed_pairs(self.delta, self.alpha, self.beta)


def fixed_pairs(delta: float, alpha: float, beta: float) -> int:
    """Pairs the exact fixed-size paired design needs: ties broken by a fair coin, then
    the one-sided binomial test of 1/2 against 1/2 - delta/2 at false alarm alpha, miss beta.
    """
    return fixed_n(0.5, delta / 2, alpha, beta)[0]


def paired_design(delta: float, alpha: float, beta: float, max_pairs: int | None = None) -> PairedDesign:
    """Validated design; the default cap is CAP_FACTOR times ``fixed_pairs``."""
    from llmops.errors import ConfigError

    if isinstance(delta, bool) or not isinstance(delta, int | float) or not 0 < delta < 1:
        raise ConfigError(
            f"tolerance (delta) must be in (0, 1) on the pass-rate scale, got {delta!r}; e.g. 0.1 flags a drop of 10 points"
        )
    for name, v in (("false alarm (alpha)", alpha), ("miss (beta)", beta)):
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v < 0.5:
            raise ConfigError(f"{name} must be in (0, 0.5), got {v!r}")
    if max_pairs is None:
        max_pairs = CAP_FACTOR * fixed_pairs(delta, alpha, beta)
    elif isinstance(max_pairs, bool) or not isinstance(max_pairs, int) or max_pairs < 1:
        raise ConfigError(f"max_pairs must be a positive integer, got {max_pairs!r}")
    return PairedDesign(float(delta), float(alpha), float(beta), max_pairs)


class PairedState:
    """One running comparison: feed pairs with ``update`` until it returns a verdict.

    O(1) per pair in plain floats, so it can sit in the sampling loop.
    """

    __slots__ = (
        "_log_ok",
        "_log_ok_quick",
        "_log_reg",
        "_log_reg_quick",
        "_nm",
        "_stop_ok",
        "_stop_reg",
        "design",
        "losses",
        "pairs",
        "ties",
        "verdict",
        "wins",
    )

    def __init__(self, design: PairedDesign) -> None:
        self.design = design
        self.pairs = 0
        self.wins = 0  # D = +1: the new prompt passed, the baseline did not
        self.losses = 0  # D = -1
        self.ties = 0  # D = 0
        self.verdict: str | None = None
        self._log_reg = self._log_reg_quick = 0.0  # log K_reg, patient and quick parts
        self._log_ok = self._log_ok_quick = 0.0  # log K_ok
        self._stop_reg = -math.log(design.alpha)
        self._stop_ok = -math.log(design.beta)
        # Pseudo-pairs at zero for the mean: the plug-in takes over once its noise,
        # about sqrt(var / n), is small next to delta.  At least NS keeps the mean's
        # estimate inside the non-tie share (so the bets' target is a distribution).
        self._nm = max(NS, 1.0 / design.delta**2)

    def update(self, d: int) -> str | None:
        """Feed one pair's difference (+1, 0 or -1); the verdict, or None to draw another pair.

        Raises RuntimeError once a verdict is in: pairs after the decision must not be fed.
        """
        if self.verdict is not None:
            raise RuntimeError(f"this comparison already ended ({self.verdict}) after {self.pairs} pairs")
        delta = self.design.delta
        if d not in (1, 0, -1):
            raise ValueError(f"a paired difference is -1, 0 or +1, got {d!r}")
        lam, mu = self._bets(self._nm)
        lam_q, mu_q = self._bets(NS)
        self._log_reg += _log_factor_reg(lam, d)
        self._log_reg_quick += _log_factor_reg(lam_q, d)
        self._log_ok += _log_factor_ok(mu, d, delta)
        self._log_ok_quick += _log_factor_ok(mu_q, d, delta)
        self.wins += d == 1
        self.losses += d == -1
        self.ties += d == 0
        self.pairs += 1
        # K_reg only rises on a loss and K_ok never does, so at most one crosses per pair.
        log_reg, log_ok = self._mixed()
        if log_reg >= self._stop_reg:
            self.verdict = REGRESSED
        elif log_ok >= self._stop_ok:
            self.verdict = NOT_WORSE
        elif self.pairs >= self.design.max_pairs:
            self.verdict = UNDECIDED
        return self.verdict

    def _mixed(self) -> tuple[float, float]:
        """log of each gambler's whole wealth: WEIGHT patient + (1 - WEIGHT) quick."""
        return (
            _log_mix(self._log_reg, self._log_reg_quick),
            _log_mix(self._log_ok, self._log_ok_quick),
        )

    def _bets(self, shrink: float) -> tuple[float, float]:
        """Kelly bets (lam for K_reg, mu for K_ok) from the pairs so far only."""
        delta = self.design.delta
        n = self.pairs
        s = (self.wins + self.losses + NS) / (n + NS)  # non-tie share, regularised up
        dh = (self.wins - self.losses) / (n + shrink)  # mean difference, shrunk to 0
        # K_reg: the growth-optimal bet against a drop m with non-tie share s is m / s.
        m_reg = min(max(PHI * delta, -dh), s)
        lam = min(m_reg / s, CLIP)
        # K_ok: target the trinomial with non-tie share s and mean m_ok; the Kelly bet
        # on D + delta solves a quadratic (the log-growth's derivative over 3 points).
        m_ok = min(max(-(1.0 - PHI) * delta, dh), s)
        pp, pm, p0 = (s + m_ok) / 2, (s - m_ok) / 2, 1.0 - s
        x1, x0, xm = 1.0 + delta, delta, delta - 1.0
        c = pp * x1 + p0 * x0 + pm * xm  # = m_ok + delta >= PHI * delta > 0
        b = pp * x1 * (x0 + xm) + p0 * x0 * (x1 + xm) + pm * xm * (x1 + x0)
        a = x1 * x0 * xm  # < 0, so the roots have opposite signs; take the positive one
        mu = (-b - math.sqrt(b * b - 4 * a * c)) / (2 * a)
        mu = min(max(mu, 0.0), CLIP / (1.0 - delta))
        return lam, mu

    def difference(self) -> float:
        """Mean difference so far, new minus baseline (NaN before the first pair: nothing is known)."""
        return (self.wins - self.losses) / self.pairs if self.pairs else math.nan

    def interval(self, confidence: float = 0.95) -> tuple[float, float]:
        """Two-sided display interval for Delta (``difference_interval``); the decision does not use it."""
        return difference_interval(self.wins, self.losses, self.ties, confidence)

    def e_values(self) -> tuple[float, float]:
        """Current (K_reg, K_ok): evidence for "regressed" and for "not worse", for reports."""
        log_reg, log_ok = self._mixed()
        return (math.exp(log_reg), math.exp(log_ok))

    def needed(self) -> int | None:
        """Rough number of further pairs to a verdict at the current rate of evidence growth.

        The expected log-growth per pair of each gambler, with the current bets under the
        observed frequencies; 0 once decided; None before any pair or when neither grows.
        """
        if self.verdict in (REGRESSED, NOT_WORSE):
            return 0
        n = self.pairs
        if n == 0:
            return None
        delta = self.design.delta
        lam, mu = self._bets(self._nm)
        log_reg, log_ok = self._mixed()
        pw, pt, pl = self.wins / n, self.ties / n, self.losses / n
        g_reg = pw * math.log1p(-lam) + pl * math.log1p(lam)
        g_ok = pw * math.log1p(mu * (1 + delta)) + pt * math.log1p(mu * delta) + pl * math.log1p(-mu * (1 - delta))
        more = [
            (stop - log_k) / g
            for stop, log_k, g in ((self._stop_reg, log_reg, g_reg), (self._stop_ok, log_ok, g_ok))
            if g > 0
        ]
        return math.ceil(min(more)) if more else None


def _log_factor_reg(lam: float, d: int) -> float:
    return math.log1p(-lam * d) if d else 0.0


def _log_factor_ok(mu: float, d: int, delta: float) -> float:
    return math.log1p(mu * (d + delta))


def _log_mix(patient: float, quick: float) -> float:
    hi = max(patient, quick)
    return hi + math.log(WEIGHT * math.exp(patient - hi) + (1 - WEIGHT) * math.exp(quick - hi))


def difference_interval(wins: int, losses: int, ties: int, confidence: float = 0.95) -> tuple[float, float]:
    """Two-sided interval for the mean paired difference Delta from win / loss / tie counts.

    A Wilson-type score interval for the mean of D on {-1, 0, 1}: every Delta with
    (mean - Delta)^2 <= z^2 (s - Delta^2) / n, where s - Delta^2 is the variance of D at
    Delta and s, the non-tie share, is taken at its upper Wilson bound so that a run of
    ties still shows its uncertainty.  It holds at a fixed n, not under repeated looks:
    for display only.  (-1, 1) when there are no pairs.
    """
    n = wins + losses + ties
    if n == 0:
        return (-1.0, 1.0)
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    mean = (wins - losses) / n
    s = wilson(wins + losses, n, confidence)[1]
    half = z * math.sqrt(max(0.0, n * (s - mean * mean) + z * z * s))
    lo = (n * mean - half) / (n + z * z)
    hi = (n * mean + half) / (n + z * z)
    # Clamp: rounding can push a bound a hair past the point estimate or outside [-1, 1].
    return (max(-1.0, min(lo, mean)), min(1.0, max(hi, mean)))
