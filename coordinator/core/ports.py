"""The driver interface: how a task gets done, whoever does it.

The graph only ever calls :meth:`Driver.run`; pipeline steps, the offline
stand-in, LLM APIs, coding-agent CLIs and people all plug in behind it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from coordinator.core.llm import SpendGuard
from coordinator.core.plan import CompiledTask
from roles.definitions import RoleDefinition

OutcomeStatus = Literal["done", "failed", "waiting"]


@dataclass
class TaskOutcome:
    """What a driver reports back."""

    status: OutcomeStatus
    metrics: dict[str, Any] = field(default_factory=dict)
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    cost_usd: float = 0.0
    skipped_run: bool = False
    """The work was already done (outputs up to date) and nothing ran."""
    held_by: str | None = None
    """``budget`` when the task did not start because its cost does not fit the budget (status waiting)."""
    accept_checked: bool = False
    """The driver already ran the task's accept checks where the work lives (e.g. a git worktree)."""


@dataclass(frozen=True)
class DriverContext:
    """What a driver may use while running one task. Not part of graph state."""

    workspace: Path
    run_id: str
    role: RoleDefinition
    attempt: int
    feedback: list[str]
    """Findings from a review that sent this task back (empty on a first attempt)."""
    cancel: threading.Event
    """Set when the task timed out or the run stops; long drivers should check it."""
    progress: Callable[[str, float | None], None]
    log_file: Path
    spend: SpendGuard | None = None
    """Records this task's paid calls in the ledger and checks estimates against the budget."""


class Driver(Protocol):
    """Runs one task."""

    name: str

    def run(self, task: CompiledTask, ctx: DriverContext) -> TaskOutcome:
        """Do the task (or hand it over) and report the outcome; never raise for task failures."""
        ...


def tail(text: str, lines: int = 20) -> str:
    """Last lines of a log, for error messages."""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def outcome_from_error(exc: BaseException) -> TaskOutcome:
    """A failed outcome that names the error type and message."""
    return TaskOutcome(status="failed", error=f"{type(exc).__name__}: {exc}")


ArtifactDict = dict[str, Any]
__all__ = ["ArtifactDict", "Driver", "DriverContext", "TaskOutcome", "outcome_from_error", "tail"]
