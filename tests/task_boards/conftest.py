from __future__ import annotations

from pathlib import Path

import pytest

from coordinator.core.workspace import Workspace
from coordinator.engine.runner import RunOptions, RunSummary, run_plan

PLAN = """name: b
tasks:
  - {id: prep, title: Prepare data, role: lead, run: t_noop}
  - id: review_notes
    title: Review the notes
    role: quality
    needs: [prep]
    instructions: Review the notes and write notes/review.md.
    accept: [{file: notes/review.md}]
  - {id: ship, title: Ship it, role: execution, needs: [review_notes], run: t_noop}
  - {id: write_docs, title: Write docs, role: execution, instructions: Write the docs.,
     accept: [{file: reports/assignments/write_docs.md}]}
"""

GATE_PLAN = """name: g
tasks:
  - {id: make, title: Make, role: execution, run: t_noop, with: {value: 3}}
  - {id: after, title: After, role: lead, run: t_noop}
gates:
  - id: check
    after: [make]
    blocks: [after]
    policy: human
    criteria: [{metric: make.value, op: ">=", value: 1}]
"""


@pytest.fixture
def ws(tmp_path: Path, store: str) -> Workspace:
    """A workspace where the quality role is a person (tasks wait for a board tick), its state on ``store``."""
    root = tmp_path / "ws"
    root.mkdir()
    (root / "coord.yaml").write_text("roles:\n  quality: {agent: human, driver: human}\n")
    return Workspace.at(root)


def start(ws: Workspace, text: str = PLAN, name: str = "b") -> RunSummary:
    """Run a plan until it finishes or waits on a person."""
    path = ws.root / f"{name}.yaml"
    path.write_text(text)
    return run_plan(ws, RunOptions(plan=str(path), render_interval=0))


def board(ws: Workspace, name: str) -> Path:
    return ws.boards / f"{name}_TASKS.md"


def edit(path: Path, old: str, new: str, count: int = 1) -> None:
    """Change a board the way a person would (plain write, no coord lock)."""
    text = path.read_text()
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new, count))


def line_of(path: Path, needle: str) -> int:
    """1-based number of the first line containing ``needle``."""
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if needle in line:
            return n
    raise AssertionError(f"{needle!r} not in {path.name}")


def add_under(path: Path, task_id: str, line: str) -> int:
    """Add a sub-item right under a task's role line; return its 1-based line number."""
    lines = path.read_text().splitlines(keepends=True)
    at = next(n for n, text in enumerate(lines) if f"<!-- coord:task id={task_id} -->" in text)
    lines.insert(at + 2, line + "\n")
    path.write_text("".join(lines))
    return at + 3
