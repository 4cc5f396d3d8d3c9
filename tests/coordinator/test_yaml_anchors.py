"""Plans may use YAML anchors, aliases and `<<` merge keys; top-level `x-…` keys hold the anchors."""

from __future__ import annotations

import pytest

from coordinator.core.errors import ConfigError, PlanError
from coordinator.core.yaml_io import load_located
from coordinator.engine.plan_loader import parse_plan

PLAN = """name: anchored
x-step: &step {role: lead, run: t_noop}
x-slow: &slow {timeout: 5, retries: 1}
tasks:
  - {<<: *step, id: a, title: A}
  - <<: [*step, *slow]
    id: b
    title: B
    role: quality
    needs: [a]
  - {<<: *step, id: c, title: C, needs: [a, b], with: {value: 2}}
"""


def test_merge_keys_fill_tasks_and_explicit_keys_override_them():
    spec, _ = parse_plan(PLAN, "anchored.yaml")
    tasks = {t.id: t for t in spec.tasks}
    assert tasks["a"].role == "lead" and tasks["a"].run == "t_noop"
    assert tasks["b"].role == "quality" and tasks["b"].timeout == 5 and tasks["b"].retries == 1
    assert tasks["c"].with_ == {"value": 2}


def test_an_error_inside_a_merged_task_points_at_the_task_that_uses_it():
    bad = PLAN.replace("  - {<<: *step, id: c, title: C, needs: [a, b], with: {value: 2}}",
                       "  - {<<: *step, id: c, title: C, needs: [zz]}")
    with pytest.raises(PlanError, match=r"anchored.yaml:11 → tasks\[2\].needs\[0\]: unknown task or gate 'zz'"):
        parse_plan(bad, "anchored.yaml")


def test_the_earlier_of_two_merged_mappings_wins_and_lists_alias_too():
    data = load_located("a: &a {k: 1, only_a: x}\nb: &b {k: 2, only_b: y}\nc: {<<: [*a, *b]}\nl: &l [1, 2]\nm: *l\n",
                        "m.yaml").data
    assert data["c"] == {"k": 1, "only_a": "x", "only_b": "y"}
    assert data["m"] == [1, 2]


@pytest.mark.parametrize(("text", "message"), [
    ("a: &a\n  b: *a\n", r"m.yaml:1 → a.b: an alias refers to the mapping or list that contains it"),
    ("x: {<<: 3}\n", r"m.yaml:1: a merge key '<<' takes a mapping or a list of mappings"),
    ("x: {a: 1, a: 2}\n", r"m.yaml:1 → x.a: duplicate key 'a'"),
    ("x: *nowhere\n", r"m.yaml:1: YAML syntax error: found undefined alias 'nowhere'"),
])
def test_broken_anchors_are_errors_with_the_line(text, message):
    with pytest.raises(ConfigError, match=message):
        load_located(text, "m.yaml")
