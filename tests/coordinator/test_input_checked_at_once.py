"""Everything `coord run` is given is checked before anything runs, and every problem is reported at once."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from coordinator.cli.app import app
from coordinator.core.errors import PlanError, UsageError
from coordinator.engine.plan_loader import load_plan

BAD = """name: bad
params: {n: 3}
tasks:
  - {id: a, title: A, role: leed, instructions: do it}
  - {id: b, title: B, role: lead, needs: [zz], instructions: do it}
  - {id: c, title: C, role: lead, instructions: do it, foreach: "${n}"}
gates:
  - {id: g, after: [b], criteria: [{metric: b.x, op: ">=", value: "${n}"}]}
"""


def _run(ws, *args):
    return CliRunner().invoke(app, ["run", *args, "-w", str(ws.root)])


def test_plan_references_and_command_line_values_are_reported_in_one_batch(ws):
    (ws.root / "bad.yaml").write_text(BAD)
    result = _run(ws, str(ws.root / "bad.yaml"), "--set", "zz=1", "--set", "n=abc", "--set", "oops",
                  "--budget", "-1", "--profile", "fast")
    assert result.exit_code == 2
    err = result.stderr
    for expected in ("bad.yaml:4 → tasks[0].role: unknown role 'leed'",
                     "bad.yaml:5 → tasks[1].needs[0]: unknown task or gate 'zz'",
                     "--set: plan 'bad' has no parameter 'zz'",
                     "--set expects key=value, got 'oops'",
                     "--budget must be a positive number of USD, got '-1'",
                     "unknown profile 'fast' for plan 'bad'",
                     "bad.yaml:6 → tasks[2].foreach: foreach must give a non-empty list of names or numbers, got 'abc'",
                     "bad.yaml:8 → gates[0].criteria[0].value: >= compares numbers, got 'abc'"):
        assert expected in err, f"missing {expected!r} in:\n{err}"
    assert err.count("error:") == 1 and "Traceback" not in result.output
    assert not (ws.root / ".coord").exists() and not (ws.root / "task_boards").exists()  # nothing written


def test_load_plan_reports_set_and_profile_problems_with_the_plans_own(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    with pytest.raises(PlanError) as exc:
        load_plan(str(path), profile="fast", overrides={"zz": 1})
    text = str(exc.value)
    assert "unknown role 'leed'" in text and "unknown task or gate 'zz'" in text
    assert "unknown profile 'fast'" in text and "no parameter 'zz'" in text


def test_a_gate_value_from_set_is_checked_at_load(ws):
    result = _run(ws, "week2", "--set", "launch_threshold=abc")
    assert result.exit_code == 2
    assert "gates[1].criteria[2].value: >= compares numbers, got 'abc'" in result.stderr
    assert "from --set launch_threshold" in result.stderr and not (ws.root / ".coord").exists()


@pytest.mark.parametrize(("binding", "expected"), [
    ("{agent: claude, driver: offlne}", "coord.yaml:2 → roles.lead.driver: unknown driver 'offlne'"),
    ("{agent: claud}", "coord.yaml:2 → roles.lead.agent: unknown agent 'claud': did you mean 'claude'?"),
    ("{agent: Codex}", "coord.yaml:2 → roles.lead.agent: unknown agent 'Codex': did you mean 'codex'?"),
])
def test_a_typo_in_coord_yaml_names_the_file_line_and_field(ws, binding, expected):
    (ws.root / "coord.yaml").write_text(f"roles:\n  lead: {binding}\n")
    result = _run(ws, "week2")
    assert result.exit_code == 2 and expected in result.stderr, result.stderr
    assert "pydantic" not in result.stderr and not (ws.root / "task_boards").exists()


def test_a_typo_of_an_agent_in_a_plan_is_a_plan_error_but_a_name_of_ones_own_is_fine(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("name: p\nroles:\n  signoff: {agent: humn, driver: human}\n"
                    "tasks:\n  - {id: a, title: A, role: signoff, instructions: sign}\n")
    with pytest.raises(UsageError, match=r"p.yaml:3 → roles.signoff.agent: unknown agent 'humn': did you mean "
                                         r"'human'\?"):
        load_plan(str(path))
    path.write_text("name: p\nroles:\n  writer: {agent: gemini}\n"
                    "tasks:\n  - {id: a, title: A, role: writer, instructions: write}\n")
    assert load_plan(str(path)).roles["writer"].agent == "gemini"
