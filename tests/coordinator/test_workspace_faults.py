"""Damaged or odd workspace files: the error names the file that is wrong, nothing is started on a
database that cannot hold it, and a run that could not start is not left looking resumable."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from coordinator.core.errors import CoordError
from coordinator.core.workspace import Workspace
from coordinator.engine.checkpoint_read import is_damage, probe
from coordinator.engine.runner import RunOptions, list_runs, run_plan

PLAN = "name: p\ntasks:\n  - {id: a, title: A, role: lead, command: 'true'}\n  - {id: b, title: B, role: quality, command: 'true'}\n"


@pytest.fixture()
def ws(tmp_path: Path) -> Workspace:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "plan.yaml").write_text(PLAN)
    return Workspace.at(root)


def _run(ws: Workspace, **kw):
    return run_plan(ws, RunOptions(plan=str(ws.root / "plan.yaml"), render_interval=0, **kw))


@pytest.mark.parametrize(("error", "damage"), [
    (sqlite3.OperationalError("database or disk is full"), False),
    (sqlite3.OperationalError("database is locked"), False),
    (sqlite3.OperationalError("attempt to write a readonly database"), False),
    (sqlite3.OperationalError("disk I/O error"), False),
    (sqlite3.OperationalError("no such table: checkpoints"), True),
    (sqlite3.DatabaseError("file is not a database"), True),
    (sqlite3.DatabaseError("database disk image is malformed"), True),
])
def test_a_full_disk_or_a_lock_is_not_called_damage(error, damage):
    assert is_damage(error) is damage


def test_a_damaged_ledger_is_named_and_the_run_that_could_not_start_is_recorded_failed(ws):
    assert _run(ws).phase == "finished"
    for suffix in ("-wal", "-shm"):
        (ws.state_dir / f"ledger.sqlite{suffix}").unlink(missing_ok=True)
    (ws.state_dir / "ledger.sqlite").write_bytes(os.urandom(4096))
    with pytest.raises(CoordError) as exc:
        _run(ws, fresh=True)
    assert f"the cost ledger {ws.state_dir / 'ledger.sqlite'} is damaged" in str(exc.value)
    assert "checkpoint" not in str(exc.value).split("damaged")[0]  # not blamed on the checkpoint database
    last = list_runs(ws)[-1]
    assert last["phase"] == "failed" and "stopped before its first checkpoint" in last["problems"][0]
    repo = str(Path(__file__).resolve().parents[2])
    done = subprocess.run([sys.executable, "-m", "coordinator", "costs"], cwd=ws.root, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": repo}, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr and "the cost ledger" in done.stderr, done.stderr


def test_a_board_linked_outside_the_workspace_is_refused_by_name_and_not_written(ws, tmp_path):
    assert _run(ws).phase == "finished"
    outside = tmp_path / "outside.txt"
    outside.write_text("not coord's\n")
    board = ws.root / "task_boards" / "CODEX_TASKS.md"
    board.unlink()
    board.symlink_to(outside)
    with pytest.raises(CoordError, match=r"task_boards/CODEX_TASKS.md is a link to .*outside.txt, outside the workspace"):
        _run(ws, fresh=True)
    assert outside.read_text() == "not coord's\n"
    assert list_runs(ws)[-1]["phase"] == "failed"


def test_a_checkpoint_database_with_damaged_pages_is_refused_before_anything_runs(ws):
    assert _run(ws).phase == "finished"
    db = ws.db
    with sqlite3.connect(db) as conn:  # fold the WAL in, so the pages below are the database's
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = db.stat().st_size
    assert size >= 4 * 4096
    with db.open("r+b") as fh:  # garble pages past the header (what a bad sector or a stray write does)
        fh.seek(2 * 4096)
        fh.write(os.urandom(size - 2 * 4096))
    assert probe(db) is not None
    events_before = ws.events.read_bytes()
    with pytest.raises(CoordError, match=r"the checkpoint database .* is damaged"):
        _run(ws)
    assert ws.events.read_bytes() == events_before  # nothing started


ENOSPC_ONCE = '''
import errno
from pathlib import Path
from coordinator import StepResult


def enospc_once(ctx):
    tried = Path(ctx.workspace) / "tried"
    if not tried.exists():
        tried.write_text("1")
        raise OSError(errno.ENOSPC, "No space left on device", str(Path(ctx.workspace) / "data" / "out.jsonl"))
    return StepResult(metrics={"ok": 1})
'''


@pytest.mark.slow
def test_a_step_that_failed_on_a_full_disk_runs_again_when_the_run_is_resumed(ws):
    from coordinator.core.events import FAULT_AFTER_EVENT, read_events

    (ws.root / "disk.py").write_text(ENOSPC_ONCE)
    (ws.root / "plan.yaml").write_text("name: p\ntasks:\n  - {id: a, title: A, role: lead, run: 'disk:enospc_once'}\n"
                                       "  - {id: b, title: B, role: lead, needs: [a], command: 'true'}\n")
    repo = str(Path(__file__).resolve().parents[2])

    def coord(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "coordinator", *args], cwd=ws.root, capture_output=True,
                              text=True, timeout=120, env={**os.environ, "PYTHONPATH": repo, **env})

    died = coord("run", "plan.yaml", **{FAULT_AFTER_EVENT: "task_failed:1"})  # the process dies with the disk
    assert died.returncode == 137, died.stdout + died.stderr
    failed = [e for e in read_events(ws.events) if e["kind"] == "task_failed"]
    assert failed and failed[0]["error"].startswith("No space left on device while writing ")
    assert "free some space, then `coord resume`" in failed[0]["error"]
    resumed = coord("resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    events = list(read_events(ws.events))
    assert not [e for e in events if e["kind"] == "task_recovered" and e.get("task") == "a"]
    assert [e["task"] for e in events if e["kind"] == "task_finished"] == ["a", "b"]


PRODUCER = '''
from pathlib import Path
from coordinator import StepResult
from coordinator.core.step_run import StepRun


def make(ctx):
    path = Path(ctx.workspace) / "out" / "a.jsonl"
    run = StepRun(ctx, "make", {}, inputs=[], outputs=[path])
    if (cached := run.cached()) is not None:
        return cached
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f'{{"i": {i}}}\\n' for i in range(100)))
    run.record(path, rows=100)
    return run.finish({"rows": 100})


def use(ctx):
    lines = (Path(ctx.workspace) / "out" / "a.jsonl").read_text().splitlines()
    return StepResult(metrics={"rows": len(lines)})
'''


@pytest.mark.slow
def test_an_input_changed_after_its_task_wrote_it_is_not_fed_to_the_next_task_on_resume(ws):
    from coordinator.core.events import FAULT_AFTER_EVENT

    (ws.root / "prod.py").write_text(PRODUCER)
    (ws.root / "plan.yaml").write_text("name: p\ntasks:\n  - {id: a, title: A, role: lead, run: 'prod:make'}\n"
                                       "  - {id: b, title: B, role: lead, needs: [a], run: 'prod:use'}\n")
    repo = str(Path(__file__).resolve().parents[2])

    def coord(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "coordinator", *args], cwd=ws.root, capture_output=True,
                              text=True, timeout=120, env={**os.environ, "PYTHONPATH": repo, **env})

    assert coord("run", "plan.yaml", **{FAULT_AFTER_EVENT: "task_finished:1"}).returncode == 137
    data = ws.root / "out" / "a.jsonl"
    lines = data.read_text().splitlines()
    lines[9] = "\x00garbled by a bad disk\x00"
    data.write_text("\n".join(lines) + "\n")
    resumed = coord("resume")
    assert resumed.returncode == 1, resumed.stdout + resumed.stderr
    assert "task b failed: input out/a.jsonl changed after a wrote it" in resumed.stdout + resumed.stderr
    again = coord("run", "plan.yaml", "--fresh")  # the producer sees its output changed and writes it again
    assert again.returncode == 0, again.stdout + again.stderr
    assert data.read_text().splitlines()[9] == '{"i": 9}'


def test_a_damaged_run_record_is_named_rather_than_reported_as_no_runs(ws):
    run = _run(ws)
    record = ws.run_dir(run.run_id) / "run.json"
    record.write_bytes(record.read_bytes()[:40])
    from coordinator.engine.run_view import find_run

    with pytest.raises(CoordError) as exc:
        find_run(ws, None)
    assert exc.value.exit_code == 1
    assert f"run record .coord/runs/{run.run_id}/run.json is damaged" in str(exc.value)


def test_the_end_of_a_run_says_which_boards_could_not_be_written(ws):
    from typer.testing import CliRunner

    from coordinator.cli.app import app

    assert _run(ws).phase == "finished"
    claude = ws.root / "task_boards" / "CLAUDE_TASKS.md"
    claude.write_text(claude.read_text().replace("<!-- coord:tasks:end -->", ""))
    result = CliRunner().invoke(app, ["run", str(ws.root / "plan.yaml"), "--fresh", "--workspace", str(ws.root)])
    assert result.exit_code == 0, result.output
    assert "1 board(s) could not be written and show an earlier state:" in result.output
    assert "task_boards/CLAUDE_TASKS.md" in result.output and "`coord board sync` renders them again" in result.output


def test_watch_refuses_a_read_only_workspace_with_one_line(ws, monkeypatch):
    from typer.testing import CliRunner

    from coordinator.cli.app import app

    assert _run(ws).phase == "finished"
    monkeypatch.setattr("coordinator.cli.board.writable", lambda directory: False)
    result = CliRunner().invoke(app, ["watch", "--timeout", "1", "--workspace", str(ws.root)])
    assert result.exit_code == 1
    assert "is read-only: coord watch could not apply an edit" in result.output and "Traceback" not in result.output


def test_an_unknown_setting_in_coord_yaml_is_named_with_its_line(ws):
    (ws.root / "coord.yaml").write_text("roles:\n  lead: {agent: claude}\nrole:\n  quality: {agent: human}\n")
    with pytest.raises(CoordError) as exc:
        _run(ws)
    assert str(exc.value).endswith("coord.yaml:3 → role: unknown setting 'role': did you mean 'roles'? (coord.yaml "
                                   "holds roles, notify, workers, database, workspace_id; a plan's settings go in the "
                                   "plan)"), str(exc.value)
    assert not ws.state_dir.joinpath("runs").exists() or not list(ws.state_dir.joinpath("runs").iterdir())


@pytest.mark.slow
def test_a_command_a_killed_coord_left_running_is_stopped_before_the_resumed_run_starts_it_again(ws):
    import signal
    import time

    from coordinator.core.events import read_events

    (ws.root / "plan.yaml").write_text("name: p\ntasks:\n  - {id: a, title: A, role: lead, command: 'true'}\n"
                                       "  - {id: b, title: B, role: lead, needs: [a], "
                                       "command: 'sleep 3; echo b >> b_ran.txt'}\n")
    repo = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": repo}
    first = subprocess.Popen([sys.executable, "-m", "coordinator", "run", "plan.yaml"], cwd=ws.root, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pid_files: list[Path] = []
    for _ in range(300):  # until b's command runs
        pid_files = list((ws.state_dir / "logs").rglob("b*.pgid")) if (ws.state_dir / "logs").exists() else []
        if pid_files:
            break
        time.sleep(0.05)
    assert pid_files, "b never started"
    orphan = int(pid_files[0].read_text().split()[0])
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    os.killpg(orphan, 0)  # the command outlived coord
    resumed = subprocess.run([sys.executable, "-m", "coordinator", "resume"], cwd=ws.root, env=env,
                             capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    time.sleep(3.5)  # long enough for the orphan to have written, had it been left running
    assert (ws.root / "b_ran.txt").read_text() == "b\n"
    with pytest.raises(ProcessLookupError):
        os.killpg(orphan, 0)
    done = [e for e in read_events(ws.events) if e["kind"] == "task_finished" and e.get("task") == "b"]
    assert len(done) == 1
