"""`coord watch` follows a save and resumes the waiting run; `coord board sync` and `coord status` report."""

from __future__ import annotations

import queue
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from coordinator.cli.app import app
from coordinator.engine.runner import run_status
from task_boards.watch import BoardWatcher
from tests.task_boards.conftest import GATE_PLAN, add_under, board, edit, start

ROOT = Path(__file__).resolve().parents[2]


def test_watch_applies_a_save_and_resumes_the_unblocked_run(ws):
    run = start(ws)
    (ws.root / "notes").mkdir()
    (ws.root / "notes/review.md").write_text("done\n")
    resumed: queue.Queue[tuple[str, str]] = queue.Queue()
    watcher = BoardWatcher(ws, debounce=0.05, on_resumed=lambda r, phase: resumed.put((r, phase))).start()
    try:
        edit(board(ws, "HUMAN"), "- [ ] **review_notes**", "- [x] **review_notes**")
        run_id, phase = resumed.get(timeout=60)
    finally:
        watcher.stop()
    assert (run_id, phase) == (run.run_id, "finished")
    st = run_status(ws)
    assert st["tasks"]["review_notes"]["status"] == st["tasks"]["ship"]["status"] == "done"
    assert "- [x] **ship**" in board(ws, "CURSOR").read_text()


@pytest.mark.slow
def test_watch_command_picks_up_an_edit_in_a_subprocess(ws):
    ws.config.unlink()  # the subprocess knows only the built-in drivers
    start(ws, GATE_PLAN, "g")
    proc = subprocess.Popen([sys.executable, "-c", "from coordinator.cli.app import main; main()", "watch",
                             "--no-resume", "--timeout", "60", "--debounce", "0.05", "-w", str(ws.root)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        assert "watching" in proc.stdout.readline()
        add_under(board(ws, "CLAUDE"), "after", "  - from the watcher test")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not run_status(ws)["tasks"]["after"].get("feedback"):
            time.sleep(0.1)
        assert run_status(ws)["tasks"]["after"]["feedback"][0].startswith("from the watcher test")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_board_sync_cli_reports_applied_and_garbled_edits(ws):
    start(ws)
    runner = CliRunner()
    add_under(board(ws, "HUMAN"), "review_notes", "  - first note")
    res = runner.invoke(app, ["board", "sync", "-w", str(ws.root)], catch_exceptions=False)
    assert res.exit_code == 0 and "note on 'review_notes' kept for its agent" in res.output
    res = runner.invoke(app, ["board", "sync", "-w", str(ws.root)], catch_exceptions=False)
    assert "boards are in sync" in res.output
    edit(board(ws, "CLAUDE"), "id=prep", "id=perp")
    res = runner.invoke(app, ["board", "sync", "-w", str(ws.root)], catch_exceptions=False)
    assert res.exit_code == 2 and "CLAUDE_TASKS.md:" in res.output and "unknown task id 'perp'" in res.output
    res = runner.invoke(app, ["status", "-w", str(ws.root)], catch_exceptions=False)
    assert "board: task_boards/CLAUDE_TASKS.md:" in res.output and "unknown task id 'perp'" in res.output


def test_watch_outside_a_workspace_exits_2_and_creates_nothing(tmp_path):
    res = CliRunner().invoke(app, ["watch", "--timeout", "1", "-w", str(tmp_path)])
    assert res.exit_code == 2 and "no runs in" in res.output and "watching" not in res.output
    assert list(tmp_path.iterdir()) == []


def test_watch_says_it_resumes_the_run_instead_of_telling_the_user_to(capsys):
    from coordinator.cli.board import _print
    from task_boards.sync import SyncReport

    report = SyncReport(run_id="r1", applied=["CLAUDE_TASKS.md:3: task 'a' done"], can_continue=True, waiting=True)
    _print(report, watching=True, resuming=True)
    said = capsys.readouterr().out
    assert "run r1 can continue: resuming it" in said and "coord resume" not in said
    _print(report, watching=True, resuming=False)  # --no-resume: the person resumes it
    assert "can continue: coord resume r1" in capsys.readouterr().out
