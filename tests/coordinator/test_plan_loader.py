"""Plan validation: every error names the file, the line and the path inside the plan."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from coordinator.cli.app import app
from coordinator.core.errors import PlanError, UsageError
from coordinator.engine.plan_loader import load_plan

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
        (("run: t_noop\n    with", "run: no_such_step\n    with"), "tasks[0].run", "unknown step 'no_such_step'"),
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


def _lines(exc: PlanError, tmp_path=None) -> list[str]:
    text = exc.describe()
    return (text.replace(f"{tmp_path}/", "") if tmp_path else text).splitlines()


@pytest.mark.parametrize(
    ("with_", "message"),
    [
        ("{agents: [qa], concurrency: 0}", "concurrency must be from 1 to 64, got 0"),
        ("{agents: [qa], concurrency: 65}", "concurrency must be from 1 to 64, got 65"),
        ("{agents: [qa], concurrency: eight}", "expects an integer, got 'eight'"),
        ("{agents: [qa], concurrency: 2.5}", "expects an integer, got 2.5"),
        ("{agents: [qa], examples_per_agent: 0}", "examples_per_agent must be at least 1, got 0"),
        ("{agents: qa}", "expects list[str], got 'qa'"),
        ("{agents: [qa], difficulty_mix: {easy: lots}}", "got {'easy': 'lots'}"),
        ("{agents: [qa], conccurrency: 4}", "step 'generate' has no parameter 'conccurrency'"),
    ],
)
def test_step_parameters_are_checked_against_the_step_at_load(tmp_path, with_, message):
    text = f"name: g\ntasks:\n  - id: gen\n    title: Generate\n    role: lead\n    run: generate\n    with: {with_}\n"
    with pytest.raises(PlanError) as exc:
        _load(tmp_path, text)
    (line,) = _lines(exc.value, tmp_path)
    assert line.startswith("plan.yaml:7 → tasks[0].with.") and message in line


def test_a_set_override_is_checked_against_the_step_parameter_it_fills(tmp_path):
    with pytest.raises(PlanError) as exc:
        load_plan("week2", overrides={"generate_concurrency": 0})
    (line,) = _lines(exc.value)
    assert line.startswith("week2.yaml (built in):")
    assert "tasks[0].with.concurrency" in line and "must be from 1 to 64, got 0" in line
    assert "--set generate_concurrency" in line
    with pytest.raises(PlanError, match=r"expects an integer, got 'abc'.*--set examples_per_agent"):
        load_plan("week2", overrides={"examples_per_agent": "abc"})
    assert load_plan("week2", overrides={"generate_concurrency": 2}).tasks["generate"].params["concurrency"] == 2


def test_cli_refuses_a_bad_set_value_before_writing_anything(tmp_path):
    result = CliRunner().invoke(app, ["run", "week2", "--set", "generate_concurrency=0", "-w", str(tmp_path)])
    assert result.exit_code == 2 and result.stdout == ""
    assert "tasks[0].with.concurrency" in result.stderr and "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


def test_mistakes_in_every_layer_are_reported_in_one_go(tmp_path):
    text = """name: many
tasks:
  - id: a
    title: A
    role: lead
    run: t_noop
    colour: blue
  - id: b
    title: B
    role: reviewer
    needs: [a, c]
    run: t_noop
    with: {value: many}
  - id: c
    title: C
    role: execution
    needs: [b]
    run: t_noop
  - id: d
    title: D
    role: lead
    needs: [nowhere]
    run: t_noop
"""
    with pytest.raises(PlanError) as exc:
        _load(tmp_path, text)
    lines = _lines(exc.value, tmp_path)
    assert "plan.yaml:7 → tasks[0].colour: unknown field" in lines  # schema
    assert ("plan.yaml:10 → tasks[1].role: unknown role 'reviewer' (known: execution, lead, quality; "
            "declare it under the plan's roles:, coord.yaml only rebinds roles)") in lines
    assert any(ln.startswith("plan.yaml:13 → tasks[1].with.value: step 't_noop' expects an integer")
               for ln in lines)  # step parameters
    assert "plan.yaml:22 → tasks[3].needs[0]: unknown task or gate 'nowhere'" in lines  # references
    assert any("dependency cycle" in ln and "b" in ln and "c" in ln for ln in lines)  # cycle
    assert len(lines) == 5
    # a task the schema rejected is still a known id: nothing else is reported about it
    assert not any("unknown task or gate 'a'" in ln for ln in lines)


def test_plan_roles_extend_and_rebind_the_default_roles(tmp_path):
    text = GOOD.replace("tasks:", "roles:\n  signoff: {agent: human, driver: human}\n"
                                  "  quality: {agent: human, driver: human}\ntasks:", 1)
    text = text.replace("gates:", """  - id: sign
    title: Sign
    role: signoff
    needs: [last]
    instructions: tick it
gates:""")
    plan = _load(tmp_path, text)
    assert set(plan.roles) == {"lead", "quality", "execution", "signoff"}
    assert plan.roles["lead"].agent == "claude" and plan.roles["execution"].agent == "cursor"
    assert plan.roles["quality"].agent == "human" and plan.roles["signoff"].driver == "human"


def test_workspace_config_binding_a_role_the_plan_does_not_use_is_not_a_warning(tmp_path, caplog):
    from roles.definitions import resolve_roles

    text = GOOD.replace("role: quality", "role: lead").replace("role: execution", "role: lead")
    plan = _load(tmp_path, text.replace("tasks:", "roles:\n  lead: {agent: claude, driver: offline}\ntasks:", 1))
    overrides = {r: {"agent": a} for r, a in (("lead", "claude"), ("quality", "codex"), ("execution", "cursor"))}
    with caplog.at_level("INFO"):
        roles = resolve_roles(plan.roles, overrides)
    assert set(roles) == {"lead", "quality", "execution"}
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


def test_a_threshold_that_is_not_a_number_is_refused_when_the_plan_loads():
    from coordinator.engine.plan_loader import load_plan

    with pytest.raises(PlanError, match=r"week2.yaml \(built in\):\d+ → gates\[1\].criteria\[\d\].value: >= compares "
                                        r"numbers, got 'abc' \(the value of \$\{launch_threshold\}, from --set "
                                        r"launch_threshold\)"):
        load_plan("week2", overrides={"launch_threshold": "abc"})
