"""Every paid LLM call is priced at its worst case before it starts; a run over its limit exits 3.

The outside tester's runs: `--budget 0.001` spent $0.0035 (350 %) on one assignment and printed
"$0.00 of $0.00 (350%)"; a gate's reviewer took a $0.50 budget to $0.60 and the run said
"finished", exit 0; three alerts fired at once.
"""

from __future__ import annotations

import json
import sys
import textwrap

import pytest
from typer.testing import CliRunner

from coordinator.cli.app import app
from coordinator.core.events import read_events
from coordinator.core.llm import format_usd
from coordinator.engine.ledger import Ledger
from coordinator.engine.runner import RunOptions, run_plan, run_status
from tests.fakes.llm_server import FakeLLMServer

KEY = "sk-ant-api03-priced-test-0000000000"
LONG_ANSWER = json.dumps({"summary": "done " * 5000, "deliverables": []})
"""~5,000 output tokens from the loopback server: ~$0.025 at claude-haiku-4-5 prices."""
REVIEW = json.dumps({"summary": "fine", "recommendation": "approve", "findings": []})

PLAN = """name: paid
roles:
  lead: {{agent: claude, driver: llm, provider: anthropic, model: claude-haiku-4-5, base_url: "{url}"}}
  quality: {{agent: codex, driver: llm, provider: anthropic, model: claude-haiku-4-5, base_url: "{url}"}}
tasks:
  - {{id: a, title: Write, role: lead, instructions: Write the notes.}}
gates:
  - {{id: g, after: [a], reviewer: quality, criteria: [{{metric: a.llm_calls, op: ">=", value: 1}}]}}
"""


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    with FakeLLMServer() as srv:
        yield srv


def _write(ws, server, name="paid.yaml", text=PLAN):
    path = ws.root / name
    path.write_text(text.format(url=server.anthropic_url))
    return path


def _kinds(ws, kind):
    return [e for e in read_events(ws.events) if e["kind"] == kind]


def test_a_call_whose_worst_case_does_not_fit_is_never_sent(ws, server):
    path = _write(ws, server)
    result = CliRunner().invoke(app, ["run", str(path), "--budget", "0.001", "-w", str(ws.root)])
    assert result.exit_code == 3, result.output
    assert server.completions == 0  # before: one call, $0.0035 spent of $0.001
    assert "$0.00 of $0.001 (0%)" in result.output  # before: "$0.00 of $0.00 (350%)"
    st = run_status(ws)
    task = st["tasks"]["a"]
    assert task["status"] == "waiting" and task["held_by"] == "budget"
    assert "claude-haiku-4-5 call (up to 8192 output tokens) not started: estimated $0.04" in task["reason"]
    assert "exceeds what is left of the budget of the run ($0.001 of $0.001)" in task["reason"]
    assert _kinds(ws, "budget_alert") == [] and Ledger.of(ws.state_dir).calls(st["run_id"]) == []

    server.reply(json.dumps({"summary": "done", "deliverables": []}))
    server.reply_for("ReviewFindings", REVIEW)
    resumed = CliRunner().invoke(app, ["budget", "raise", "1", "-w", str(ws.root)])
    assert resumed.exit_code == 0 and "resumed and finished" in resumed.output, resumed.output


def test_the_gate_reviewer_is_priced_too_and_skipped_when_it_does_not_fit(ws, server):
    server.reply(LONG_ANSWER)  # the assignment: ~$0.025; the reviewer's worst case (4096 tokens) is > $0.02
    server.reply_for("ReviewFindings", REVIEW)
    path = _write(ws, server)
    summary = run_plan(ws, RunOptions(plan=str(path), budget_usd=0.045, render_interval=0))
    assert server.completions == 1  # the assignment's call only
    review = summary.state["gates"]["g"]["model_review"]
    assert review["status"] == "skipped" and "exceeds what is left of the budget of the run" in review["reason"]
    rows = Ledger.of(ws.state_dir).calls(summary.run_id)
    assert len(rows) == 1 and sum(r["usd"] for r in rows) <= 0.045  # never past the limit
    assert summary.exit_code == 0 and summary.phase == "finished"
    assert any("gate g: the reviewer model was not called" in p for p in summary.problems)
    assert not any("paused" in p for p in summary.problems)


STEPS = '''
from coordinator import StepContext, StepResult, step


@step()
def spend(ctx: StepContext, *, usd: float, ref: str) -> StepResult:
    ctx.record_cost(usd, model="m", provider="p", ref=ref)
    return StepResult(metrics={"usd": usd})
'''


@pytest.fixture
def spend_steps(ws):
    (ws.root / "steps").mkdir()
    (ws.root / "steps" / "__init__.py").write_text("")
    (ws.root / "steps" / "money.py").write_text(textwrap.dedent(STEPS))
    yield
    for name in [m for m in sys.modules if m == "steps" or m.startswith("steps.")]:
        del sys.modules[name]


OVER = """name: over
budget: {usd: 0.5}
tasks:
  - {id: s, title: Spend, role: lead, run: 'steps.money:spend', with: {usd: 0.6, ref: s}}
"""


def test_a_run_that_ends_past_its_limit_waits_on_a_person_and_exits_3(ws, spend_steps):
    (ws.root / "over.yaml").write_text(OVER)
    result = CliRunner().invoke(app, ["run", str(ws.root / "over.yaml"), "-w", str(ws.root)])
    assert result.exit_code == 3, result.output  # before: "finished: every task done", exit 0
    assert "finished" not in result.output and "is waiting for a person" in result.output
    assert "$0.60 of $0.50 (120%)" in result.output and "nobody approved the overrun" in result.output
    assert run_status(ws)["phase"] == "waiting"
    approved = CliRunner().invoke(app, ["budget", "approve", "-w", str(ws.root)])
    assert approved.exit_code == 0 and "resumed and finished" in approved.output
    assert run_status(ws)["phase"] == "finished"


CHAIN = """name: chain
budget: {usd: 1.0}
tasks:
  - {id: s1, title: One, role: lead, run: 'steps.money:spend', with: {usd: 0.3, ref: s1}}
  - {id: s2, title: Two, role: lead, needs: [s1], run: 'steps.money:spend', with: {usd: 0.3, ref: s2}}
  - {id: s3, title: Three, role: lead, needs: [s2], run: 'steps.money:spend', with: {usd: 0.3, ref: s3}}
"""


def test_each_alert_fires_once_when_its_threshold_is_crossed(ws, spend_steps):
    (ws.root / "chain.yaml").write_text(CHAIN)
    summary = run_plan(ws, RunOptions(plan=str(ws.root / "chain.yaml"), render_interval=0))
    assert summary.exit_code == 0
    seen = [(e["kind"], e.get("task") or e.get("threshold")) for e in read_events(ws.events)
            if e["kind"] in ("budget_alert", "task_started")]
    assert seen == [("task_started", "s1"), ("budget_alert", 0.25), ("task_started", "s2"),
                    ("budget_alert", 0.5), ("task_started", "s3"), ("budget_alert", 0.8)]
    assert [e["spent_usd"] for e in _kinds(ws, "budget_alert")] == pytest.approx([0.3, 0.6, 0.9])


@pytest.mark.parametrize(("usd", "shown"), [
    (0.0, "$0.00"), (0.001, "$0.001"), (0.0035, "$0.0035"), (0.00004, "$0.00004"), (0.5, "$0.50"),
    (0.6, "$0.60"), (0.0409, "$0.041"), (12.4, "$12.40"), (1234.5, "$1,234.50"), (None, "unknown")])
def test_amounts_show_enough_digits_to_tell_them_apart(usd, shown):
    assert format_usd(usd) == shown
