"""A run's checkpointed state, read and changed from outside the running graph (board edits).

Edits reach the run through ``graph.update_state`` on the run's thread, recorded as
written by the node before the thread's next step so that a paused run resumes where
it was. The graph is compiled once per process and bound to each connection.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph.state import CompiledStateGraph

from coordinator.core.io import wrote
from coordinator.core.state import RunState, merge_records
from coordinator.core.workspace import Workspace
from coordinator.engine.context import RunContext
from coordinator.engine.graph import build_graph
from coordinator.engine.stores import open_checkpointer


@lru_cache(maxsize=1)
def _compiled_graph() -> CompiledStateGraph[RunState, RunContext, RunState, RunState]:
    return build_graph(None)


def _graph(saver: BaseCheckpointSaver[Any]) -> CompiledStateGraph[RunState, RunContext, RunState, RunState]:
    """The coordinator graph on ``saver``: compiled once per process, bound to each connection."""
    return _compiled_graph().copy(update={"checkpointer": saver})


def read_run_state(ws: Workspace, run_id: str) -> tuple[RunState, tuple[str, ...]]:
    """The run's latest checkpointed state and the graph's next step(s)."""
    with open_checkpointer(ws) as saver:
        snap = _graph(saver).get_state({"configurable": {"thread_id": run_id}})
    return snap.values, tuple(snap.next)  # type: ignore[return-value]


def write_run_state(ws: Workspace, run_id: str, update: dict[str, Any], nxt: tuple[str, ...]) -> None:
    """Apply a partial update to the run's thread through ``graph.update_state``.

    The update is recorded as written by the node that precedes the thread's
    next step (``nxt``, read with the state), so a paused run resumes where it was.
    """
    config: Any = {"configurable": {"thread_id": run_id}}
    with open_checkpointer(ws) as saver:
        _graph(saver).update_state(config, update, as_node="await_tasks" if nxt == ("advance",) else "advance")
    wrote("checkpoint", run_id)


def merged_state(state: RunState, update: dict[str, Any]) -> RunState:
    """``state`` with ``update`` merged by the state's own reducers (what the checkpoint now holds)."""
    out: dict[str, Any] = dict(state)
    for key, value in update.items():
        out[key] = merge_records(out.get(key), value) if isinstance(value, dict) else value
    return out  # type: ignore[return-value]
