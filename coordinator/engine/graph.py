"""Wire the coordinator graph. Nodes live in :mod:`coordinator.engine.nodes`."""

from __future__ import annotations

from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from coordinator.core.state import RunState
from coordinator.engine.context import RunContext
from coordinator.engine.nodes import advance, await_tasks, human_gate, route_after_advance


def build_graph(checkpointer: BaseCheckpointSaver[Any] | None) -> CompiledStateGraph[RunState, RunContext, RunState, RunState]:
    """advance → (await_tasks | human_gate → advance)* → END."""
    builder = StateGraph(RunState, context_schema=RunContext)
    builder.add_node("advance", advance)
    builder.add_node("await_tasks", await_tasks)
    builder.add_node("human_gate", human_gate)
    builder.add_edge(START, "advance")
    builder.add_conditional_edges("advance", route_after_advance,
                                  {"await_tasks": "await_tasks", "human_gate": "human_gate", "__end__": END})
    builder.add_edge("await_tasks", "advance")
    builder.add_edge("human_gate", "advance")
    return builder.compile(checkpointer=checkpointer)
