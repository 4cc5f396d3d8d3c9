"""Generation refuses to start past the budget inside a run: the task waits (exit 3) until a raise."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from coordinator.cli.app import app
from coordinator.core.events import read_events
from coordinator.engine.runner import RunOptions, run_plan, run_status
from tests.fakes.llm_server import FakeLLMServer

PLAN = """name: gen
budget: {usd: 0.001}
tasks:
  - id: generate
    title: Generate with Claude
    role: lead
    run: generate
    with: {agents: [qa], examples_per_agent: 5, provider: anthropic, model: claude-haiku-4-5}
  - {id: after, title: After, role: quality, needs: [generate], run: t_noop}
"""
EXAMPLE = {"system": "You are the QA agent of the team.", "turns": [
    {"role": "user", "content": "How should we test the export?"},
    {"role": "assistant", "content": "Check the row counts, the encoding and the empty case."}]}


def test_generate_waits_for_budget_then_runs_after_a_raise(ws, monkeypatch):
    with FakeLLMServer() as server:
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-api03-gen-budget-0000")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.anthropic_url)
        for i in range(5):
            turns = [{"role": "user", "content": f"How should we test export number {i}?"}, EXAMPLE["turns"][1]]
            server.reply(json.dumps({**EXAMPLE, "turns": turns}))
        (ws.root / "gen.yaml").write_text(PLAN)
        summary = run_plan(ws, RunOptions(plan=str(ws.root / "gen.yaml"), render_interval=0))
        rec = summary.state["tasks"]["generate"]
        assert summary.exit_code == 3 and rec["status"] == "waiting" and rec["held_by"] == "budget"
        assert "generating 5 examples with anthropic claude-haiku-4-5 not started" in rec["reason"]
        assert server.calls("messages") == []
        kinds = [e["kind"] for e in read_events(ws.events) if e.get("task") == "generate"]
        assert "task_held" in kinds and "task_failed" not in kinds
        out = CliRunner().invoke(app, ["budget", "raise", "1", "-w", str(ws.root)], catch_exceptions=False)
        assert out.exit_code == 0, out.output
        st = run_status(ws)
        assert st["phase"] == "finished" and st["tasks"]["generate"]["metrics"]["examples"] == 5
        assert len(server.calls("messages")) == 5
        costs = CliRunner().invoke(app, ["costs", "--by", "model", "--json", "-w", str(ws.root)],
                                   catch_exceptions=False)
        [model] = json.loads(costs.output)["model"]
        assert model["key"] == "claude-haiku-4-5" and model["calls"] == 5 and model["usd"] > 0
