"""A shown score never contradicts its grade: scores are shown truncated to the graded precision."""

from __future__ import annotations

import pytest

from coordinator.core.grading import DEFAULT_SCALE, format_score, letter_grade
from templates import render


@pytest.mark.parametrize(("score", "shown", "grade"), [
    (8.996, "8.99", "B+"),  # rounding would show 9.00 beside a B+
    (9.0, "9.00", "A-"),
    (9.299, "9.29", "A-"),
    (9.3, "9.30", "A"),
    (8.29, "8.29", "B-"),  # binary noise (8.2899…) must not cost a digit
    (10.0, "10.00", "A"),
    (0.0, "0.00", "F"),
])
def test_boundary_scores_show_what_they_grade(score, shown, grade):
    assert (format_score(score), letter_grade(score)) == (shown, grade)


def test_the_shown_number_always_earns_the_same_grade():
    for _, threshold in DEFAULT_SCALE:
        for delta in (-0.011, -0.005, -0.001, -0.0001, 0.0, 0.0001, 0.004, 0.009):
            score = threshold + delta
            assert letter_grade(float(format_score(score))) == letter_grade(score), score


def test_week_summary_shows_a_just_below_threshold_score_without_rounding_it_up():
    status = {"plan": "p", "run_id": "r", "profile": "thorough", "updated_at": "now",
              "gates": {"g": {"status": "approved", "grade": "B+", "score": 8.996, "attempt": 1,
                              "decided_by": "coord (auto)", "criteria": []}},
              "tasks": {}}
    card = {"role": "execution", "agent": "cursor", "done": 1, "total": 1, "grade": "B+", "score": 8.996,
            "checks": 3, "gate_grades": ["g B+"], "retries": 0, "cost": 0.0}
    text = render("week_summary.md.j2", status=status, cards=[card], launch="go", launch_gate="g",
                  provenance=[], highlights=[], benchmark_line=None, deferred=[], finetune=[], total_cost=0.0,
                  est_finetune_cost=None, unknown_cost=False, running=[], stand_in=False, caveats=[])
    assert "| B+ | 8.99/10 |" in text and "| g | approved | B+ | 8.99 |" in text
    assert "9.0" not in text


def test_the_progress_line_shows_a_gate_score_as_graded():
    from coordinator.cli.progress import Progress
    from coordinator.engine.plan_loader import load_plan

    progress = Progress(load_plan("week2"), live=False)
    line = progress._line({"kind": "gate_decided", "gate": "launch", "status": "approved", "grade": "B+",
                           "score": 8.996})
    assert line is not None and line.endswith("◆ gate launch: approved grade B+ (8.99/10)")
