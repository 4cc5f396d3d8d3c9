"""Grading scales and how plans declare claims checks, validated with file:line → path errors."""

from __future__ import annotations

import pytest

from coordinator.core.errors import PlanError
from coordinator.core.grading import grade_floor, letter_grade
from coordinator.core.plan import Grading
from coordinator.engine.plan_loader import parse_plan


def test_default_scale_matches_the_issue():
    assert [letter_grade(s) for s in (9.3, 9.0, 8.7, 8.3, 8.0, 7.7, 7.3, 7.0, 6.0, 5.99)] == \
        ["A", "A-", "B+", "B", "B-", "C+", "C", "C-", "D", "F"]
    assert letter_grade(9.0, Grading()) == "A-"


def test_custom_scale_and_floors():
    g = Grading(scale={"Pass": 5.0, "Merit": 8.0}, fail_grade="Fail")
    assert (letter_grade(8.5, g), letter_grade(5.0, g), letter_grade(4.9, g)) == ("Merit", "Pass", "Fail")
    assert g.letters() == ["Merit", "Pass", "Fail"]
    assert grade_floor("Merit", g) == 8.0 and grade_floor("Fail", g) == 0.0
    with pytest.raises(ValueError, match="unknown grade 'A'"):
        grade_floor("A", g)


def test_plan_rejects_claims_against_a_missing_command_check():
    text = """name: p
tasks:
  - {id: a, title: A, role: lead, run: t_noop}
gates:
  - id: g
    after: [a]
    criteria:
      - {id: tests, metric: a.value, op: ">=", value: 0}
      - {claims: {task: a, against: tests}}
      - {claims: {task: nobody, file: x.md, against: tests}}
grading: {scale: {A: 11}}
"""
    with pytest.raises(PlanError) as info:
        parse_plan(text, "p.yaml")
    msg = str(info.value)
    assert "p.yaml:10 → gates[0].criteria[2].claims: claims need exactly one of 'task' or 'file'" in msg
    assert "p.yaml:11 → grading: thresholds must lie in [0, 10] (check 'A')" in msg


def test_plan_names_the_bad_against_reference():
    text = """name: p
tasks:
  - {id: a, title: A, role: lead, run: t_noop}
gates:
  - id: g
    after: [a]
    criteria:
      - {id: tests, metric: a.value, op: ">=", value: 0}
      - {claims: {task: a, against: tests}}
"""
    with pytest.raises(PlanError) as info:
        parse_plan(text, "p.yaml")
    assert str(info.value) == ("p.yaml:9 → gates[0].criteria[1].claims.against: 'tests' is not the id of a "
                               "command check in the same list (command checks: none)")
