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

if TYPE_CHECKING:
    from coordinator.engine.budget import RunBudget


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

    def __post_init__(self) -> None:
        if not self.expansions:
            for tid, task in self.plan.tasks.items():
                self.expansions.setdefault(task.base_id, []).append(tid)

    def render_due(self) -> bool:
        """True when the render interval has passed."""
        return time.monotonic() - self.last_render >= self.render_interval
