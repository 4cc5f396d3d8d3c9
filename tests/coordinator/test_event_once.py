"""The event log is the ledger of truth: a node that runs again after a kill does not log a fact twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest

from coordinator.core.events import FAULT_AFTER_EVENT, EventLog, read_events
from coordinator.core.io import AppendFile

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable

PLAN = f"""name: once
tasks:
  - id: a
    title: A
    role: lead
    command: ["{PY}", "-c", "import json, os; json.dump({{'x': 2, 'y': 1}}, open(os.environ['COORD_METRICS'], 'w'))"]
  - {{id: b, title: B, role: lead, needs: [g], command: "true"}}
  - id: c
    title: C
    role: lead
    needs: [b]
    command: ["{PY}", "-c", "import json, os; json.dump({{'y': 6}}, open(os.environ['COORD_METRICS'], 'w'))"]
gates:
  - id: g
    after: [a]
    on_fail: defer
    criteria:
      - {{metric: a.x, op: ">=", value: 1, critical: true}}
      - {{metric: a.y, op: ">=", value: 5, defer: "raise y", resolved_by: [c]}}
"""


def test_the_same_once_key_is_logged_once_even_from_a_new_process(tmp_path):
    path = tmp_path / "events.jsonl"
    EventLog(path, "r1").emit("gate_decided", once="gate_decided:g:1:review", gate="g")
    EventLog(path, "r1").emit("gate_decided", once="gate_decided:g:1:review", gate="g")  # after a restart
    EventLog(path, "r2").emit("gate_decided", once="gate_decided:g:1:review", gate="g")  # another run
    assert [(e["run"], e["kind"]) for e in read_events(path)] == [("r1", "gate_decided"), ("r2", "gate_decided")]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["gate_decided", "deferred_opened", "deferred_resolved"])
def test_a_kill_right_after_a_fact_is_logged_does_not_log_it_twice_on_resume(tmp_path, kind):
    (tmp_path / "plan.yaml").write_text(PLAN)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    first = subprocess.run([PY, "-m", "coordinator", "run", "plan.yaml"], cwd=tmp_path, capture_output=True,
                           text=True, timeout=120, env={**env, FAULT_AFTER_EVENT: kind})
    assert first.returncode == 137, first.stdout + first.stderr
    resumed = subprocess.run([PY, "-m", "coordinator", "resume"], cwd=tmp_path, capture_output=True, text=True,
                             timeout=120, env=env)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    events = [json.loads(line) for line in (tmp_path / ".coord" / "events.jsonl").read_text().splitlines()]
    counts = Counter(e["kind"] for e in events)
    assert counts["gate_decided"] == counts["deferred_opened"] == counts["deferred_resolved"] == 1, counts
    status = json.loads((tmp_path / ".coord" / "status.json").read_text())
    assert status["deferred"]["g:a_y"]["status"] == "resolved"


def test_a_display_that_fails_stops_displaying_but_never_stops_the_log(tmp_path):
    seen = []

    def closed_pipe(event):
        seen.append(event["kind"])
        raise SystemExit(1)  # what rich does when stdout's pipe is closed (`coord run | head`)

    log = EventLog(tmp_path / "events.jsonl", "r1", listener=closed_pipe)
    log.emit("task_started", task="a")
    log.emit("task_finished", task="a")
    assert seen == ["task_started"]
    assert [e["kind"] for e in read_events(tmp_path / "events.jsonl")] == ["task_started", "task_finished"]


def test_an_event_torn_by_a_kill_costs_only_itself_not_the_next_one(tmp_path):
    path = tmp_path / "events.jsonl"
    EventLog(path, "r1").emit("run_started")
    with open(path, "ab") as fh:
        fh.write(b'{"ts": "2026-12-06T00:00:00Z", "run": "r1", "kind": "task_sta')  # killed mid-write
    EventLog(path, "r1").emit("run_resumed")  # the next process
    assert [e["kind"] for e in read_events(path, "r1")] == ["run_started", "run_resumed"]


def test_a_line_another_process_is_still_writing_is_not_taken_for_a_torn_one(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"kind": "a"}\n{"kind": "b", "no')  # the other writer's line, half copied

    def rest_of_the_write() -> None:
        with path.open("ab") as fh:
            fh.write(b'te": 1}\n')

    finish = threading.Timer(0.05, rest_of_the_write)
    finish.start()
    fd = os.open(path, os.O_RDONLY)
    try:
        assert AppendFile._ends_torn(fd, looks=20, pause=0.02) is False
        finish.join()
        path.write_bytes(b'{"kind": "a"}\n{"kind": "b", "no')  # a writer killed there: it stays torn
        assert AppendFile._ends_torn(fd, looks=3, pause=0.01) is True
    finally:
        os.close(fd)
    log = AppendFile(path)
    log.append(b'{"kind": "c"}\n')
    assert path.read_bytes() == b'{"kind": "a"}\n{"kind": "b", "no\n{"kind": "c"}\n'
