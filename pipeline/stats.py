"""Small, exact statistics for paired model comparisons.

Pure functions over counts and p-values; scipy supplies only the binomial and
normal distributions. Each function names the formula it implements so the
numbers in a benchmark report can be checked by hand.

- :func:`mcnemar_exact` / :func:`mcnemar_paired` — exact McNemar test on discordant pairs
- :func:`wilson_interval` — Wilson score interval for a proportion
- :func:`cohens_h` — effect size between two proportions
- :func:`benjamini_hochberg` — false-discovery-rate control across several tests
- :func:`paired_comparison` — all of the above for one baseline/candidate pair
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class McNemarResult:
    """Discordant counts of a paired comparison and the exact two-sided p-value."""

    b: int
    """Items the first (baseline) model got right and the second (candidate) got wrong."""
    c: int
    """Items the candidate got right and the baseline got wrong."""
    p_value: float
    """Exact two-sided McNemar p-value on ``b`` and ``c``."""


def mcnemar_exact(b: int, c: int) -> float:
    """Exact two-sided McNemar p-value: ``min(1, 2 · BinomCDF(min(b, c); b + c, 1/2))``.

    Under the null hypothesis each discordant pair falls on either side with
    probability 1/2, so the smaller count is Binomial(b + c, 1/2). With no
    discordant pairs there is no evidence either way and the p-value is 1.
    """
    if b < 0 or c < 0 or int(b) != b or int(c) != c:
        raise ValueError(f"discordant counts must be non-negative integers, got b={b!r}, c={c!r}")
    n = int(b) + int(c)
    if n == 0:
        return 1.0
    from scipy.stats import binom  # imported on use: scipy.stats is slow to load

    return float(min(1.0, 2.0 * binom.cdf(min(int(b), int(c)), n, 0.5)))


def mcnemar_paired(baseline: Sequence[bool] | np.ndarray,
                   candidate: Sequence[bool] | np.ndarray) -> McNemarResult:
    """Count discordant pairs of two per-item correctness vectors and test them with :func:`mcnemar_exact`."""
    base = np.asarray(baseline, dtype=bool)
    cand = np.asarray(candidate, dtype=bool)
    if base.shape != cand.shape or base.ndim != 1:
        raise ValueError(f"paired arrays must be 1-D and the same length, got {base.shape} and {cand.shape}")
    b = int(np.count_nonzero(base & ~cand))
    c = int(np.count_nonzero(~base & cand))
    return McNemarResult(b=b, c=c, p_value=mcnemar_exact(b, c))


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for ``successes / n``.

    With ``p̂ = x/n`` and ``z = Φ⁻¹(1 − α/2)``::

        centre = (p̂ + z²/2n) / (1 + z²/n)
        half   = z · sqrt(p̂(1 − p̂)/n + z²/4n²) / (1 + z²/n)

    At ``x = 0`` and ``x = n`` the interval touches 0 and 1 exactly, and other
    bounds are clipped to [0, 1] against rounding. With ``n = 0`` nothing is
    known and the interval is the whole range ``(0.0, 1.0)``.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if n < 0 or not 0 <= successes <= max(n, 0):
        raise ValueError(f"need 0 <= successes <= n, got successes={successes!r}, n={n!r}")
    if n == 0:
        return (0.0, 1.0)
    from scipy.stats import norm

    z = float(norm.isf((1.0 - confidence) / 2.0))
    z2 = z * z
    p = successes / n
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2.0 * n)) / denom
    half = z * math.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n)) / denom
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return (low, high)


def cohens_h(p1: float, p2: float) -> float:
    """Cohen's h effect size: ``2·asin(√p1) − 2·asin(√p2)`` (positive when ``p1 > p2``)."""
    for name, p in (("p1", p1), ("p2", p2)):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{name} must be a proportion in [0, 1], got {p!r}")
    return 2.0 * math.asin(math.sqrt(p1)) - 2.0 * math.asin(math.sqrt(p2))


def benjamini_hochberg(pvalues: Sequence[float], alpha: float = 0.05) -> tuple[list[bool], list[float]]:
    """Benjamini–Hochberg step-up procedure at false discovery rate ``alpha``.

    With the m p-values sorted ascending, ``p_(1) ≤ … ≤ p_(m)``, reject the
    hypotheses of ranks ``1..k`` for the largest ``k`` with ``p_(k) ≤ k·α/m``.
    The adjusted p-value of rank i is ``min(1, min_{j ≥ i} m·p_(j)/j)``.
    Both lists come back in the input order.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    p = np.asarray(list(pvalues), dtype=float)
    if p.ndim != 1:
        raise ValueError("pvalues must be a flat sequence")
    if p.size == 0:
        return [], []
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError("p-values must lie in [0, 1]")
    m = p.size
    order = np.argsort(p, kind="stable")
    ranked = p[order]
    ranks = np.arange(1, m + 1, dtype=float)
    below = np.nonzero(ranked <= ranks * alpha / m)[0]
    reject_sorted = np.zeros(m, dtype=bool)
    if below.size:
        reject_sorted[: below[-1] + 1] = True
    # running minimum from the largest rank down keeps adjusted values monotone
    adjusted_sorted = np.minimum.accumulate((ranked * m / ranks)[::-1])[::-1]
    adjusted_sorted = np.minimum(adjusted_sorted, 1.0)
    rejected = np.empty(m, dtype=bool)
    adjusted = np.empty(m, dtype=float)
    rejected[order] = reject_sorted
    adjusted[order] = adjusted_sorted
    return [bool(r) for r in rejected], [float(a) for a in adjusted]


@dataclass(frozen=True)
class PairedComparison:
    """Baseline versus candidate on the same items."""

    n: int
    """Items scored by both models."""
    baseline_correct: int
    candidate_correct: int
    baseline_accuracy: float
    """``baseline_correct / n`` (0.0 when ``n = 0``)."""
    candidate_accuracy: float
    baseline_ci: tuple[float, float]
    """Wilson interval of the baseline accuracy."""
    candidate_ci: tuple[float, float]
    b: int
    """Baseline right, candidate wrong."""
    c: int
    """Candidate right, baseline wrong."""
    mcnemar_p: float
    cohens_h: float
    """``h(candidate, baseline)``: positive when the candidate is better."""
    absolute_improvement: float
    """``100 · (candidate − baseline)`` accuracy, in percentage points."""
    relative_improvement: float | None
    """``candidate / baseline − 1``; None when the baseline accuracy is 0."""


def paired_comparison(baseline: Sequence[bool] | np.ndarray, candidate: Sequence[bool] | np.ndarray,
                      confidence: float = 0.95) -> PairedComparison:
    """Accuracies, Wilson intervals, exact McNemar, Cohen's h and improvements of a paired run."""
    test = mcnemar_paired(baseline, candidate)
    n = len(baseline)
    kb = int(np.count_nonzero(np.asarray(baseline, dtype=bool)))
    kc = int(np.count_nonzero(np.asarray(candidate, dtype=bool)))
    pb = kb / n if n else 0.0
    pc = kc / n if n else 0.0
    return PairedComparison(
        n=n, baseline_correct=kb, candidate_correct=kc,
        baseline_accuracy=pb, candidate_accuracy=pc,
        baseline_ci=wilson_interval(kb, n, confidence), candidate_ci=wilson_interval(kc, n, confidence),
        b=test.b, c=test.c, mcnemar_p=test.p_value, cohens_h=cohens_h(pc, pb),
        absolute_improvement=100.0 * (pc - pb),
        relative_improvement=(pc / pb - 1.0) if pb > 0 else None,
    )
