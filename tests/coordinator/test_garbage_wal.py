"""A checkpoint WAL full of random bytes: `resume` says the checkpoint is gone and runs nothing again, never
starts the run silently from the beginning; `status` answers without a traceback and `run --fresh` works.

The run is killed (SIGKILL) mid-way, so its checkpoints are still in ``state.sqlite-wal``, not yet in
the database file; then the WAL is overwritten with random bytes of the same size (a disk or a copy
that mangled it). SQLite ignores a WAL whose header does not check out, so the database looks as if
the run never checkpointed anything.
"""

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
from tests.conftest import PLUGINS
from tests.coordinator.steps_for_tests import write_plan

REPO = Path(__file__).resolve().parents[2]
PLAN = """name: wal
tasks:
  - {id: a, title: A, role: lead, run: t_noop}
  - {id: b, title: B, role: lead, needs: [a], run: t_noop}
  - {id: c, title: C, role: lead, needs: [b], run: t_sleep, with: {seconds: 30}}
"""


def _cli(ws, *args):
    return CliRunner().invoke(app, [*args, "-w", str(ws.root)], catch_exceptions=False)


@pytest.mark.slow
def test_a_garbage_wal_does_not_restart_the_run_silently(ws):
    path = write_plan(ws.root, PLAN)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(PLUGINS)]),
           "COORD_KEEP_CHECKPOINTS": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "coordinator", "run", str(path), "-w", str(ws.root)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(
            e["kind"] == "task_started" and e["task"] == "c" for e in read_events(ws.events)):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    wal = ws.db.with_name(ws.db.name + "-wal")
    assert wal.exists() and wal.stat().st_size > 0, "the killed run left no WAL to damage"
    wal.write_bytes(os.urandom(wal.stat().st_size))
    ws.db.with_name(ws.db.name + "-shm").unlink(missing_ok=True)
    run_id = next(e["run"] for e in read_events(ws.events) if e["kind"] == "run_started")
    started = [e["task"] for e in read_events(ws.events, run_id) if e["kind"] == "task_started"]
    assert started == ["a", "b", "c"]

    status = _cli(ws, "status")
    assert "Traceback" not in status.output
    result = _cli(ws, "resume", run_id)

    assert result.exit_code == 1, result.output
    assert f"run {run_id} has no checkpoint in" in " ".join(result.output.split())
    assert "--fresh" in result.output
    after = [e["task"] for e in read_events(ws.events, run_id) if e["kind"] == "task_started"]
    assert after == started  # nothing ran again: a and b are not redone from the beginning

    path.write_text(PLAN.replace("seconds: 30", "seconds: 0.05"))
    fresh = _cli(ws, "run", str(path), "--fresh")
    assert fresh.exit_code == 0, fresh.output  # the way out the message names works
