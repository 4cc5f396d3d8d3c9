"""Workspaces with a run that waits: an assignment handed to a person, a human gate after it."""

from __future__ import annotations

from pathlib import Path

import pytest

from coordinator.core.workspace import Workspace
from coordinator.engine.runner import RunOptions, RunSummary, run_plan

PLAN = """name: m
tasks:
  - id: write
    title: Write the release notes
    role: execution
    instructions: Write notes/out.md; it must say DONE.
    accept:
      - {file: notes/out.md}
      - {command: "grep -q DONE notes/out.md", label: "the notes say DONE"}
  - {id: ship, title: Ship, role: lead, needs: [write], run: t_noop, with: {value: 7}}
gates:
  - id: review
    after: [write]
    blocks: [ship]
    policy: human
    criteria: [{file: notes/out.md, critical: true}]
"""
"""``write`` goes to a person (the human driver) and the run pauses; a session claims it."""

PERSON = "roles:\n  execution: {agent: cursor, driver: human}\n"
"""coord.yaml: the execution role is played by a person."""


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    """A workspace whose execution role is a person."""
    root = tmp_path / "ws"
    root.mkdir()
    (root / "coord.yaml").write_text(PERSON)
    return Workspace.at(root)


def start(ws: Workspace, text: str = PLAN, name: str = "m") -> RunSummary:
    """Run a plan until it finishes or waits on a person."""
    path = ws.root / f"{name}.yaml"
    path.write_text(text)
    return run_plan(ws, RunOptions(plan=str(path), render_interval=0))
