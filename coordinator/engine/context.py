"""The run context: everything a node needs that is not state (pool, renderer, plan, clients)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from coordinator.core.events import EventLog
from coordinator.core.plan import CompiledPlan
from coordinator.core.roles import RoleDefinition
from coordinator.core.workspace import Workspace
from coordinator.engine.pool import TaskPool
from coordinator.engine.schedule import Frontier

if TYPE_CHECKING:
    from coordinator.engine.budget import RunBudget


RENDER_SHARE = 20.0
"""Routine renders are spaced at least this many times their own duration apart."""


@dataclass
class RunContext:
    """Injected into nodes through LangGraph's ``context``; never checkpointed."""

    ws: Workspace
    plan: CompiledPlan
    run_id: str
    roles: dict[str, RoleDefinition]
    pool: TaskPool
    events: EventLog
    concurrency: int = 4
    """Most tasks running at once."""
    render_interval: float = 1.0
    """Seconds between board renders while only pipeline steps run."""
    on_render: Callable[[list[str]], None] | None = None
    last_render: float = field(default=0.0)
    conflicts: list[str] = field(default_factory=list)
    expansions: dict[str, list[str]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    budget: RunBudget | None = None
    """Spend limits read from the ledger (coordinator/budget.py); None runs without budget checks."""
    render_seconds: float = 0.0
    """How long the last render took: renders are spaced so that they take at most
    1/:data:`RENDER_SHARE` of the run's time, whatever the plan's size."""
    budget_view: Any = None
    """The last budget view and when it was read (see ``nodes._budget_view``)."""
    budget_view_at: float = 0.0
    budget_stamp: tuple[int, ...] = ()
    """The ledger's file stamps when the budget view was read."""
    spend_changed: bool = False
    """A call was recorded through this run's budget since the view was read."""
    frontier: Frontier | None = None
    """What the next scheduling pass must look at (rebuilt when the plan changes)."""
    touched: set[str] = field(default_factory=set)
    """Tasks and gates whose records the nodes changed since the last scheduling pass."""
    held: set[str] | None = None
    """Tasks the budget holds (None until the first step of this process has looked)."""
    orphans_checked: bool = False
    """Tasks left running by an earlier process were restarted (done once per process)."""
    in_graph: bool = True
    """False during a new run's first step, which runs before the graph exists (nothing is checkpointed)."""

    def __post_init__(self) -> None:
        if not self.expansions:
            for tid, task in self.plan.tasks.items():
                self.expansions.setdefault(task.base_id, []).append(tid)

    def render_due(self) -> bool:
        """True when the render interval has passed, and long enough since the last render that
        rendering takes at most 1/RENDER_SHARE of the time (a board of 10,000 tasks is not redrawn
        after every task)."""
        wait = max(self.render_interval, RENDER_SHARE * self.render_seconds)
        return time.monotonic() - self.last_render >= wait
