"""Boards and the status block follow the run: a reopened run says so everywhere, and a board that shows
an old render (another run, or a render its broken markers refused) is rendered again by `board sync`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from coordinator.engine.run_state import read_run_state
from coordinator.engine.runner import RunOptions, resume_run, run_plan
from task_boards.sync import sync_boards
from tests.task_boards.conftest import board, edit, start

PLAN = """name: s
tasks:
  - {id: a, title: A, role: lead, run: t_noop}
  - {id: b, title: B, role: quality, needs: [a], run: t_noop}
  - {id: c, title: C, role: execution, needs: [b], run: t_noop}
"""


def _phases(ws) -> dict[str, str]:
    out = {}
    for path in [*sorted(ws.boards.glob("*_TASKS.md")), ws.team_file]:
        found = re.search(r"phase \*\*(\w+)\*\*", path.read_text())
        assert found, path
        out[path.name] = found.group(1)
    return out


def test_an_untick_on_a_finished_run_makes_every_summary_say_waiting(ws):
    ws.config.unlink()
    run = start(ws, PLAN, "s")
    assert run.phase == "finished" and set(_phases(ws).values()) == {"finished"}
    edit(board(ws, "CODEX"), "- [x] **b**", "- [ ] **b**")
    report = sync_boards(ws, editor="ana")
    assert report.reopened == ["b", "c"]
    assert set(_phases(ws).values()) == {"waiting"}, _phases(ws)  # CLAUDE's board was not edited, yet says so
    assert read_run_state(ws, run.run_id)[0]["phase"] == "waiting"
    assert "| quality | codex | offline | 0/1 |" in ws.team_file.read_text()
    again = run_plan(ws, RunOptions(plan=str(ws.root / "s.yaml"), render_interval=0))
    assert again.run_id == run.run_id and again.phase == "finished"
    assert set(_phases(ws).values()) == {"finished"}


def test_a_board_showing_the_previous_run_is_rendered_again_not_called_in_sync(ws):
    ws.config.unlink()
    first = start(ws, PLAN, "s")
    path = board(ws, "CLAUDE")
    kept = path.read_text()
    path.write_text(kept.replace("<!-- coord:tasks:end -->", ""))  # a marker deleted …
    second = run_plan(ws, RunOptions(plan=str(ws.root / "s.yaml"), fresh=True, render_interval=0))
    assert f"run={first.run_id}" in path.read_text()  # … so the new run could not render this board
    path.write_text(kept)  # … and put back as it was
    report = sync_boards(ws, editor="ana")
    assert report.refreshed == [f"task_boards/CLAUDE_TASKS.md: it showed run {first.run_id}; rendered again "
                                f"for run {second.run_id}"]
    assert f"run={second.run_id}" in path.read_text()
    assert sync_boards(ws, editor="ana").refreshed == []  # in sync now


def test_a_board_whose_render_was_refused_is_rendered_again_once_its_markers_are_back(ws):
    ws.config.unlink()
    run = start(ws, PLAN, "s")
    edit(board(ws, "CURSOR"), "- [x] **c**", "- [ ] **c**")
    assert sync_boards(ws, editor="ana").reopened == ["c"]
    path = board(ws, "CODEX")
    kept = path.read_text()
    path.write_text(kept.replace("<!-- coord:tasks:end -->", ""))
    again = run_plan(ws, RunOptions(plan=str(ws.root / "s.yaml"), render_interval=0))  # runs c again …
    assert again.run_id == run.run_id and "phase **waiting**" in path.read_text()  # … CODEX's render refused
    path.write_text(kept)
    report = sync_boards(ws, editor="ana")
    assert report.refreshed and report.refreshed[0].startswith("task_boards/CODEX_TASKS.md: coord's last render")
    assert f"run={run.run_id}" in path.read_text() and "phase **finished**" in path.read_text()


def test_a_deleted_task_entry_or_board_file_is_rendered_again_not_called_in_sync(ws):
    ws.config.unlink()
    start(ws, PLAN, "s")
    path = board(ws, "CLAUDE")
    text = path.read_text()
    path.write_text(text[:text.index("- [x] **a**")] + text[text.index("<!-- coord:tasks:end -->"):])
    board(ws, "CODEX").unlink()
    report = sync_boards(ws, editor="ana")
    assert "task_boards/CLAUDE_TASKS.md: the entries of a were missing (a task is not removed by deleting it from " \
           "its board); rendered again" in report.refreshed, report.refreshed
    assert "task_boards/CODEX_TASKS.md: missing; rendered again" in report.refreshed
    assert "- [x] **a**" in path.read_text() and "- [x] **b**" in board(ws, "CODEX").read_text()
    assert sync_boards(ws, editor="ana").refreshed == []


@pytest.mark.slow
def test_boards_a_killed_run_left_saying_running_are_made_to_say_interrupted_by_a_sync(tmp_path):
    from coordinator.core.events import FAULT_AFTER_EVENT
    from coordinator.core.workspace import Workspace

    root = tmp_path / "killed"
    root.mkdir()
    (root / "k.yaml").write_text("name: k\ntasks:\n  - {id: a, title: A, role: lead, command: 'true'}\n"
                                 "  - {id: b, title: B, role: quality, needs: [a], command: 'true'}\n"
                                 "  - {id: c, title: C, role: execution, needs: [b], command: 'true'}\n")
    repo = str(Path(__file__).resolve().parents[2])
    died = subprocess.run([sys.executable, "-m", "coordinator", "run", "k.yaml"], cwd=root, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": repo, FAULT_AFTER_EVENT: "task_finished:2"})
    assert died.returncode == 137, died.stdout + died.stderr
    ws = Workspace.at(root)
    assert set(_phases(ws).values()) == {"running"}  # what the killed process left
    report = sync_boards(ws, editor="ana")
    assert any("is not running (the process driving it stopped without saying so)" in r for r in report.refreshed)
    assert set(_phases(ws).values()) == {"interrupted"}
    assert sync_boards(ws, editor="ana").refreshed == []  # and it stays so: no render back and forth
    done = resume_run(ws, None, RunOptions(plan="", render_interval=0))
    assert done.phase == "finished" and set(_phases(ws).values()) == {"finished"}


def test_a_deleted_task_line_is_named_not_blamed_on_the_task_above(ws):
    ws.config.unlink()
    start(ws, PLAN.replace("role: quality", "role: lead").replace("role: execution", "role: lead"), "s")
    path = board(ws, "CLAUDE")
    lines = path.read_text().split("\n")
    path.write_text("\n".join(line for line in lines if not line.startswith("- [x] **b**")))
    report = sync_boards(ws, editor="ana")
    assert len(report.problems) == 1, report.problems
    assert "the line of task 'b' (the one with <!-- coord:task id=b -->) was deleted, so its sub-items now read as " \
           "those of task 'a'" in report.problems[0]
