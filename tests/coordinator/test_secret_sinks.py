"""A key a step or agent echoes never reaches state, boards, status files, results or the ledger."""

from __future__ import annotations

import sys
import textwrap

from coordinator.engine.ledger import Ledger
from coordinator.engine.runner import RunOptions, run_plan

KEY = "sk-test-0123456789abcdefghijklmnopqrstuv"

STEP = '''
import os

from coordinator import StepContext, StepResult, step


@step()
def leaky(ctx: StepContext) -> StepResult:
    key = os.environ["OPENAI_API_KEY"]
    ctx.record_cost(0.01, model=key, provider="openai", ref="leaky")
    return StepResult(metrics={"answer": "the key is " + key, "items": [key]}, notes=["model said: " + key])
'''


def test_an_echoed_key_is_masked_at_every_sink(ws, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    (ws.root / "steps").mkdir()
    (ws.root / "steps" / "__init__.py").write_text("")
    (ws.root / "steps" / "leak.py").write_text(textwrap.dedent(STEP))
    (ws.root / "p.yaml").write_text("name: p\ntasks:\n  - {id: s, title: S, role: lead, run: 'steps.leak:leaky'}\n")
    try:
        summary = run_plan(ws, RunOptions(plan=str(ws.root / "p.yaml"), render_interval=0))
    finally:
        for name in [m for m in sys.modules if m == "steps" or m.startswith("steps.")]:
            del sys.modules[name]
    assert summary.exit_code == 0, summary.problems
    assert "the key is" in summary.state["tasks"]["s"]["metrics"]["answer"]
    leaked = [p for p in ws.root.rglob("*") if p.is_file() and KEY.encode() in p.read_bytes()]
    assert leaked == []  # checkpoint, results, status.json, boards, events, ledger
    assert all(KEY not in str(c["model"]) for c in Ledger.of(ws.state_dir).calls(summary.run_id))
