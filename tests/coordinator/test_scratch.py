"""A run's scratch files live under .coord/tmp/, not in the machine's temp directory, and do not outlive it."""

from __future__ import annotations

import sys
import tempfile
import textwrap

from coordinator.engine.runner import RunOptions, run_plan

STEP = '''
import tempfile
from pathlib import Path

from coordinator import StepContext, StepResult, step


@step()
def scratch(ctx: StepContext) -> StepResult:
    made = Path(tempfile.mkdtemp(prefix="coord-test-"))
    (made / "spill.bin").write_bytes(b"x" * 10)
    return StepResult(metrics={"dir": str(made)})
'''


def test_scratch_goes_under_the_workspace_and_a_killed_runs_leftovers_are_removed(ws):
    (ws.root / "steps").mkdir()
    (ws.root / "steps" / "__init__.py").write_text("")
    (ws.root / "steps" / "scratchy.py").write_text(textwrap.dedent(STEP))
    (ws.root / "p.yaml").write_text("name: p\ntasks:\n  - {id: s, title: S, role: lead, run: 'steps.scratchy:scratch'}\n")
    leftover = ws.state_dir / "tmp" / "coord-lsh-from-a-killed-run"
    leftover.mkdir(parents=True)
    before = tempfile.gettempdir()
    try:
        summary = run_plan(ws, RunOptions(plan=str(ws.root / "p.yaml"), render_interval=0))
    finally:
        for name in [m for m in sys.modules if m == "steps" or m.startswith("steps.")]:
            del sys.modules[name]
    assert summary.exit_code == 0, summary.problems
    used = summary.state["tasks"]["s"]["metrics"]["dir"]
    assert used.startswith(str(ws.state_dir / "tmp") + "/")
    assert not leftover.exists() and not (ws.state_dir / "tmp").exists()
    assert tempfile.gettempdir() == before
