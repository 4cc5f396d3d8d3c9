"""Garbled edits: a clear message with file and line, and nothing else changes."""

from __future__ import annotations

import pytest

from coordinator.engine.runner import run_status
from task_boards.store import board_problems
from task_boards.sync import sync_boards
from tests.task_boards.conftest import GATE_PLAN, add_under, board, edit, line_of, start


def _snapshot(ws, run_id):
    files = {p.name: p.read_bytes() for p in ws.boards.glob("*.md")}
    return files, (ws.run_dir(run_id) / "plan.json").read_bytes(), run_status(ws)["tasks"], run_status(ws)["gates"]


def _garble_unknown_id(ws):
    path = board(ws, "CLAUDE")
    edit(path, "coord:task id=prep", "coord:task id=perp")
    return path, line_of(path, "id=perp"), "unknown task id 'perp'"


def _garble_checkbox(ws):
    path = board(ws, "HUMAN")
    edit(path, "- [ ] **review_notes**", "- [] **review_notes**")
    return path, line_of(path, "**review_notes**"), "broken checkbox '[]' on task 'review_notes'"


def _garble_missing_role(ws):
    path = board(ws, "CURSOR")
    text = path.read_text()
    at = text.index("id=ship")
    path.write_text(text[:at] + text[at:].replace("  - role: execution", "  - role: reviewer", 1))
    return path, line_of(path, "role: reviewer"), "task 'ship' moved to role 'reviewer', which does not exist"


def _garble_text_in_section(ws):
    path = board(ws, "CLAUDE")
    edit(path, "<!-- coord:tasks:end -->", "\nRemember the milk.\n<!-- coord:tasks:end -->")
    return path, line_of(path, "Remember the milk"), "text inside coord's tasks section"


def _garble_owned_line(ws):
    path = board(ws, "CLAUDE")
    edit(path, "<!-- coord:tasks:end -->", "Remember the milk.\n<!-- coord:tasks:end -->")
    return path, line_of(path, "measured: value=0"), "the 'measured' line of task 'prep' is written by coord"


def _garble_reported_line(ws):
    path = board(ws, "HUMAN")
    edit(path, "  - reported: handed to human:", "  - reported: handed to Bob:")
    return path, line_of(path, "reported: handed to Bob"), \
        "the 'reported' line of task 'review_notes' is written by coord"


def _garble_duplicate(ws):
    path = board(ws, "CLAUDE")
    text = path.read_text()
    first = text.index("- [x] **prep**")
    block = text[first:text.index("<!-- coord:tasks:end -->")]
    path.write_text(text.replace("<!-- coord:tasks:end -->", block + "<!-- coord:tasks:end -->"))
    lines = [n for n, line in enumerate(path.read_text().splitlines(), 1) if "**prep**" in line]
    return path, lines[1], "task 'prep' appears more than once"


@pytest.mark.parametrize("garble", [_garble_unknown_id, _garble_checkbox, _garble_missing_role,
                                    _garble_text_in_section, _garble_owned_line, _garble_reported_line,
                                    _garble_duplicate])
def test_garbled_edit_is_reported_with_file_and_line_and_changes_nothing(ws, garble):
    run = start(ws)
    # a valid edit in the same sync must not be applied either
    add_under(board(ws, "HUMAN"), "review_notes", "  - a valid note that must wait")
    path, line, message = garble(ws)
    before = _snapshot(ws, run.run_id)
    report = sync_boards(ws, editor="ana")
    assert report.applied == [] and report.reverted == []
    assert any(p.startswith(f"task_boards/{path.name}:{line}: ") and message in p for p in report.problems), \
        report.problems
    assert _snapshot(ws, run.run_id) == before
    assert any(message in p for p in board_problems(ws))


def _approve_lines(ws):
    path = board(ws, "CODEX")
    return path, path.read_text()


def test_gate_approved_twice_is_reported(ws):
    ws.config.unlink()
    run = start(ws, GATE_PLAN, "g")
    assert run.state["gates"]["check"]["status"] == "waiting"
    path, text = _approve_lines(ws)
    line = next(ln for ln in text.splitlines() if "coord:gate id=check" in ln)
    ticked = line.replace("[ ] approve", "[x] approve")
    path.write_text(text.replace(line, ticked + "\n" + ticked))
    before = _snapshot(ws, run.run_id)
    report = sync_boards(ws, editor="ana")
    second = [n for n, ln in enumerate(path.read_text().splitlines(), 1) if "coord:gate id=check" in ln][1]
    assert any(p.startswith(f"task_boards/CODEX_TASKS.md:{second}: gate 'check' approved twice")
               for p in report.problems), report.problems
    assert _snapshot(ws, run.run_id) == before


def test_approving_a_decided_gate_is_reported(ws):
    ws.config.unlink()
    run = start(ws, GATE_PLAN.replace("policy: human", "policy: auto"), "g")
    assert run.state["gates"]["check"]["status"] == "approved"
    path = board(ws, "CODEX")
    edit(path, "- **check**", "- [x] approve: **check**")
    before = _snapshot(ws, run.run_id)
    report = sync_boards(ws, editor="ana")
    assert any(f"CODEX_TASKS.md:{line_of(path, 'id=check')}: gate 'check' is already approved" in p
               for p in report.problems), report.problems
    assert _snapshot(ws, run.run_id) == before


def test_fixing_the_garbled_line_lets_the_edits_through(ws):
    start(ws)
    add_under(board(ws, "HUMAN"), "review_notes", "  - a valid note")
    edit(board(ws, "HUMAN"), "- [ ] **review_notes**", "- [] **review_notes**")
    assert sync_boards(ws, editor="ana").problems
    edit(board(ws, "HUMAN"), "- [] **review_notes**", "- [ ] **review_notes**")
    report = sync_boards(ws, editor="ana")
    assert report.problems == [] and len(report.applied) == 1
    assert board_problems(ws) == []


def test_every_reported_line_is_coords_and_long_reports_are_cut():
    from roles.task_view import MAX_REPORTED, REPORTED_CHARS, reported_lines
    from task_boards.parse import parse_board

    lines = reported_lines(["first\nsecond line", "x" * 1000, *[f"note {i}" for i in range(8)]])
    assert lines[0] == "first second line" and len(lines[1]) == REPORTED_CHARS and lines[1].endswith("…")
    assert len(lines) == MAX_REPORTED + 1 and lines[-1] == "(+5 more in `coord status --json`)"
    board_text = ("<!-- coord:tasks:begin -->\n- [ ] **t** — T <!-- coord:task id=t -->\n"
                  "  - reported: one\n  - reported: two\n  - a person's note\n<!-- coord:tasks:end -->\n")
    [task] = parse_board(board_text, "B.md").tasks
    assert task.fields["reported"] == "one\ntwo" and task.notes == ["a person's note"]
    # a change to the first of several reported lines is seen, not only to the last
    [changed] = parse_board(board_text.replace("reported: one", "reported: 1"), "B.md").tasks
    assert changed.fields["reported"] != task.fields["reported"]
