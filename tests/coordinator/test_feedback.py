"""A task a gate sends back gets the reviews as data: a step reads `ctx.feedback`, an agent a table."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from coordinator.core.workspace import Workspace
from coordinator.engine.runner import RunOptions, run_plan

STEP = '''
from coordinator import Feedback, StepContext, StepResult, step


@step()
def tune(ctx: StepContext, *, start: float = 0.9) -> StepResult:
    """Lower the rate by what the last review measured; record what it saw."""
    fb: Feedback | None = ctx.feedback
    rate = start
    if fb is not None:
        assert fb.passed("tune.rate") is False
        rate = fb.measured("tune.rate") / 2
    board = ctx.path("task_boards/CLAUDE_EXECUTE_NOW.md")
    if fb is not None and board.exists():
        ctx.path(f"seen-{fb.attempt}.md").write_text(board.read_text())
    return StepResult(metrics={"rate": rate, "attempt": fb.attempt if fb else 1,
                               "max_attempts": fb.max_attempts if fb else None,
                               "earlier": [a.attempt for a in fb.attempts] if fb else [],
                               "note": fb.note if fb else None})
'''

PLAN = """name: fb
tasks:
  - {id: tune, title: Tune, role: lead, run: "steps.tuner:tune"}
gates:
  - id: rate_ok
    after: [tune]
    on_fail: retry
    max_retries: 2
    criteria: [{metric: tune.rate, op: "<", value: 0.3, critical: true}]
"""


@pytest.fixture
def ws(tmp_path: Path):
    root = tmp_path / "ws"
    (root / "steps").mkdir(parents=True)
    (root / "steps" / "__init__.py").write_text("")
    (root / "steps" / "tuner.py").write_text(textwrap.dedent(STEP))
    (root / "plan.yaml").write_text(PLAN)
    yield Workspace.at(root)
    for name in [m for m in sys.modules if m == "steps" or m.startswith("steps.")]:
        del sys.modules[name]


def test_a_step_adjusts_its_parameters_from_the_structured_feedback_and_passes_on_the_third_attempt(ws):
    summary = run_plan(ws, RunOptions(plan=str(ws.root / "plan.yaml"), render_interval=0))

    assert summary.exit_code == 0, summary.problems
    gate = summary.state["gates"]["rate_ok"]
    assert gate["status"] == "approved" and gate["attempt"] == 3
    metrics = summary.state["tasks"]["tune"]["metrics"]
    assert metrics["rate"] == pytest.approx(0.225) and metrics["attempt"] == 3
    assert metrics["max_attempts"] == 3 and metrics["earlier"] == [1, 2]
    # the board an agent would read shows what each earlier attempt measured
    seen = (ws.root / "seen-3.md").read_text()
    assert "What the earlier reviews measured (gate rate_ok; this is attempt 3 of 3)" in seen
    assert "| 1 | tune.rate < 0.3 | 0.9 | < 0.3 | **no** |" in seen
    assert "| 2 | tune.rate < 0.3 | 0.45 | < 0.3 | **no** |" in seen
