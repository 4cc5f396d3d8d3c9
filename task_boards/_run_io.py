"""How board sync reads and writes a run: its stored plan and its LangGraph checkpoint.

Edits reach the run through ``graph.update_state`` on the run's thread. The graph is
compiled once per process and bound to each connection; the stored plan is validated
once per content of ``plan.json`` (a 2,000-task plan costs ~20 ms to validate).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from functools import lru_cache
from typing import Any

import orjson
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph.state import CompiledStateGraph

from coordinator.core.errors import UsageError
from coordinator.core.plan import CompiledPlan
from coordinator.core.state import RunState, merge_records
from coordinator.core.workspace import Workspace
from coordinator.engine.checkpoint import open_saver
from coordinator.engine.context import RunContext
from coordinator.engine.graph import build_graph


@lru_cache(maxsize=1)
def _compiled_graph() -> CompiledStateGraph[RunState, RunContext, RunState, RunState]:
    return build_graph(None)


def _graph(saver: BaseCheckpointSaver[Any]) -> CompiledStateGraph[RunState, RunContext, RunState, RunState]:
    """The coordinator graph on ``saver``: compiled once per process, bound to each connection."""
    return _compiled_graph().copy(update={"checkpointer": saver})


_PLANS: OrderedDict[tuple[str, str], CompiledPlan] = OrderedDict()
_PLANS_LOCK = threading.Lock()


def load_plan_cached(ws: Workspace, run_id: str) -> CompiledPlan:
    """The run's stored plan, validated once per distinct content of ``plan.json``.

    The file is read every time and the cache is keyed by its digest, so a plan an
    edit or another process changed is never served stale. Callers must not mutate
    the returned plan (changes go through ``model_copy``, as :mod:`task_boards.apply` does).
    """
    path = ws.run_dir(run_id) / "plan.json"
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"run {run_id!r} has no stored plan ({path} is missing)") from None
    key = (str(path), hashlib.sha256(raw).hexdigest())
    with _PLANS_LOCK:
        plan = _PLANS.get(key)
        if plan is not None:
            _PLANS.move_to_end(key)
            return plan
    plan = CompiledPlan.model_validate(orjson.loads(raw))
    with _PLANS_LOCK:
        _PLANS[key] = plan
        while len(_PLANS) > 4:
            _PLANS.popitem(last=False)
    return plan


def read_run_state(ws: Workspace, run_id: str) -> tuple[RunState, tuple[str, ...]]:
    """The run's latest checkpointed state and the graph's next step(s)."""
    with open_saver(ws.db) as saver:
        snap = _graph(saver).get_state({"configurable": {"thread_id": run_id}})
    return snap.values, tuple(snap.next)  # type: ignore[return-value]


def write_run_state(ws: Workspace, run_id: str, update: dict[str, Any], nxt: tuple[str, ...]) -> None:
    """Apply a partial update to the run's thread through ``graph.update_state``.

    The update is recorded as written by the node that precedes the thread's
    next step (``nxt``, read with the state), so a paused run resumes where it was.
    """
    config: Any = {"configurable": {"thread_id": run_id}}
    with open_saver(ws.db) as saver:
        _graph(saver).update_state(config, update, as_node="await_tasks" if nxt == ("advance",) else "advance")


def merged_state(state: RunState, update: dict[str, Any]) -> RunState:
    """``state`` with ``update`` merged by the state's own reducers (what the checkpoint now holds)."""
    out: dict[str, Any] = dict(state)
    for key, value in update.items():
        out[key] = merge_records(out.get(key), value)
    return out  # type: ignore[return-value]
