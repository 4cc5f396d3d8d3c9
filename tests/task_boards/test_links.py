"""Links on boards resolve from the board's own directory; a file not in the workspace is not linked."""

from __future__ import annotations

from coordinator.core.run_store import load_run_plan
from roles.definitions import roles_for
from task_boards.render import render_all
from tests.task_boards.conftest import board, start


def test_artifact_links_resolve_from_the_board_and_missing_files_are_not_linked(ws):
    run = start(ws)
    (ws.root / "out").mkdir()
    (ws.root / "out/made.txt").write_text("made\n")
    plan = load_run_plan(ws, run.run_id)
    arts = [{"path": "out/made.txt", "sha256": "0" * 64, "bytes": 5, "rows": None},
            {"path": "notes/unmerged.md", "sha256": "1" * 64, "bytes": 5, "rows": None}]
    tasks = {**run.state["tasks"], "write_docs": {**run.state["tasks"]["write_docs"], "status": "done",
                                                  "artifacts": arts}}
    render_all(ws, plan, roles_for(ws, plan), {**run.state, "tasks": tasks})
    text = board(ws, "CURSOR").read_text()
    assert "[out/made.txt](../out/made.txt)" in text
    assert (board(ws, "CURSOR").parent / "../out/made.txt").is_file()
    # an artifact that is not in the workspace (a CLI agent's unmerged branch) is named, not linked
    assert "`notes/unmerged.md`" in text and "](../notes/unmerged.md)" not in text
