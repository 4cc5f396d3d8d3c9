"""Once a gate lets a cli branch through and it merges, the board says merged, not "waits for gate"."""

from __future__ import annotations

from tests.roles.test_cli_drivers import run
from tests.roles.test_cli_gate_worktree import REPORT_PLAN, _recipes


def test_the_board_drops_the_waiting_note_once_the_branch_merged(git_ws, fake_clis, tmp_path, monkeypatch):
    _recipes(tmp_path, monkeypatch, {"write": {"reports/x.md": "# X\nrows: 3\n"}})
    summary = run(git_ws, REPORT_PLAN.format(policy="auto"))
    assert summary.exit_code == 0, summary.problems
    rec = summary.state["tasks"]["write"]
    branch = rec["metrics"]["branch"]
    assert rec["metrics"]["merge"] == "merged"
    assert not any("waits for gate" in n for n in rec["notes"])
    assert any(n.startswith(f"branch {branch} merged into main (") for n in rec["notes"])
    text = (git_ws.boards / "CLAUDE_TASKS.md").read_text()
    assert "before merging" not in text and f"branch {branch} merged into main" in text
