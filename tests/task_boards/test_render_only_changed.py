"""A render rewrites only the boards whose content changed: a role whose tasks, gates and header are as
they were keeps its two files untouched, unless a person touched one of them since coord wrote it."""

from __future__ import annotations

import copy
import os

from coordinator.core.run_store import load_run_plan
from coordinator.engine.run_state import read_run_state
from roles.definitions import roles_for
from task_boards.render import render_all
from tests.task_boards.conftest import board, start


def _stamps(ws) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in sorted(ws.boards.glob("*.md"))}


def test_only_the_boards_of_a_changed_role_are_written_again(ws):
    first = start(ws)
    state = read_run_state(ws, first.run_id)[0]
    plan = load_run_plan(ws, first.run_id)
    roles = roles_for(ws, plan)
    render_all(ws, plan, roles, state)
    before = _stamps(ws)

    again = render_all(ws, plan, roles, state)  # the same state: no role board is rewritten
    assert not [f for f in again.written if f.endswith(("_TASKS.md", "_EXECUTE_NOW.md"))], again.written
    assert {k: v for k, v in _stamps(ws).items() if k != "TEAM_COORDINATION.md"} == \
        {k: v for k, v in before.items() if k != "TEAM_COORDINATION.md"}

    changed = copy.deepcopy(state)
    changed["tasks"]["write_docs"] = {**changed["tasks"].get("write_docs", {}), "status": "failed",
                                      "error": "the docs were not written"}
    written = render_all(ws, plan, roles, changed).written
    execution = roles["execution"].board_name
    assert f"task_boards/{execution}_TASKS.md" in written  # its task changed
    assert not any(f"task_boards/{roles[r].board_name}_TASKS.md" in written for r in ("lead", "quality"))
    assert "the docs were not written" in board(ws, execution).read_text()


def test_a_board_a_person_touched_or_deleted_is_rendered_again(ws):
    first = start(ws)
    state = read_run_state(ws, first.run_id)[0]
    plan = load_run_plan(ws, first.run_id)
    roles = roles_for(ws, plan)
    render_all(ws, plan, roles, state)
    lead = board(ws, roles["lead"].board_name)
    lead.write_bytes(lead.read_bytes() + b"\nour notes: na\xefve\n")  # a save in another encoding
    result = render_all(ws, plan, roles, state)
    assert any(c.startswith(f"task_boards/{lead.name}:") and "not valid UTF-8" in c for c in result.conflicts)

    now = ws.boards / f"{roles['quality'].board_name}_EXECUTE_NOW.md"
    os.unlink(now)
    assert f"task_boards/{now.name}" in render_all(ws, plan, roles, state).written
    assert now.is_file()
