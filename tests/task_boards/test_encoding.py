"""A board or team file saved in another encoding than UTF-8 is an edit problem with file:line, never a crash."""

from __future__ import annotations

import json
import time

import pytest

from coordinator.core.errors import PlanError
from coordinator.core.yaml_io import MAX_NODES, load_located
from coordinator.engine.plan_loader import load_plan
from coordinator.engine.runner import RunOptions, resume_run, run_plan, run_status
from task_boards.sync import sync_boards
from tests.task_boards.conftest import PLAN, add_under, board, start


def _latin1_note(path, task_id: str) -> int:
    line = add_under(path, task_id, "  - note: caf_")
    path.write_bytes(path.read_bytes().replace(b"caf_", b"caf\xe9"))
    return line


def test_a_non_utf8_board_is_reported_with_its_line_and_nothing_of_it_is_applied(ws):
    first = start(ws)
    assert first.exit_code == 3  # waits for the person's tick
    cursor = board(ws, "CLAUDE")
    line = _latin1_note(cursor, "prep")
    before = cursor.read_bytes()

    report = sync_boards(ws)

    assert any(p.startswith(f"task_boards/CLAUDE_TASKS.md:{line}: not valid UTF-8 (byte 0xe9 at column ")
               for p in report.problems), report.problems
    assert report.applied == []
    assert cursor.read_bytes() == before  # coord never rewrote the person's file


def test_a_run_goes_on_when_a_board_and_the_team_file_are_not_utf8(ws):
    first = start(ws)
    _latin1_note(board(ws, "CLAUDE"), "prep")
    team = ws.team_file
    team.write_bytes(team.read_bytes() + b"\nour notes: na\xefve\n")
    team_before = team.read_bytes()

    again = resume_run(ws, first.run_id, RunOptions(plan=str(ws.root / "b.yaml"), render_interval=0))

    assert again.phase in ("waiting", "finished")
    assert run_status(ws, first.run_id)["phase"] == again.phase
    conflicts = " ".join(json.loads(ws.status_file.read_text())["conflicts"])
    assert "task_boards/CLAUDE_TASKS.md:" in conflicts and "not valid UTF-8" in conflicts
    assert "TEAM_COORDINATION.md:" in conflicts
    assert team.read_bytes() == team_before
    # a fresh run of another plan in the same workspace is not blocked by the team file either
    other = PLAN.replace("name: b", "name: c")
    (ws.root / "c.yaml").write_text(other)
    assert run_plan(ws, RunOptions(plan=str(ws.root / "c.yaml"), render_interval=0)).exit_code in (0, 3)


def test_a_non_utf8_plan_is_a_plan_error_with_the_line(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_bytes(b"name: p\ntasks:\n  - {id: a, title: Caf\xe9, role: lead, run: t_noop}\n")
    with pytest.raises(PlanError, match=r"p.yaml:3: not valid UTF-8 \(byte 0xe9\)"):
        load_plan(str(path))


@pytest.mark.slow
def test_a_billion_laughs_plan_is_refused_quickly():
    text = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(8))
    started = time.monotonic()
    with pytest.raises(Exception, match=f"expands to more than {MAX_NODES:,} values"):
        load_located(text, "laughs.yaml")
    assert time.monotonic() - started < 30
