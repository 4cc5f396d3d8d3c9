"""Scores and letter grades on a configurable scale."""

from __future__ import annotations

import math
from collections.abc import Sequence

from coordinator.core.plan import Grading

DEFAULT_SCALE: tuple[tuple[str, float], ...] = (
    ("A", 9.3), ("A-", 9.0), ("B+", 8.7), ("B", 8.3), ("B-", 8.0),
    ("C+", 7.7), ("C", 7.3), ("C-", 7.0), ("D", 6.0),
)
"""Letter → minimum score (0–10); below the last threshold is F."""


SCORE_DECIMALS = 2
"""Scores are graded and shown with this many decimals (docs/formats.md, "Scores and grades")."""


def weighted_score(results: Sequence[tuple[float, bool]]) -> float:
    """Score in [0, 10] from ``(weight, passed)`` pairs, rounded to 2 decimals; no weight at all scores 10.

    The rounded value is the score: it is what is stored, graded and shown.
    """
    total = sum(w for w, _ in results)
    if total <= 0:
        return 10.0
    return round(10.0 * sum(w for w, ok in results if ok) / total, SCORE_DECIMALS)


def format_score(score: float) -> str:
    """A score as shown everywhere: 2 decimals, truncated, never rounded up.

    Truncating means the shown number never reaches a grade threshold the score
    itself misses (8.996 shows as 8.99 and grades B+, not as 9.00 beside a B+).
    """
    # the small epsilon keeps binary representation noise (8.29 → 8.28999…) from truncating a digit away
    shown = math.floor(score * 10**SCORE_DECIMALS + 1e-6) / 10**SCORE_DECIMALS
    return f"{shown:.{SCORE_DECIMALS}f}"


def letter_grade(score: float, scale: Sequence[tuple[str, float]] | Grading = DEFAULT_SCALE) -> str:
    """The highest letter whose threshold ``score`` reaches (the fail grade below all of them)."""
    fail = "F"
    pairs: Sequence[tuple[str, float]]
    if isinstance(scale, Grading):
        pairs, fail = tuple(scale.scale.items()), scale.fail_grade
    else:
        pairs = scale
    for letter, minimum in sorted(pairs, key=lambda x: -x[1]):
        if score >= minimum:
            return letter
    return fail


def grade_floor(letter: str, grading: Grading) -> float:
    """The lowest score that earns ``letter`` (0 for the fail grade); raise ValueError for an unknown letter."""
    if letter == grading.fail_grade:
        return 0.0
    if letter not in grading.scale:
        raise ValueError(f"unknown grade {letter!r} (scale: {', '.join(grading.letters())})")
    return grading.scale[letter]
