"""A fault in a task's worker thread reaches the run: the task fails with the reason, the run ends."""

from __future__ import annotations

import errno
import threading

import coordinator.engine.pool as pool_module
from coordinator.core.io import AppendFile
from coordinator.engine.runner import RunOptions, run_plan
from tests.coordinator.steps_for_tests import write_plan

PLAN = """name: full
tasks:
  - {id: a, title: A, role: lead, run: t_noop}
  - {id: b, title: B, role: lead, needs: [a], run: t_noop}
"""


def test_a_full_disk_while_recording_a_result_fails_the_task_and_names_the_file(ws, monkeypatch):
    real = AppendFile._write

    def full_disk(self, fd, data):
        if self.path.name == "results.jsonl":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, fd, data)

    monkeypatch.setattr(AppendFile, "_write", full_disk)
    box: dict[str, object] = {}
    worker = threading.Thread(target=lambda: box.setdefault("summary", run_plan(
        ws, RunOptions(plan=str(write_plan(ws.root, PLAN)), render_interval=0))), daemon=True)
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive(), "the run hung after a worker thread failed"
    summary = box["summary"]
    rec = summary.state["tasks"]["a"]  # type: ignore[attr-defined]
    assert rec["status"] == "failed"
    assert rec["error"].startswith("no space left on the device while writing ")
    assert str(ws.run_dir(summary.run_id) / "results.jsonl") in rec["error"]  # type: ignore[attr-defined]
    assert "coord resume" in rec["error"]
    assert summary.exit_code == 1  # type: ignore[attr-defined]
    assert summary.state["tasks"]["b"]["status"] == "skipped"  # type: ignore[attr-defined]


def test_a_driver_bug_outside_the_driver_call_still_fails_only_its_task(ws, monkeypatch):
    monkeypatch.setattr(pool_module.TaskPool, "_execute", lambda self, entry: 1 / 0)
    summary = run_plan(ws, RunOptions(plan=str(write_plan(ws.root, PLAN)), render_interval=0))
    assert summary.state["tasks"]["a"]["status"] == "failed"
    assert "ZeroDivisionError" in summary.state["tasks"]["a"]["error"]
