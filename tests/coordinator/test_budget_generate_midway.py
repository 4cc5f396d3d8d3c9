"""A budget that runs out in the middle of generation holds the task; a raise finishes it without paying twice."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from coordinator.cli.app import app
from coordinator.engine.ledger import Ledger
from coordinator.engine.runner import RunOptions, run_plan, run_status
from tests.fakes.llm_server import FakeLLMServer

pytestmark = pytest.mark.slow

N = 30
PLAN = f"""name: gen
budget: {{usd: 0.09}}
tasks:
  - id: generate
    title: Generate with Claude
    role: lead
    run: generate
    with: {{agents: [qa], examples_per_agent: {N}, provider: anthropic, model: claude-haiku-4-5, concurrency: 4}}
"""


def _long_answer(body: dict) -> str:
    """~2,000 output words (~$0.01 at claude-haiku-4-5 prices), far more than the estimate assumes."""
    turns = [{"role": "user", "content": "Find the flaky test."},
             {"role": "assistant", "content": "Searching.", "tool_call": {"name": "search_runs", "arguments": {}}},
             {"role": "tool", "content": "{\"flaky\": 3}"},
             {"role": "assistant", "content": "Quarantine it and rerun. " * 500}]
    return json.dumps({"system": "You are the QA agent of the team.", "turns": turns})


def test_budget_runs_out_mid_generation_then_a_raise_pays_only_for_the_rest(ws, monkeypatch):
    with FakeLLMServer() as server:
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-api03-gen-midway-0000")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.anthropic_url)
        server.reply_fn = _long_answer
        (ws.root / "gen.yaml").write_text(PLAN)
        summary = run_plan(ws, RunOptions(plan=str(ws.root / "gen.yaml"), render_interval=0))
        rec = summary.state["tasks"]["generate"]
        assert summary.exit_code == 3 and rec["status"] == "waiting" and rec["held_by"] == "budget"
        assert "generate 'qa' stopped" in rec["reason"] and "exceeds what is left" in rec["reason"]
        paid_first = server.completions
        assert 0 < paid_first < N
        ledger = Ledger.of(ws.root / ".coord")
        assert len(ledger.calls(summary.run_id)) == paid_first  # in-flight calls were recorded

        out = CliRunner().invoke(app, ["budget", "raise", "1", "-w", str(ws.root)], catch_exceptions=False)
        assert out.exit_code == 0, out.output
        st = run_status(ws)
        assert st["phase"] == "finished" and st["tasks"]["generate"]["metrics"]["examples"] == N
        assert server.completions == N  # nothing answered before the hold was asked for again
        assert len(ledger.calls(summary.run_id)) == N
