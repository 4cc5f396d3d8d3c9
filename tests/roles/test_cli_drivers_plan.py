"""The built-in week2-agents plan end to end against the fake CLIs, in a temporary git repository."""

from __future__ import annotations

from pathlib import Path

import pytest
from git import Repo

from coordinator.engine.runner import RunOptions, run_plan

pytestmark = pytest.mark.slow

RECIPES = Path(__file__).resolve().parents[1] / "fakes" / "recipes" / "week2_agents.json"


def test_week2_agents_runs_all_three_clis_and_merges_reviewed_work(git_ws, fake_clis, monkeypatch):
    monkeypatch.setenv("FAKE_AGENT_RECIPES", str(RECIPES))
    summary = run_plan(git_ws, RunOptions(plan="week2-agents", render_interval=0))
    assert summary.exit_code == 0, summary.problems
    tasks = summary.state["tasks"]
    assert {t: tasks[t]["driver"] for t in ("plan_notes", "implement", "review")} == \
        {"plan_notes": "cli", "implement": "cli", "review": "cli"}
    assert {t: tasks[t]["agent"] for t in ("plan_notes", "implement", "review")} == \
        {"plan_notes": "claude", "implement": "cursor", "review": "codex"}
    assert tasks["generate"]["driver"] == "pipeline"
    impl = tasks["implement"]["metrics"]
    assert impl["checks_run"] == 3 and impl["checks_failed"] == 0 and impl["files_changed"] == 2
    assert summary.state["gates"]["adp_check"]["status"] == "approved"  # the data agents build on was checked
    gate = summary.state["gates"]["code_review"]
    assert gate["status"] == "approved" and gate["grade"].startswith("A")
    # every assignment reached main, each through its own branch with trailers
    repo = Repo(git_ws.root)
    for path in ("docs/week2_plan.md", "tools/adp_count.py", "tests/test_adp_count.py", "docs/code_review.md"):
        assert (git_ws.root / path).exists(), path
    agents = {c.trailers_dict.get("Coord-Task", ["?"])[0]: c.trailers_dict["Coord-Agent"][0]
              for c in repo.iter_commits("main") if "Coord-Agent" in c.trailers_dict and len(c.parents) == 1}
    assert agents == {"plan_notes": "claude", "implement": "cursor", "review": "codex"}
    # the review worked on the merged implementation (its worktree started after the merge)
    review_branch = repo.heads[tasks["review"]["metrics"]["branch"]].commit
    assert "tools/adp_count.py" in [b.path for b in review_branch.tree.traverse()]
    # the claude run's reported cost reaches the report
    assert tasks["plan_notes"]["cost_usd"] > 0
    assert "code_review" in (git_ws.root / "reports" / "week_summary.md").read_text()
    prompt = next((git_ws.state_dir / "logs" / summary.run_id).glob("implement.*.prompt.md")).read_text()
    assert prompt.startswith("# CURSOR_EXECUTE_NOW") and "tools/adp_count.py" in prompt

