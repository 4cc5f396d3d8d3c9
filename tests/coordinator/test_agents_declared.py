"""An agent name the generate step does not know is refused when the plan loads, with the field named and
in the same batch as every other problem; agents of a team's own are named on purpose in ``extra_agents``."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from coordinator.cli.app import app
from coordinator.core.errors import ParameterError, PlanError
from coordinator.core.limits import Limit
from coordinator.core.step import STEPS, StepContext
from coordinator.engine.plan_loader import load_plan


def test_a_misspelt_agent_from_set_is_refused_at_load_with_the_other_problems(ws):
    result = CliRunner().invoke(app, ["run", "week2", "--set", "agents=[qa,foo]", "--set", "launch_threshold=abc",
                                      "-w", str(ws.root)])
    assert result.exit_code == 2
    err = " ".join(result.stderr.split())
    assert ("tasks[0].with.agents: step 'generate': agents[1] must be one of qa, support, legal, analyst, "
            "content (or be listed in extra_agents), got 'foo' (the value of ${agents}, from --set agents)") in err
    assert "gates[1].criteria[2].value: >= compares numbers, got 'abc'" in err  # the same batch
    assert err.count("error:") == 1 and "Traceback" not in result.output
    assert not (ws.root / ".coord").exists() and not (ws.root / "data").exists()  # nothing ran, no "foo" agent


def test_a_plan_file_naming_an_unknown_agent_names_its_line(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("name: p\ntasks:\n  - id: g\n    title: G\n    role: lead\n    run: generate\n"
                    "    with: {agents: [qa, supprot]}\n")
    with pytest.raises(PlanError) as exc:
        load_plan(str(path))
    (line,) = exc.value.describe().replace(f"{tmp_path}/", "").splitlines()
    assert line.startswith("p.yaml:7 → tasks[0].with.agents: step 'generate': agents[1] must be one of")
    assert "got 'supprot'" in line


def test_an_agent_of_ones_own_loads_when_named_in_extra_agents():
    plan = load_plan("week2", overrides={"agents": ["qa", "ops"], "extra_agents": ["ops"]})
    assert plan.tasks["generate"].params["agents"] == ["qa", "ops"]
    assert plan.tasks["generate"].params["extra_agents"] == ["ops"]
    with pytest.raises(PlanError, match=r"extra_agents\[0\] must match"):
        load_plan("week2", overrides={"agents": ["qa"], "extra_agents": ["Ops Team"]})


def test_the_step_refuses_what_the_plan_refuses(tmp_path):
    generate = STEPS.get("generate").fn
    with pytest.raises(ParameterError, match=r"agents \['foo'\] are not built-in agents"):
        generate(StepContext(tmp_path), agents=["qa", "foo"], examples_per_agent=5)
    assert not (tmp_path / "data").exists()
    done = generate(StepContext(tmp_path), agents=["qa", "foo"], extra_agents=["foo"], examples_per_agent=5)
    assert done.metrics["agents"] == 2


def test_choices_from_adds_the_names_another_parameter_lists():
    limit = Limit(choices=("a", "b"), choices_from="more")
    assert limit.problem("names", ["a", "c"], {"more": ["c"]}) is None
    assert limit.problem("names", ["a", "c"], {"more": []}) == \
        "names[1] must be one of a, b (or be listed in more), got 'c'"
    assert limit.problem("names", ["a", "c"]) is not None
