"""`coord board sync` is one transaction: killed at any point, the next sync applies each edit exactly once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from coordinator.core.faults import FAULT_AT
from coordinator.core.run_store import has_journal, read_run_plan_data
from coordinator.engine.runner import RunOptions, resume_run, run_status
from task_boards.sync import sync_boards
from tests.conftest import PLUGINS
from tests.task_boards.conftest import add_under, board, edit, start

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def _killed_sync(ws, point: str) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(PLUGINS)]), FAULT_AT: point,
           "COORD_EDITOR": "ana"}
    done = subprocess.run([sys.executable, "-m", "coordinator", "board", "sync", "-w", str(ws.root)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 137, done.stdout + done.stderr


@pytest.mark.parametrize("point", ["sync_committed", "journal_written"])
def test_notes_and_a_new_task_are_applied_once_after_a_killed_sync(ws, point):
    run = start(ws)
    for n in range(3):
        add_under(board(ws, "HUMAN"), "review_notes", f"  - note number {n}")
    edit(board(ws, "CLAUDE"), "<!-- coord:tasks:end -->", "- [ ] Draft the FAQ\n<!-- coord:tasks:end -->")

    _killed_sync(ws, point)
    assert has_journal(ws, run.run_id)
    sync_boards(ws, editor="ana")

    feedback = run_status(ws)["tasks"]["review_notes"]["feedback"]
    assert sorted(f.split(" (from")[0] for f in feedback) == ["note number 0", "note number 1", "note number 2"]
    plan = read_run_plan_data(ws, run.run_id)
    assert [t for t in plan["tasks"] if t.startswith("board_draft")] == ["board_draft_the_faq"]
    audit = (ws.run_dir(run.run_id) / "board_edits.jsonl").read_text().splitlines()
    assert sum("note number 0" in line for line in audit) == 1
    assert not has_journal(ws, run.run_id)
    assert sync_boards(ws, editor="ana").applied == []  # nothing left to apply
    summary = resume_run(ws, run.run_id, RunOptions(plan="", render_interval=0))
    faq = summary.state["tasks"]["board_draft_the_faq"]  # the stand-in answered it; nothing checks it
    assert faq["status"] == "waiting" and faq["held_by"] == "review"


def test_a_run_resumed_after_a_sync_killed_past_its_commit_finishes_the_sync_first(ws):
    run = start(ws)
    edit(board(ws, "CLAUDE"), "<!-- coord:tasks:end -->", "- [ ] Draft the FAQ\n<!-- coord:tasks:end -->")
    _killed_sync(ws, "sync_committed")  # the checkpoint holds the new task; plan.json does not yet
    summary = resume_run(ws, run.run_id, RunOptions(plan="", render_interval=0))
    faq = summary.state["tasks"]["board_draft_the_faq"]  # the stand-in answered it; nothing checks it
    assert faq["status"] == "waiting" and faq["held_by"] == "review"
    assert not has_journal(ws, run.run_id)
