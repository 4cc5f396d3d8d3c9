"""Steps that live in the workspace (`run: steps.mod:function`), through the same step API as week2's."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from coordinator.core.errors import PlanError
from coordinator.core.workspace import Workspace
from coordinator.engine.plan_loader import load_plan
from coordinator.engine.runner import RunOptions, run_plan

STEP = '''
from coordinator import StepContext, StepResult, StepRun, WsPath, step


@step(limits={{"copies": (1, 10)}})
def write(ctx: StepContext, *, out: WsPath = WsPath("data/out.txt"), copies: int = 1) -> StepResult:
    path = ctx.path(out)
    run = StepRun(ctx, "write", {{"copies": copies}}, inputs=[], outputs=[path])
    if (cached := run.cached()) is not None:
        return cached
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{text}\\n" * copies)
    run.record(path, rows=copies)
    return run.finish({{"copies": copies}})
'''

PLAN = """name: ws
tasks:
  - {id: w, title: Write, role: lead, run: "steps.writer:write", with: {copies: 2}}
"""


@pytest.fixture
def ws(tmp_path: Path):
    root = tmp_path / "ws"
    (root / "steps").mkdir(parents=True)
    (root / "steps" / "__init__.py").write_text("")
    (root / "plan.yaml").write_text(PLAN)
    yield Workspace.at(root)
    for name in [m for m in sys.modules if m == "steps" or m.startswith("steps.")]:
        del sys.modules[name]


def _write_step(ws: Workspace, text: str) -> None:
    (ws.root / "steps" / "writer.py").write_text(textwrap.dedent(STEP.format(text=text)))


def _run(ws: Workspace, **kw):
    return run_plan(ws, RunOptions(plan=str(ws.root / "plan.yaml"), render_interval=0, **kw))


def test_a_workspace_step_runs_and_an_unchanged_rerun_is_skipped(ws):
    _write_step(ws, "hello")
    first = _run(ws)
    assert first.exit_code == 0, first.problems
    assert (ws.root / "data" / "out.txt").read_text() == "hello\nhello\n"
    again = _run(ws, fresh=True)
    assert again.state["tasks"]["w"]["skipped_run"] is True


def test_editing_a_workspace_steps_code_makes_it_run_again(ws):
    _write_step(ws, "hello")
    assert _run(ws).exit_code == 0
    _write_step(ws, "bonjour")
    for name in [m for m in sys.modules if m == "steps" or m.startswith("steps.")]:
        del sys.modules[name]  # a new process would import the edited module
    from coordinator.core import step as step_api

    step_api._by_ref.clear()
    second = _run(ws, fresh=True)
    assert second.state["tasks"]["w"].get("skipped_run") is not True
    assert (ws.root / "data" / "out.txt").read_text() == "bonjour\nbonjour\n"


def test_a_limit_of_a_workspace_step_is_checked_when_the_plan_loads(ws):
    _write_step(ws, "hello")
    (ws.root / "plan.yaml").write_text(PLAN.replace("copies: 2", "copies: 99"))
    with pytest.raises(PlanError, match=r"plan.yaml:3 → tasks\[0\].with.copies: step 'steps.writer:write': copies must be from 1 to 10"):
        load_plan(str(ws.root / "plan.yaml"), workspace=ws.root)


@pytest.mark.parametrize(("source", "message"), [
    (None, r"tasks\[0\].run: step 'steps.writer:write': cannot import 'steps.writer'"),
    ("def write(ctx, n):\n    pass\n",
     r"step 'steps.writer:write': parameters \['n'\] must be keyword-only .*writer.py:1\)"),
    ("x = 1\n", r"module 'steps.writer' \(.*writer.py\) has no 'write'"),
    ("import nothing_like_this\n", r"cannot import 'steps.writer': .*writer.py:1: ModuleNotFoundError"),
    ("def write(ctx, *, n: int) -> None:\n    pass\n", r"step 'steps.writer:write' needs parameter 'n'"),
])
def test_broken_user_code_is_a_plan_error_naming_the_file_and_line(ws, source, message):
    if source is not None:
        (ws.root / "steps" / "writer.py").write_text(source)
    with pytest.raises(PlanError, match=message):
        load_plan(str(ws.root / "plan.yaml"), workspace=ws.root)


def test_coord_run_on_broken_user_code_exits_2_with_the_location_and_starts_nothing(ws):
    from typer.testing import CliRunner

    from coordinator.cli.app import app

    (ws.root / "steps" / "writer.py").write_text("def write(ctx, *, copies: int = 1):\n    return None\n\nx = 1 / 0\n")
    result = CliRunner().invoke(app, ["run", str(ws.root / "plan.yaml"), "-w", str(ws.root)],
                                catch_exceptions=False)
    assert result.exit_code == 2
    assert "cannot import 'steps.writer'" in result.output and "writer.py:4: ZeroDivisionError" in result.output
    assert not (ws.root / ".coord" / "runs").exists() or not any((ws.root / ".coord" / "runs").iterdir())
