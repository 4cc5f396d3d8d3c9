"""Plan validation: every error names the file, the line and the path inside the plan."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from coordinator.cli.app import app
from coordinator.errors import PlanError, UsageError
from coordinator.plan_loader import load_plan

GOOD = """
name: demo
params: {n: 3, items: [a, b]}
tasks:
  - id: first
    title: First
    role: lead
    run: t_noop
    with: {value: "${n}"}
  - id: fan
    title: Fan ${item}
    role: execution
    needs: [first]
    foreach: ${items}
    run: t_noop
  - id: last
    title: Last
    role: quality
    needs: [fan, check]
    run: t_noop
gates:
  - id: check
    after: [fan]
    criteria:
      - {metric: fan.value, op: ">=", value: 0}
    blocks: []
"""


def _load(tmp_path, text):
    p = tmp_path / "plan.yaml"
    p.write_text(text)
    return load_plan(str(p))


def test_good_plan_compiles_foreach_and_params(tmp_path):
    plan = _load(tmp_path, GOOD)
    assert plan.order == ["first", "fan[a]", "fan[b]", "last"]
    assert plan.tasks["first"].params == {"value": 3}
    assert plan.tasks["fan[b]"].title == "Fan b"
    assert plan.tasks["last"].needs == ["fan[a]", "fan[b]", "check"]
    assert plan.gate_after["check"] == ["fan[a]", "fan[b]"]


@pytest.mark.parametrize(
    ("mutation", "path", "message"),
    [
        (("role: quality", "role: reviewer"), "tasks[2].role", "unknown role 'reviewer'"),
        (("needs: [first]", "needs: [frist]"), "tasks[1].needs[0]", "unknown task or gate 'frist'"),
        (("run: t_noop\n    with", "run: no_such_step\n    with"), "tasks[0].run", "unknown callable 'no_such_step'"),
        (("after: [fan]", "after: [nope]"), "gates[0].after[0]", "gate after unknown task 'nope'"),
        (("id: last", "id: first"), "tasks[2].id", "duplicate task id 'first'"),
        (("with: {value: \"${n}\"}", "with: {value: \"${missing}\"}"), "tasks[0].with.value", "unknown parameter ${missing}"),
        (("    title: Last\n", "    title: Last\n    colour: red\n"), "tasks[2].colour", "unknown field"),
    ],
)
def test_each_validation_error_names_file_line_and_path(tmp_path, mutation, path, message):
    old, new = mutation
    assert old in GOOD
    with pytest.raises(PlanError) as exc:
        _load(tmp_path, GOOD.replace(old, new, 1))
    text = str(exc.value)
    assert "plan.yaml:" in text, text
    assert path in text, text
    assert message in text, text


def test_cycle_is_printed(tmp_path):
    text = GOOD.replace("needs: [first]", "needs: [first, last]", 1)
    with pytest.raises(PlanError) as exc:
        _load(tmp_path, text)
    assert "dependency cycle:" in str(exc.value)
    assert "fan → last → fan" in str(exc.value) or "last → fan → last" in str(exc.value)


def test_gate_blocking_its_own_reviewed_task_is_a_cycle(tmp_path):
    with pytest.raises(PlanError, match="dependency cycle"):
        _load(tmp_path, GOOD.replace("blocks: []", "blocks: [fan]"))


def test_path_escaping_the_workspace_is_rejected(tmp_path):
    text = GOOD + """  - id: w
    after: [first]
    criteria: [{file: ../../etc/passwd}]
"""
    with pytest.raises(PlanError) as exc:
        _load(tmp_path, text)
    assert "gates[1].criteria[0].file" in str(exc.value)
    assert "escapes the workspace" in str(exc.value)


def test_step_path_parameter_escape_is_rejected(tmp_path):
    text = GOOD.replace("run: t_noop\n    with: {value: \"${n}\"}", "run: t_write\n    with: {out: /tmp/x.txt}")
    with pytest.raises(PlanError, match=r"tasks\[0\]\.with\.out.*escapes the workspace"):
        _load(tmp_path, text)


def test_yaml_syntax_error_reports_line(tmp_path):
    text = "name: demo\ntasks:\n  - id: a\n    title: [unclosed\n"
    with pytest.raises(PlanError) as exc:
        _load(tmp_path, text)
    assert "plan.yaml:" in str(exc.value) and "YAML syntax error" in str(exc.value)
    assert exc.value.line is not None and exc.value.line >= 4


def test_several_errors_are_reported_together(tmp_path):
    text = GOOD.replace("role: quality", "role: reviewer").replace("needs: [first]", "needs: [frist]")
    with pytest.raises(PlanError) as exc:
        _load(tmp_path, text)
    assert "tasks[2].role" in str(exc.value) and "tasks[1].needs[0]" in str(exc.value)


def test_unknown_set_parameter_is_a_usage_error(tmp_path):
    p = tmp_path / "plan.yaml"
    p.write_text(GOOD)
    with pytest.raises(UsageError, match="no parameter 'nn'"):
        load_plan(str(p), overrides={"nn": 1})


@pytest.mark.parametrize("cmd", [["run"], ["plan", "show"], ["graph"]])
def test_cli_exits_2_with_location_on_invalid_plan(tmp_path, cmd):
    p = tmp_path / "bad.yaml"
    p.write_text(GOOD.replace("role: quality", "role: reviewer"))
    result = CliRunner().invoke(app, [*cmd, str(p), "-w", str(tmp_path)], catch_exceptions=False)
    assert result.exit_code == 2
    assert "bad.yaml:" in result.output and "tasks[2].role" in result.output


def test_builtin_week2_validates_and_graphs(tmp_path):
    plan = load_plan("week2")
    assert [t for t in plan.order if not t.startswith("finetune[")] == [
        "generate", "to_adp", "build_sft", "audit", "scrub_pii", "rebalance", "benchmark", "report"]
    assert len([t for t in plan.order if t.startswith("finetune[")]) == 5
    assert plan.params["examples_per_agent"] == 1333
    result = CliRunner().invoke(app, ["graph", "week2"], catch_exceptions=False)
    assert result.exit_code == 0
    assert "flowchart TD" in result.output and "gate: data_quality" in result.output


def test_speed_profile_skips_optional_and_overrides_train_dir():
    plan = load_plan("week2", profile="speed")
    assert plan.tasks["scrub_pii"].skip and plan.tasks["rebalance"].skip
    assert plan.tasks["finetune[qa]"].params["train_dir"] == "data/sft"
