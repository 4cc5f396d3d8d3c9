"""Budgets: a hit mid-run holds new paid work (exit 3), `coord budget raise` resumes it; role budgets; alerts."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from coordinator.cli.app import app
from coordinator.core.errors import BudgetExceeded
from coordinator.core.events import read_events
from coordinator.core.llm import CallRecord, Cost
from coordinator.core.plan import Budget
from coordinator.engine.budget import RunBudget
from coordinator.engine.ledger import Ledger
from coordinator.engine.runner import RunOptions, run_plan, run_status
from coordinator.engine.stores import open_ledger
from tests.fakes.llm_server import FakeLLMServer

KEY = "sk-ant-api03-budget-test-000000000"
ANSWER = json.dumps({"summary": "done", "deliverables": []})
LONG_ANSWER = json.dumps({"summary": "done " * 5000, "deliverables": []})
"""~5,000 output tokens from the loopback server: ~$0.025 at claude-haiku-4-5 prices."""

PLAN = """name: paid
roles:
  lead: {{agent: claude, driver: llm, provider: anthropic, model: claude-haiku-4-5, base_url: "{url}"{lead_extra}}}
  quality: {{agent: codex}}
  execution: {{agent: cursor}}
budget: {{usd: {usd}}}
tasks:
  - {{id: a, title: First, role: lead, instructions: Write part one.}}
  - {{id: free, title: Free step, role: quality, needs: [a], run: t_noop}}
  - {{id: b, title: Second, role: lead, needs: [a], instructions: Write part two.}}
  - {{id: c, title: Third, role: lead, needs: [b], instructions: Write part three.}}
"""


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    with FakeLLMServer() as srv:
        srv.default_reply = ANSWER
        yield srv


def _run(ws, server, usd, lead_extra=""):
    path = ws.root / "paid.yaml"
    path.write_text(PLAN.format(url=server.anthropic_url, usd=usd, lead_extra=lead_extra))
    return run_plan(ws, RunOptions(plan=str(path), render_interval=0))


def _kinds(ws, kind):
    return [e for e in read_events(ws.events) if e["kind"] == kind]


@pytest.mark.slow
def test_budget_hit_mid_run_holds_paid_work_and_a_raise_resumes_it(ws, server):
    # a call may cost up to ~$0.042 (8192 output tokens); this one costs ~$0.025, so the next one no longer fits
    server.default_reply = LONG_ANSWER
    summary = _run(ws, server, usd=0.06)
    tasks = summary.state["tasks"]
    assert summary.exit_code == 3
    assert tasks["a"]["status"] == "done" and tasks["free"]["status"] == "done"  # free work still ran
    assert tasks["b"]["status"] == "waiting" and tasks["b"]["held_by"] == "budget"
    assert tasks["c"]["status"] == "pending"
    assert len(server.calls("messages")) == 1
    assert "exceeds what is left of the budget of the run" in tasks["b"]["reason"]
    assert "coord budget raise" in tasks["b"]["reason"]
    assert any(p.startswith("budget: $") and "held" in p and "coord budget raise" in p for p in summary.problems)
    assert [e["task"] for e in _kinds(ws, "task_held")] == ["b"]
    assert [e["threshold"] for e in _kinds(ws, "budget_alert")] == [0.25]
    [row] = open_ledger(ws).calls(summary.run_id)
    assert row["pending"] == 0 and row["usd"] < 0.06  # the limit was never crossed
    assert "exceeds what is left" in (ws.boards / "CLAUDE_TASKS.md").read_text()
    st = run_status(ws)
    assert st["phase"] == "waiting" and not st["budget"]["exhausted"] and st["budget"]["alerts"] == [0.25]

    result = CliRunner().invoke(app, ["budget", "raise", "5", "-w", str(ws.root)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "of $5.06" in result.output and "finished" in result.output
    st = run_status(ws)
    assert st["phase"] == "finished" and not st["budget"]["exhausted"]
    assert {t: st["tasks"][t]["status"] for t in "abc"} == {"a": "done", "b": "done", "c": "done"}
    assert len(server.calls("messages")) == 3  # nothing paid ran twice
    assert len(open_ledger(ws).calls(summary.run_id)) == 3


@pytest.mark.slow
def test_a_role_budget_holds_only_that_roles_paid_work(ws, server):
    server.default_reply = LONG_ANSWER
    summary = _run(ws, server, usd=100, lead_extra=", budget_usd: 0.06")
    assert summary.exit_code == 3
    assert summary.state["tasks"]["b"]["held_by"] == "budget"
    assert "exceeds what is left of the budget of role 'lead'" in summary.state["tasks"]["b"]["reason"]
    assert "--role lead" in summary.state["tasks"]["b"]["reason"]
    result = CliRunner().invoke(app, ["budget", "raise", "1", "--role", "lead", "-w", str(ws.root)],
                                catch_exceptions=False)
    assert result.exit_code == 0 and run_status(ws)["phase"] == "finished"


@pytest.mark.slow
def test_approval_lets_the_run_continue_past_the_limit(ws, server):
    _run(ws, server, usd=0.0001)
    result = CliRunner().invoke(app, ["budget", "approve", "-w", str(ws.root)], catch_exceptions=False)
    assert result.exit_code == 0 and "approved by a person" in result.output
    assert run_status(ws)["phase"] == "finished"


def test_estimates_past_what_is_left_are_refused(tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite")
    budget = RunBudget(ledger, "r1", Budget(usd=10.0), {})
    ledger.record(CallRecord("llm", "anthropic", "m", cost=Cost(7.5)), run_id="r1", task_id="t", role="lead",
                  agent="claude")
    budget.check("lead", 2.0, "generate")  # fits: $2.50 left
    with pytest.raises(BudgetExceeded, match=r"estimated \$3.00 exceeds what is left .* \(\$2.50 of \$10.00\)"):
        budget.check("lead", 3.0, "generate")
    ledger.change_budget("r1", "run", "raise", 5.0)
    budget.check("lead", 3.0, "generate")
    assert budget.status().run.limit_usd == 15.0 and budget.status().alerts == (0.25, 0.5)


def test_unknown_costs_are_counted_apart_not_guessed(tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite")
    ledger.record(CallRecord("llm", "openai_compatible", "llama3.1:8b", cost=Cost(None, "no inference price")),
                  run_id="r", task_id="t", role="lead", agent="claude")
    ledger.record(CallRecord("llm", "anthropic", "claude-haiku-4-5", cost=Cost(0.25)), run_id="r", task_id="t",
                  role="lead", agent="claude")
    [total] = ledger.totals("r", "role")
    assert (total.calls, total.usd, total.unknown) == (2, 0.25, 1)
    assert ledger.flags("r") == ["no inference price"]


def test_cli_runs_are_recorded_in_the_ledger(tmp_path, monkeypatch):
    """A Claude Code run (fake CLI) lands in the ledger with the cost and tokens it reported."""
    import os
    import sys
    from pathlib import Path

    from git import Actor, Repo

    from coordinator.core.workspace import Workspace

    fake_bin = Path(__file__).resolve().parents[1] / "fakes" / "bin"
    monkeypatch.setenv("PATH", os.pathsep.join([str(fake_bin), str(Path(sys.executable).parent),
                                                os.environ.get("PATH", "")]))
    monkeypatch.setenv("FAKE_AGENT_RECORD", str(tmp_path / "calls"))
    root = tmp_path / "ws"
    root.mkdir()
    repo = Repo.init(root, initial_branch="main")
    (root / ".gitignore").write_text(".coord/\ndata/\n")
    repo.index.add([".gitignore"])
    repo.index.commit("initial", author=Actor("T", "t@example.com"), committer=Actor("T", "t@example.com"))
    ws = Workspace.at(root)
    (root / "p.yaml").write_text("""name: p
roles:
  lead: {agent: claude, driver: cli, model: claude-haiku-4-5}
tasks:
  - {id: notes, title: Notes, role: lead, instructions: Write the notes., accept: [{file: docs/notes.md}]}
""")
    summary = run_plan(ws, RunOptions(plan=str(root / "p.yaml"), render_interval=0))
    assert summary.exit_code == 0, summary.problems
    [row] = open_ledger(ws).calls(summary.run_id)
    assert (row["kind"], row["provider"], row["model"], row["role"], row["agent"]) == \
        ("cli", "cli:claude", "claude-haiku-4-5", "lead", "claude")
    assert row["usd"] == pytest.approx(0.0125) and row["tokens_in"] == 900 and row["tokens_cached"] == 100


@pytest.mark.slow
def test_budget_raise_reports_a_live_run_but_does_not_swallow_other_errors(ws, server, monkeypatch):
    from coordinator.core.errors import WorkspaceBusyError
    from coordinator.core.workspace import WorkspaceLock

    assert _run(ws, server, usd=0.0001).phase == "waiting"

    def busy(self):
        raise WorkspaceBusyError("workspace is in use by pid 1")

    monkeypatch.setattr(WorkspaceLock, "__enter__", busy)
    result = CliRunner().invoke(app, ["budget", "raise", "5", "-w", str(ws.root)])
    assert result.exit_code == 0 and "live in another process" in result.stdout

    def broken(self):
        raise PermissionError(13, "Permission denied", str(self.path))

    monkeypatch.setattr(WorkspaceLock, "__enter__", broken)
    result = CliRunner().invoke(app, ["budget", "raise", "5", "-w", str(ws.root)])
    assert result.exit_code == 1  # a real error is reported as one, not passed off as a live run
    assert "error: Permission denied" in result.stderr and "Traceback" not in result.output
    assert "live in another process" not in result.output


@pytest.mark.parametrize("command", [["resume"], ["run", "{plan}"]])
def test_budget_given_on_resume_sets_the_runs_limit(ws, server, command):
    summary = _run(ws, server, usd=0.0001)
    assert summary.phase == "waiting"
    args = [a.format(plan=ws.root / "paid.yaml") for a in command]
    result = CliRunner().invoke(app, [*args, "--budget", "5", "-w", str(ws.root)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert f"run {summary.run_id} resumed and finished" in result.stdout
    changes = open_ledger(ws).budget_changes(summary.run_id)
    assert [(c.scope, c.kind, c.usd) for c in changes] == [("run", "set", 5.0)]
    st = run_status(ws)
    assert st["phase"] == "finished" and st["budget"]["run"]["limit_usd"] == 5.0
    assert "of $5.00" in CliRunner().invoke(app, ["status", "-w", str(ws.root)]).stdout
    resumed = _kinds(ws, "run_resumed")
    assert resumed[-1]["budget_usd"] == 5.0


def test_bad_budget_on_resume_is_refused(ws, server):
    summary = _run(ws, server, usd=0.0001)
    result = CliRunner().invoke(app, ["resume", "--budget", "-3", "-w", str(ws.root)])
    assert result.exit_code == 2 and "--budget must be a positive number" in result.stderr
    assert open_ledger(ws).budget_changes(summary.run_id) == []


FREE = """name: free
tasks:
  - {id: a, title: A, role: quality, run: t_noop}
"""


@pytest.mark.parametrize(("args", "message"), [
    (["nan"], "the amount to add must be a positive number of USD"),
    (["inf"], "the amount to add must be a positive number of USD"),
    (["-3"], "the amount to add must be a positive number of USD"),
    (["0", "--to"], "the new limit must be a positive number of USD"),
    (["inf", "--to"], "the new limit must be a positive number of USD"),
    (["10"], "has no budget limit, so there is nothing to raise"),
])
def test_budget_raise_validates_like_run_budget_and_never_caps_an_unlimited_run(ws, args, message):
    (ws.root / "free.yaml").write_text(FREE)
    summary = run_plan(ws, RunOptions(plan=str(ws.root / "free.yaml"), render_interval=0))
    assert summary.phase == "finished"
    result = CliRunner().invoke(app, ["budget", "raise", *args, "--run", summary.run_id, "-w", str(ws.root)])
    assert result.exit_code == 2 and message in result.stderr and "Traceback" not in result.output
    assert open_ledger(ws).budget_changes(summary.run_id) == []
    assert run_status(ws)["budget"]["run"]["limit_usd"] is None


def test_budget_raise_on_a_finished_run_does_not_suggest_resume(ws):
    (ws.root / "free.yaml").write_text(FREE)
    summary = run_plan(ws, RunOptions(plan=str(ws.root / "free.yaml"), render_interval=0))
    result = CliRunner().invoke(app, ["budget", "raise", "5", "--to", "--run", summary.run_id, "-w", str(ws.root)])
    assert result.exit_code == 0, result.output
    assert "of $5.00" in result.stdout and "has finished" in result.stdout
    assert "coord resume" not in result.output


def test_a_role_without_a_limit_gets_one_with_to_and_a_plain_raise_says_how(ws):
    (ws.root / "free.yaml").write_text(FREE)
    summary = run_plan(ws, RunOptions(plan=str(ws.root / "free.yaml"), render_interval=0))
    plain = CliRunner().invoke(app, ["budget", "raise", "2", "--role", "lead", "--run", summary.run_id,
                                     "-w", str(ws.root)])
    assert plain.exit_code == 2 and "Traceback" not in plain.output
    assert "the role 'lead' of" in plain.stderr and "`coord budget raise 2 --to --role lead`" in plain.stderr
    limit = CliRunner().invoke(app, ["budget", "raise", "2", "--to", "--role", "lead", "--run", summary.run_id,
                                     "-w", str(ws.root)])
    assert limit.exit_code == 0, limit.output
    assert "budget of role lead: $0.00 of $2.00" in limit.stdout
