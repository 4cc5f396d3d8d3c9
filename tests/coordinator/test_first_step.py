"""A new run's first step runs before the graph is built: its first tasks start while LangGraph loads.

Killed before the graph's first checkpoint, the run starts again from the beginning with the same
dispatches; a task that finished meanwhile is taken from the results log, never run twice.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from coordinator.core.events import read_events
from coordinator.core.io import FAULT_AT_WRITE, TRACE_WRITES
from coordinator.core.workspace import Workspace
from coordinator.engine import graph as graph_module
from coordinator.engine.runner import RunOptions, list_runs, run_plan
from tests.coordinator.steps_for_tests import write_plan

REPO = Path(__file__).resolve().parents[2]

PLAN = """name: first
tasks:
  - {id: a, title: A, role: lead, run: t_noop}
  - {id: b, title: B, role: lead, run: t_noop}
  - {id: c, title: C, role: quality, needs: [a, b], run: t_noop}
"""


def test_the_first_tasks_start_before_the_graph_is_built_and_run_once(tmp_path, monkeypatch):
    ws = Workspace.at(tmp_path)
    write_plan(tmp_path, PLAN)
    seen: dict[str, list[str]] = {}
    real = graph_module.build_graph

    def build(saver):  # what had happened when the graph was built
        seen["started"] = [e["task"] for e in read_events(ws.events) if e["kind"] == "task_started"]
        seen["boards"] = sorted(p.name for p in ws.boards.glob("*.md"))
        return real(saver)

    monkeypatch.setattr(graph_module, "build_graph", build)
    summary = run_plan(ws, RunOptions(plan=str(tmp_path / "plan.yaml"), concurrency=4))

    assert summary.phase == "finished", summary.problems
    assert seen["started"] and set(seen["started"]) <= {"a", "b"}  # roots only: c needs them
    assert "CLAUDE_TASKS.md" in seen["boards"]  # rendered before its tasks started, as in any step
    started = [e["task"] for e in read_events(ws.events) if e["kind"] == "task_started"]
    assert sorted(started) == ["a", "b", "c"]  # each once: the graph's first step found a and b running
    assert [r["checkpointed"] for r in list_runs(ws)] == [True]


@pytest.mark.slow
def test_a_kill_before_the_first_checkpoint_starts_over_and_takes_the_finished_task_from_its_log(tmp_path):
    plan = ("name: early\ntasks:\n"
            "  - {id: a, title: A, role: lead, command: 'echo a >> side-effects.log'}\n"
            "  - {id: b, title: B, role: lead, needs: [a], command: 'echo b >> side-effects.log'}\n")

    def coord(ws: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "coordinator", *args], cwd=ws, capture_output=True,
                              text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO), **env})

    traced, killed = tmp_path / "traced", tmp_path / "killed"
    for ws in (traced, killed):
        ws.mkdir()
        (ws / "early.yaml").write_text(plan)
    trace = tmp_path / "writes.txt"
    assert coord(traced, "run", "early.yaml", **{TRACE_WRITES: str(trace)}).returncode == 0
    writes = [line.split(" ", 2) for line in trace.read_text().splitlines()]
    result_at = next(int(n) for n, kind, _ in writes if kind == "result")
    checkpoint_at = next(int(n) for n, kind, _ in writes if kind == "checkpoint")
    assert result_at < checkpoint_at, writes  # a's result is logged while the graph is being built

    died = coord(killed, "run", "early.yaml", **{FAULT_AT_WRITE: str(result_at)})
    assert died.returncode == 137, died.stdout + died.stderr
    (record,) = list_runs(Workspace.at(killed))
    assert record["checkpointed"] is False and record["phase"] == "running"

    resumed = coord(killed, "resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert (killed / "side-effects.log").read_text() == "a\nb\n"  # a ran once: its result came from the log
    events = list(read_events(killed / ".coord" / "events.jsonl"))
    assert [e["task"] for e in events if e["kind"] == "task_recovered"] == ["a"]
    assert sum(e["kind"] == "run_started" for e in events) == 1
    (record,) = list_runs(Workspace.at(killed))
    assert record["phase"] == "finished" and record["checkpointed"] is True
