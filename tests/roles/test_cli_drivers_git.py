"""Worktrees, branches, commit trailers and merges: only after the gate approves, never forced."""

from __future__ import annotations

import json

import pytest
from git import Actor, Repo

from coordinator.core.events import read_events
from coordinator.engine.plan_loader import load_plan
from roles.drivers.cli import merge_reviewed
from roles.git_worktrees import branch_name, create_worktree, merge_branch
from tests.roles.test_cli_drivers import plan_yaml, run

GATE = """gates:
  - id: code_review
    after: [notes]
    reviewer: execution
    policy: {policy}
    criteria:
      - {{metric: notes.files_changed, op: ">=", value: {min_files}, critical: true}}
      - {{metric: notes.checks_failed, op: "==", value: 0, critical: true}}
"""


def gated(policy: str = "auto", min_files: int = 1) -> str:
    return plan_yaml("execution", "cursor", gate=GATE.format(policy=policy, min_files=min_files))


def test_branch_commit_and_trailers(git_ws, fake_clis):
    summary = run(git_ws, plan_yaml("lead", "claude"))
    repo = Repo(git_ws.root)
    branch = branch_name(summary.run_id, "notes")
    assert branch == f"coord/{summary.run_id}/notes"
    commit = repo.heads[branch].commit
    assert commit.trailers_dict == {"Coord-Run": [summary.run_id], "Coord-Task": ["notes"],
                                    "Coord-Role": ["lead"], "Coord-Agent": ["claude"],
                                    "Coord-Agent-Version": ["2.1.40"]}  # what `claude --version` said
    assert commit.author.name == "claude (via coord)"
    assert commit.message.startswith("coord: notes — Notes\n\nDone: notes.")
    assert sorted(commit.stats.files) == ["agent_notes/notes.md", "docs/notes.md"]
    merge = repo.heads["main"].commit
    assert merge.parents[1] == commit and merge.trailers_dict["Coord-Task"] == ["notes"]
    # the merged worktree is gone; the branch stays as the record of the agent's work
    assert not (git_ws.state_dir / "worktrees" / summary.run_id / "notes").exists()
    assert summary.state["tasks"]["notes"]["metrics"]["commit"] == commit.hexsha
    assert "?? " not in repo.git.status("--porcelain", "--", ".coord")  # .coord/ is excluded


def test_merge_happens_only_after_the_gate_approves(git_ws, fake_clis):
    summary = run(git_ws, gated())
    assert summary.exit_code == 0, summary.problems
    assert summary.state["gates"]["code_review"]["status"] == "approved"
    assert summary.state["tasks"]["notes"]["metrics"]["merge"] == "merged"
    assert (git_ws.root / "docs" / "notes.md").exists()
    kinds = [e["kind"] for e in read_events(git_ws.events) if e["kind"] in
             ("task_finished", "gate_decided", "branch_merged")]
    assert kinds == ["task_finished", "gate_decided", "branch_merged"]


def test_rejected_gate_keeps_the_branch_out_of_the_base(git_ws, fake_clis):
    before = Repo(git_ws.root).head.commit
    summary = run(git_ws, gated(min_files=99))
    assert summary.exit_code == 1
    assert summary.state["gates"]["code_review"]["status"] == "rejected"
    rec = summary.state["tasks"]["notes"]
    assert rec["status"] == "done" and rec["metrics"]["merge"] == "withheld"
    assert any("not merged: gate code_review rejected" in n for n in rec["notes"])
    repo = Repo(git_ws.root)
    assert repo.head.commit == before and not (git_ws.root / "docs" / "notes.md").exists()
    assert f"coord/{summary.run_id}/notes" in [h.name for h in repo.heads]


def test_waiting_gate_holds_the_merge_and_a_conflict_is_reported_not_forced(git_ws, fake_clis, tmp_path,
                                                                           monkeypatch):
    recipes = tmp_path / "recipes.json"
    recipes.write_text(json.dumps({"notes": {"files": {"README.md": "# agent's readme\n",
                                                       "docs/notes.md": "notes\n"}}}))
    monkeypatch.setenv("FAKE_AGENT_RECIPES", str(recipes))
    summary = run(git_ws, gated(policy="human"))
    assert summary.exit_code == 3  # waiting for a person
    rec = summary.state["tasks"]["notes"]
    assert rec["metrics"]["merge"] == "pending_gate"
    assert not (git_ws.root / "docs" / "notes.md").exists()
    # meanwhile someone changes the same line on main
    repo = Repo(git_ws.root)
    (git_ws.root / "README.md").write_text("# the person's readme\n")
    repo.index.add(["README.md"])
    who = Actor("Person", "p@example.com")
    head = repo.index.commit("edit readme", author=who, committer=who)
    plan = load_plan(str(git_ws.root / "plans" / "p.yaml"), workspace=git_ws.root)
    updates = merge_reviewed(git_ws.root, summary.run_id, plan, summary.state["tasks"],
                             {"code_review": {"status": "approved"}})
    upd = updates["notes"]
    assert upd["status"] == "failed" and upd["metrics"]["merge"] == "conflict"
    assert "conflicts in README.md" in upd["error"] and "kept for a person to merge" in upd["error"]
    assert repo.head.commit == head and not (git_ws.root / ".git" / "MERGE_HEAD").exists()
    assert (git_ws.root / "README.md").read_text() == "# the person's readme\n"
    assert not repo.is_dirty(untracked_files=False)


@pytest.mark.slow
def test_accept_checks_run_in_the_worktree_and_failures_block_the_merge(git_ws, fake_clis, tmp_path,
                                                                       monkeypatch):
    recipes = tmp_path / "recipes.json"
    recipes.write_text(json.dumps({"notes": {"files": {
        "docs/notes.md": "notes\n", "test_math.py": "def test_math():\n    assert 1 + 1 == 3\n"}}}))
    monkeypatch.setenv("FAKE_AGENT_RECIPES", str(recipes))
    text = plan_yaml("lead", "claude").replace(
        "accept: [{file: docs/notes.md}]", "accept: [{file: docs/notes.md}, {command: python -m pytest -q}]")
    summary = run(git_ws, text)
    rec = summary.state["tasks"]["notes"]
    assert rec["status"] == "failed"
    assert "accept checks failed in the worktree" in rec["error"] and "1 failed" in rec["error"]
    assert rec["metrics"]["checks_run"] == 2 and rec["metrics"]["checks_failed"] == 1
    assert not (git_ws.root / "test_math.py").exists()


def test_merge_refuses_when_the_base_branch_is_not_checked_out(git_ws):
    wt = create_worktree(git_ws.root, "r1", "t")
    (wt.path / "new.txt").write_text("x\n")
    repo = Repo(git_ws.root)
    repo.git.checkout("-b", "elsewhere")
    result = merge_branch(git_ws.root, wt.branch, "main", "m")
    assert result.status == "refused" and "'elsewhere' checked out, not 'main'" in result.detail


def test_an_agent_that_moves_its_worktree_to_a_branch_of_its_own_fails_and_nothing_is_called_merged(
        git_ws, fake_clis, monkeypatch):
    monkeypatch.setenv("FAKE_AGENT_MODE", "switch_branch")
    summary = run(git_ws, plan_yaml("lead", "claude"))
    rec = summary.state["tasks"]["notes"]
    assert rec["status"] == "failed"
    assert "the agent switched the worktree to branch 'agent-own-notes'" in rec["error"]
    assert "nothing was committed or merged" in rec["error"]
    assert "merge" not in rec.get("metrics", {}) or rec["metrics"].get("merge") != "merged"
    repo = Repo(git_ws.root)
    assert "agent-own-notes" in [h.name for h in repo.heads]  # the agent's work is kept on its branch
    assert repo.heads["main"].commit.message.startswith(("plan", "coord: initial", "initial"))
