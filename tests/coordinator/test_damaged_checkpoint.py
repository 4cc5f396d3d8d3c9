"""A damaged or missing checkpoint database is named with what to do; `run --fresh` works; nothing restarts silently."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from coordinator.cli.app import app
from coordinator.core.events import read_events
from coordinator.engine.runner import RunOptions, run_plan
from tests.conftest import PLUGINS
from tests.coordinator.steps_for_tests import write_plan

REPO = Path(__file__).resolve().parents[2]

PLAN = """name: cp
tasks:
  - {id: a, title: A, role: lead, run: t_noop}
  - {id: b, title: B, role: lead, needs: [a], run: t_sleep, with: {seconds: 0.05}}
"""


def _cli(ws, *args):
    return CliRunner().invoke(app, [*args, "-w", str(ws.root)], catch_exceptions=False)


@pytest.mark.parametrize("damage", ["bad header", "truncated"])
def test_a_damaged_checkpoint_is_named_and_run_fresh_moves_it_aside(ws, damage):
    path = write_plan(ws.root, PLAN)
    assert run_plan(ws, RunOptions(plan=str(path), render_interval=0)).exit_code == 0
    data = ws.db.read_bytes()
    ws.db.write_bytes(b"not a database at all" + data[21:] if damage == "bad header" else data[: len(data) // 3])
    for suffix in ("-wal", "-shm"):
        ws.db.with_name(ws.db.name + suffix).unlink(missing_ok=True)

    status = _cli(ws, "status")
    assert status.exit_code == 1 and "is damaged" in status.output and "--fresh" in status.output
    assert "Traceback" not in status.output
    again = _cli(ws, "run", str(path))
    assert again.exit_code == 1 and "is damaged" in again.output

    fresh = _cli(ws, "run", str(path), "--fresh")
    assert fresh.exit_code == 0, fresh.output
    assert list(ws.state_dir.glob("state.sqlite.damaged-*"))
    assert _cli(ws, "status").exit_code == 0


@pytest.mark.slow
def test_a_run_whose_checkpoint_was_deleted_is_not_silently_restarted(ws):
    path = write_plan(ws.root, PLAN.replace("seconds: 0.05", "seconds: 30"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(PLUGINS)])}
    proc = subprocess.Popen([sys.executable, "-m", "coordinator", "run", str(path), "-w", str(ws.root)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(
            e["kind"] == "task_started" and e["task"] == "b" for e in read_events(ws.events)):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    run_id = next(e["run"] for e in read_events(ws.events) if e["kind"] == "run_started")
    lost = ws.state_dir / "lost"
    lost.mkdir()
    for p in ws.state_dir.glob("state.sqlite*"):
        p.replace(lost / p.name)  # the checkpoint database is gone (deleted, or a disk was swapped)

    started = sum(e["kind"] == "task_started" for e in read_events(ws.events, run_id))
    result = _cli(ws, "resume", run_id)

    assert result.exit_code == 1
    assert f"run {run_id} has no checkpoint in" in " ".join(result.output.split())
    assert sum(e["kind"] == "task_started" for e in read_events(ws.events, run_id)) == started  # nothing ran
