"""Edits saved while another process executes the run: reported truthfully, applied when it ends."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from coordinator.cli.app import app
from coordinator.core.step import StepContext, StepResult, WsPath, step
from coordinator.engine.runner import list_runs, run_status
from tests.conftest import PLUGINS
from tests.task_boards.conftest import add_under, board

ROOT = Path(__file__).resolve().parents[2]
COORD = (f"import sys; sys.path.insert(0, {str(PLUGINS)!r}); "
         "from coordinator.cli.app import main; main()")
SLOW_PLAN = """name: slow
tasks:
  - {id: first, title: First, role: lead, run: t_noop}
  - {id: slow, title: Slow, role: execution, needs: [first], run: t_wait_for_file, with: {name: release}}
"""


@step("t_wait_for_file")
def t_wait_for_file(ctx: StepContext, *, name: str = "release") -> StepResult:
    """Keep the run executing until the test creates ``name`` in the workspace (at most 120 s)."""
    deadline = time.monotonic() + 120
    while not ctx.path(WsPath(name)).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return StepResult(metrics={"released": 1})


def _wait(what, check, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _run_id_in_lock(ws) -> str | None:
    lock = ws.state_dir / "lock"
    text = lock.read_text() if lock.exists() else ""
    return text.split(" run ", 1)[1] if " run " in text else None


@pytest.mark.slow
def test_an_edit_during_an_active_run_is_reported_as_waiting_and_applied_when_the_run_ends(ws):
    ws.config.unlink()  # the subprocesses know only the built-in drivers
    (ws.root / "slow.yaml").write_text(SLOW_PLAN)
    run = subprocess.Popen([sys.executable, "-c", COORD, "run", str(ws.root / "slow.yaml"), "-w", str(ws.root)], cwd=ROOT,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # coord watch needs a run to follow (it refuses a workspace without one): start it once the run is registered
    _wait("the run to render the boards", lambda: board(ws, "CLAUDE").exists() and _run_id_in_lock(ws))
    watch = subprocess.Popen([sys.executable, "-c", COORD, "watch", "--no-resume", "--timeout", "90",
                              "--debounce", "0.05", "-w", str(ws.root)],
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert watch.stdout is not None
        assert "watching" in watch.stdout.readline()
        run_id = _run_id_in_lock(ws)
        assert run_id == list_runs(ws)[-1]["run_id"]
        # while it runs, `coord board sync` says which run holds the workspace and what waits
        add_under(board(ws, "CLAUDE"), "first", "  - typed while the run works")
        res = CliRunner().invoke(app, ["board", "sync", "-w", str(ws.root)], catch_exceptions=False)
        assert run.poll() is None
        assert (f"run {run_id} is executing: edits on task_boards/CLAUDE_TASKS.md are not applied yet"
                in res.output), res.output
        assert "run `coord board sync` again when it pauses or ends" in res.output
        assert not run_status(ws)["tasks"]["first"].get("feedback")
        lines: list[str] = []

        def read_until(needle: str) -> None:
            while not any(needle in line for line in lines):
                line = watch.stdout.readline()
                assert line, "coord watch ended early: " + "".join(lines)
                lines.append(line)

        read_until(f"run {run_id} is executing")
        assert not run_status(ws)["tasks"]["first"].get("feedback")
        time.sleep(1.5)  # coord watch retries every second meanwhile, without repeating itself
        (ws.root / "release").touch()  # the run finishes now
        read_until("note on 'first' kept for its agent")
        assert run.wait(timeout=60) == 0
    finally:
        for proc in (run, watch):
            proc.terminate()
            proc.wait(timeout=30)
    waiting = [n for n, line in enumerate(lines) if f"run {run_id} is executing" in line]
    assert len(waiting) == 1, lines  # said once, not at every retry
    assert ("edits on task_boards/CLAUDE_TASKS.md are not applied yet; they stay on the board (the run's "
            "renders keep them) and coord watch applies them when it pauses or ends") in lines[waiting[0]]
    assert waiting[0] < len(lines) - 1  # before the line saying the note was applied
    assert run_status(ws)["tasks"]["first"]["feedback"][0].startswith("typed while the run works")
    assert run_status(ws)["tasks"]["slow"]["status"] == "done"
    assert "  - note: typed while the run works" in board(ws, "CLAUDE").read_text()


def test_board_sync_against_a_busy_workspace_lists_only_boards_with_edits_in_coords_sections(ws):
    from coordinator.core.workspace import WorkspaceLock
    from tests.task_boards.conftest import start

    start(ws)
    human = board(ws, "HUMAN")
    human.write_text(human.read_text() + "\nMy own text below coord's sections.\n")
    with WorkspaceLock(ws) as lock:
        lock.claim("b-other")
        res = CliRunner().invoke(app, ["board", "sync", "-w", str(ws.root)], catch_exceptions=False)
        assert "run b-other is executing; no board edits are waiting" in res.output, res.output
        add_under(board(ws, "CLAUDE"), "prep", "  - a note")
        res = CliRunner().invoke(app, ["board", "sync", "-w", str(ws.root)], catch_exceptions=False)
    assert "run b-other is executing: edits on task_boards/CLAUDE_TASKS.md are not applied yet" in res.output
    assert "HUMAN_TASKS.md" not in res.output
    with WorkspaceLock(ws):  # a process that is not a run (say `coord costs`)
        res = CliRunner().invoke(app, ["board", "sync", "-w", str(ws.root)], catch_exceptions=False)
    assert (f"another coord process (pid {os.getpid()}) is using the workspace: edits on "
            "task_boards/CLAUDE_TASKS.md are not applied yet") in res.output, res.output
    assert "run `coord board sync` again when it is done" in res.output
    res = CliRunner().invoke(app, ["board", "sync", "-w", str(ws.root)], catch_exceptions=False)
    assert "note on 'prep' kept for its agent" in res.output
