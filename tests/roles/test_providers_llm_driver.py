"""The `llm` driver in real runs against the loopback server: prompt, deliverables, ledger, failures, secrets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from coordinator.cli.app import app
from coordinator.core.plan import RoleBinding
from coordinator.core.workspace import Workspace
from coordinator.engine.ledger import Ledger
from coordinator.engine.runner import RunOptions, run_plan
from roles.definitions import resolve_roles
from tests.fakes.faults import Fault

ANTHROPIC_KEY = "sk-ant-api03-SECRETSECRET-0123456789"
OPENAI_KEY = "sk-proj-SECRETSECRET-abcdefghijklmnop"

PLAN = """name: llm_demo
roles:
  lead: {{agent: claude, driver: llm, provider: anthropic, model: claude-haiku-4-5, base_url: "{url}"}}
  quality: {{agent: codex}}
  execution: {{agent: cursor}}
tasks:
  - id: notes
    title: Write the release notes
    role: lead
    instructions: Summarize what changed in release 2.4. List the risks.
    accept: [{{file: reports/assignments/notes.md}}]
"""

GOOD = json.dumps({"summary": "Wrote the notes.", "notes": ["rollback plan untested"],
                   "deliverables": [{"path": "reports/assignments/notes.md", "content": "# Notes\n\n- faster\n"}]})


@pytest.fixture
def ws(tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    root = tmp_path / "ws"
    root.mkdir()
    return Workspace.at(root)


def _run(ws: Workspace, server, plan: str = PLAN):
    path = ws.root / "plan.yaml"
    path.write_text(plan.format(url=server.anthropic_url))
    return run_plan(ws, RunOptions(plan=str(path), render_interval=0))


def test_assignment_answered_by_the_model_and_accounted(ws, server):
    server.reply(GOOD)
    summary = _run(ws, server)
    assert summary.exit_code == 0, summary.problems
    rec = summary.state["tasks"]["notes"]
    assert rec["driver"] == "llm" and rec["status"] == "done"
    assert (ws.root / "reports/assignments/notes.md").read_text() == "# Notes\n\n- faster\n"
    response = (ws.root / "reports/assignments/notes.response.md").read_text()
    assert "anthropic" in response and "claude-haiku-4-5" in response and "rollback plan untested" in response
    # the prompt is the task's EXECUTE_NOW content
    sent = server.calls("messages")[0].body
    prompt = sent["messages"][0]["content"]
    assert "Summarize what changed in release 2.4" in prompt and "file reports/assignments/notes.md exists" in prompt
    assert "Acceptance checks" in prompt and "JSON Schema" in sent["system"]
    # one ledger row with tokens and a known cost, which is also the task's cost
    [row] = Ledger.of(ws.state_dir).calls(summary.run_id)
    assert (row["task_id"], row["role"], row["agent"], row["provider"]) == ("notes", "lead", "claude", "anthropic")
    assert row["tokens_in"] > 0 and row["tokens_out"] > 0 and row["usd"] > 0
    assert rec["cost_usd"] == pytest.approx(row["usd"])
    dashboard = (ws.reports / "cost_dashboard.md").read_text()
    assert "## By role" in dashboard and "| lead | 1 |" in dashboard
    out = CliRunner().invoke(app, ["costs", "-w", str(ws.root)], catch_exceptions=False).output
    assert "lead" in out and "claude" in out and "notes" in out and f"${row['usd']:.4f}" in out


def test_malformed_answer_is_retried_once_then_fails_clearly(ws, server):
    server.reply("here are the notes!", '{"summary": 3}')
    summary = _run(ws, server)
    err = summary.state["tasks"]["notes"]["error"]
    assert summary.exit_code == 1
    assert "claude-haiku-4-5" in err and "AssignmentAnswer" in err and "corrective retry" in err
    assert len(Ledger.of(ws.state_dir).calls(summary.run_id)) == 2  # both calls are paid and recorded


def test_a_deliverable_outside_the_workspace_fails_the_task(ws, server):
    server.reply(json.dumps({"summary": "x", "deliverables": [{"path": "../../etc/evil", "content": "x"}]}))
    summary = _run(ws, server)
    assert "escapes the workspace" in summary.state["tasks"]["notes"]["error"]
    assert not (ws.root.parent.parent / "etc" / "evil").exists()


def test_auto_driver_picks_llm_only_when_the_key_is_set(monkeypatch):
    binding = {"lead": RoleBinding(agent="claude", provider="anthropic", model="claude-haiku-4-5")}
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    role = resolve_roles(binding, {})["lead"]
    assert role.driver == "llm" and ANTHROPIC_KEY not in role.driver_reason
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    role = resolve_roles(binding, {})["lead"]
    assert role.driver == "offline" and "ANTHROPIC_API_KEY" in role.driver_reason
    assert resolve_roles({"lead": RoleBinding(agent="claude")}, {})["lead"].driver == "offline"


def test_explicit_llm_driver_without_a_key_is_a_config_error_naming_the_variable(monkeypatch):
    from coordinator.core.errors import ConfigError

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match=r"roles.quality.api_key_env: .*set OPENAI_API_KEY"):
        resolve_roles({"quality": RoleBinding(agent="codex")},
                      {"quality": {"driver": "llm", "provider": "openai", "model": "gpt-4o-mini"}})


def _files(root: Path) -> list[Path]:
    out = []
    for top in (".coord", "task_boards", "reviews", "reports", "logs", "data"):
        base = root / top
        if base.exists():
            out += [p for p in base.rglob("*") if p.is_file()]
    return out + [p for p in root.glob("*.md")]


def test_secrets_scan_no_key_anywhere_after_a_run(ws, server):
    # a provider error that echoes the key must not carry it into state, boards, logs or the ledger
    server.inject("messages", Fault.http(401, f"invalid x-api-key {ANTHROPIC_KEY}"))
    summary = _run(ws, server)
    assert summary.exit_code == 1
    assert "[REDACTED" in summary.state["tasks"]["notes"]["error"]
    server.reply(GOOD)
    second = run_plan(ws, RunOptions(plan=str(ws.root / "plan.yaml"), fresh=True, render_interval=0))
    assert second.exit_code == 0
    files = _files(ws.root)
    assert any(p.suffix == ".sqlite" for p in files) and any(p.suffix == ".log" for p in files)
    for path in files:
        data = path.read_bytes()
        for key in (ANTHROPIC_KEY, OPENAI_KEY, "SECRETSECRET"):
            assert key.encode() not in data, f"{key[:12]}… found in {path}"


@pytest.mark.parametrize(("path", "why"), [
    ("task_boards/CLAUDE_TASKS.md", "is a file coord renders or reads as settings"),
    ("TEAM_COORDINATION.md", "is a file coord renders or reads as settings"),
    ("coord.yaml", "is a file coord renders or reads as settings"),
    ("reports", "is a directory"),
    ("", "a deliverable needs a path"),
])
def test_a_deliverable_may_not_replace_coords_own_files_and_nothing_is_written_then(ws, server, path, why):
    (ws.root / "reports").mkdir(exist_ok=True)
    server.reply(json.dumps({"summary": "x", "deliverables": [{"path": "docs/first.md", "content": "first"},
                                                                {"path": path, "content": "x"}]}))
    summary = _run(ws, server)
    error = summary.state["tasks"]["notes"]["error"]
    assert "the model asked for a deliverable coord does not write (nothing was written)" in error and why in error
    assert not (ws.root / "docs" / "first.md").exists()
    board = ws.root / "task_boards" / "CLAUDE_TASKS.md"
    assert not board.exists() or "coord:tasks:begin" in board.read_text()


@pytest.mark.slow  # the retries wait their real backoff
def test_an_assignment_s_metrics_count_the_http_attempts_its_calls_took(ws, server):
    server.inject("messages", Fault.http(429), Fault.http(529))
    server.reply(GOOD)
    summary = _run(ws, server)
    metrics = summary.state["tasks"]["notes"]["metrics"]
    assert metrics["llm_calls"] == 1 and metrics["http_attempts"] == 3
