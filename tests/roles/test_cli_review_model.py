"""A cli-driven assignment reviewed by a reviewer model: the model sees the branch's diff, and an
opted-in `review:` criterion that it fails keeps the branch out of the base."""

from __future__ import annotations

import json

from git import Repo

from coordinator.engine.runner import RunOptions, run_plan

PLAN = """name: p
roles:
  quality: {{agent: codex, provider: anthropic, model: claude-haiku-4-5, base_url: "{url}"}}
  execution: {{agent: cursor, driver: cli}}
tasks:
  - id: notes
    title: Notes
    role: execution
    instructions: "Write the notes."
    accept: [{{file: docs/notes.md}}]
gates:
  - id: code_review
    after: [notes]
    criteria:
      - {{metric: notes.files_changed, op: "<=", value: 10}}
      - {{id: no_major, review: {{fail_on: major}}}}
"""

MAJOR = json.dumps({"summary": "Notes are thin.", "recommendation": "changes_requested",
                    "findings": [{"severity": "major", "title": "Notes say nothing about risks",
                                  "file": "docs/notes.md", "line": 1}]})


def test_reviewer_model_sees_the_branch_diff_and_can_hold_the_merge(git_ws, fake_clis, server, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-api03-CLIREVIEW-0123456789abcdef")
    server.reply_for("ReviewFindings", MAJOR)
    path = git_ws.root / "p.yaml"
    path.write_text(PLAN.format(url=server.anthropic_url))
    summary = run_plan(git_ws, RunOptions(plan=str(path), render_interval=0))
    gate = summary.state["gates"]["code_review"]
    notes = summary.state["tasks"]["notes"]
    assert notes["driver"] == "cli" and gate["status"] == "changes_requested"
    crit = next(c for c in gate["criteria"] if c["name"] == "no_major")
    assert not crit["passed"] and "Notes say nothing about risks (docs/notes.md:1)" in crit["detail"]
    [call] = server.calls("messages")
    prompt = call.body["messages"][0]["content"]
    branch = notes["metrics"]["branch"]
    assert f"diff --stat main...{branch}" in prompt and "docs/notes.md" in prompt and "+++ b/docs/notes.md" in prompt
    # the model's finding counted, so the agent's branch stays out of main
    assert notes["metrics"]["merge"] == "withheld"
    assert not (git_ws.root / "docs/notes.md").exists() and branch in [h.name for h in Repo(git_ws.root).heads]
