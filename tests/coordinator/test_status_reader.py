"""`coord status` reads the checkpoint without LangGraph: it must see what the graph sees,
including after a kill mid-step (pending writes) and with the record maps stored as deltas."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from coordinator.core.workspace import Workspace
from coordinator.engine.checkpoint_read import Unreadable, decode, latest_state
from coordinator.engine.run_state import read_run_state
from coordinator.engine.run_view import checkpointed_state, find_run
from coordinator.engine.runner import RunOptions, run_plan
from tests.conftest import PLUGINS
from tests.coordinator.steps_for_tests import write_plan

REPO = Path(__file__).resolve().parents[2]
COORD = [sys.executable, "-c",
         f"import sys; sys.path.insert(0, {str(PLUGINS)!r}); from coordinator.cli.app import main; "
         "sys.argv[0] = 'coord'; main()"]

PLAN = """name: reader
tasks:
  - {id: a, title: A, role: lead, run: t_noop}
  - {id: b, title: B, role: quality, needs: [a], run: t_noop, with: {value: 1}}
  - {id: c, title: C, role: execution, needs: [a], run: t_noop}
  - {id: d, title: D, role: lead, needs: [b, c], run: t_noop}
gates:
  - id: check
    after: [b]
    policy: auto
    criteria:
      - {metric: b.value, op: "==", value: 1, label: b reported a value}
"""


def _coord(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    full["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), full.get("PYTHONPATH")) if p)
    return subprocess.run([*COORD, *args], cwd=cwd, capture_output=True, text=True, env={**full, **env},
                          stdin=subprocess.DEVNULL, timeout=120)


def _same_as_the_graph(ws: Workspace) -> dict:
    run_id = find_run(ws, None)["run_id"]
    direct, _ = checkpointed_state(ws, run_id)
    graph, _ = read_run_state(ws, run_id)
    assert direct == graph
    return direct


@pytest.mark.slow
@pytest.mark.parametrize("after_event", ["task_started", "task_started:2", "task_finished:2", "gate_decided",
                                         "board_rendered:2", "run_finished"])
def test_direct_read_matches_the_graph_after_a_kill(tmp_path, after_event):
    (tmp_path / "reader.yaml").write_text(PLAN)
    killed = _coord(["run", "reader.yaml"], tmp_path, COORD_FAULT_AFTER_EVENT=after_event,
                    COORD_KEEP_CHECKPOINTS="0")
    assert killed.returncode == 137, killed.stderr
    ws = Workspace.at(tmp_path)
    state = _same_as_the_graph(ws)
    if after_event == "task_started":  # the first task starts before the graph's first checkpoint
        assert state == {} and find_run(ws, None)["checkpointed"] is False
    else:
        assert state.get("tasks")  # something was checkpointed
    if after_event != "run_finished":  # killed after the run was recorded as finished: nothing to resume
        resumed = _coord(["resume"], tmp_path)
        assert resumed.returncode in (0, 1), resumed.stderr
    assert _same_as_the_graph(ws)["tasks"]["d"]["status"] == "done"
    status = _coord(["status", "--json"], tmp_path)
    assert status.returncode == 0 and '"d"' in status.stdout


def test_direct_read_of_a_finished_run_matches_the_run(ws):
    summary = run_plan(ws, RunOptions(plan=str(write_plan(ws.root, PLAN)), render_interval=0))
    assert summary.exit_code == 0, summary.problems
    assert _same_as_the_graph(ws)["tasks"] == summary.state["tasks"]


def test_a_thread_without_checkpoint_and_a_missing_database(tmp_path):
    assert latest_state(tmp_path / "none.sqlite", "r") is None


def test_what_the_reader_does_not_know_is_left_to_langgraph():
    with pytest.raises(Unreadable):
        decode("pickle", b"\x80\x04N.")
    import ormsgpack

    with pytest.raises(Unreadable):
        decode("msgpack", ormsgpack.packb({"x": ormsgpack.Ext(5, b"\x00")}))
    assert decode("msgpack", ormsgpack.packb({"x": [1, "a", None]})) == {"x": [1, "a", None]}
