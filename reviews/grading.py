"""Scores and letter grades on a configurable scale."""

from __future__ import annotations

from collections.abc import Sequence

from coordinator.plan import Grading

DEFAULT_SCALE: tuple[tuple[str, float], ...] = (
    ("A", 9.3), ("A-", 9.0), ("B+", 8.7), ("B", 8.3), ("B-", 8.0),
    ("C+", 7.7), ("C", 7.3), ("C-", 7.0), ("D", 6.0),
)
"""Letter → minimum score (0–10); below the last threshold is F."""


def weighted_score(results: Sequence[tuple[float, bool]]) -> float:
    """Score in [0, 10] from ``(weight, passed)`` pairs; no weight at all scores 10."""
    total = sum(w for w, _ in results)
    if total <= 0:
        return 10.0
    return round(10.0 * sum(w for w, ok in results if ok) / total, 2)


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
