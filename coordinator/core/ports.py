"""The ports plugins implement, and their registries.

- :class:`Driver`: how a task gets done (pipeline steps, the offline stand-in,
  LLM APIs, coding-agent CLIs, people). The engine calls :meth:`Driver.run` and
  asks the class what it can do (:class:`DriverTraits`); it never tests a name.
- :class:`Validator`: a named check of a file (``file: … validator: adp``).
- :class:`StateListener`: told of the run state after each engine step (the boards).
- :class:`~coordinator.core.llm.SpendGuard` (in :mod:`coordinator.core.llm`): a task's view of the budget.
- Steps: :mod:`coordinator.core.step`.

Each registry reads its entry-point group (:mod:`coordinator.core.registry`).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

from coordinator.core.feedback import Feedback
from coordinator.core.llm import SpendGuard
from coordinator.core.plan import CompiledPlan, CompiledTask
from coordinator.core.registry import (
    DRIVER_GROUP,
    LISTENER_GROUP,
    VALIDATOR_GROUP,
    Registry,
    UnknownPlugin,
)
from coordinator.core.roles import RoleDefinition
from coordinator.core.workspace import Workspace

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
    replaced: list[str] = field(default_factory=list)
    """Workspace paths of outputs a person had edited, which this run replaced (an event names each)."""
    environment_fault: bool = False
    """The task failed because the machine refused (no space left, over quota), not because of its
    work: a resumed run runs it again instead of taking this result."""


@dataclass(frozen=True)
class DriverContext:
    """What a driver may use while running one task. Not part of graph state."""

    workspace: Path
    run_id: str
    role: RoleDefinition
    attempt: int
    feedback: Feedback | None
    """Why a review (or a person) sent this task back, as data and text (None on a first attempt)."""
    cancel: threading.Event
    """Set when the task timed out or the run stops; long drivers should check it."""
    progress: Callable[[str, float | None], None]
    log_file: Path
    spend: SpendGuard | None = None
    """Records this task's paid calls in the ledger and checks estimates against the budget."""
    upstream: Mapping[str, Any] = field(default_factory=dict)
    """Metrics of upstream tasks a ``${task.metric}`` reference names: task id → its metrics (a
    list of them, in item order, for a task that fanned out)."""
    inputs: tuple[str, ...] = ()
    """Workspace paths of the artifacts of the tasks this task needs."""


PENDING_GATE = "pending_gate"
"""``metrics.merge`` of a done task whose work is on a branch waiting for the gates that review it
(a ``worktree`` driver's; the engine lets it through with :meth:`Driver.after_gates`)."""


@dataclass(frozen=True)
class DriverTraits:
    """What a driver declares about itself; the engine, budget and boards ask this, never the name."""

    worktree: bool = False
    """Assignments run in a git worktree; their files reach the workspace only through :meth:`Driver.after_gates`."""
    paid: bool = False
    """Assignments may spend money (held when the budget is exhausted)."""
    paid_unless_free_provider: bool = False
    """Assignments spend money unless the role's provider is a free one (offline)."""
    stand_in: bool = False
    """A labeled local stand-in, not a real agent (boards and reports say so)."""
    agents: tuple[str, ...] | None = None
    """The agents this driver can run (None: any)."""
    stops_on_timeout: bool = False
    """The driver ends an attempt that runs past the task's ``timeout`` itself (it kills the process
    group), so each attempt gets the whole timeout and a timed-out attempt can be retried. Otherwise
    (work in coord's own process) the task fails at its timeout and the work cannot be stopped."""


class Driver(Protocol):
    """Runs one task."""

    name: str
    traits: ClassVar[DriverTraits]

    def run(self, task: CompiledTask, ctx: DriverContext) -> TaskOutcome:
        """Do the task (or hand it over) and report the outcome; never raise for task failures."""
        ...


class DriverHooks(Protocol):
    """Optional class-level hooks a driver may define; the engine calls them for every driver in use."""

    @classmethod
    def preflight(cls, roles: list[RoleDefinition]) -> list[str]:
        """Problems that would make this driver fail for ``roles`` (checked before a run starts)."""
        ...

    @classmethod
    def after_gates(cls, workspace: Path, run_id: str, plan: CompiledPlan, tasks: Mapping[str, Any],
                    gates: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        """Task-record updates once gates decided (e.g. merge a reviewed branch)."""
        ...


STEP_DRIVER = "pipeline"
"""Tasks with ``run:`` (steps) run through the driver registered under this name."""
COMMAND_DRIVER = "command"
"""Tasks with ``command:`` run through the driver registered under this name."""


def driver_of(task: CompiledTask, role: RoleDefinition) -> str:
    """The driver that runs ``task``: steps and commands their own, assignments their role's."""
    if task.run is not None:
        return STEP_DRIVER
    if task.command is not None:
        return COMMAND_DRIVER
    return role.driver


def driver_traits(name: str | None) -> DriverTraits:
    """The traits of the driver registered as ``name`` (plain traits for an unknown or missing name)."""
    if not name or name not in DRIVERS:
        return DriverTraits()
    return DRIVERS.get(name).traits


ValidatorResult = tuple[bool, str | None]
"""(passed, detail shown on the review record)."""


class Validator(Protocol):
    """Checks one file; registered under ``coord.validators`` and named by ``validator:`` in a file check."""

    def __call__(self, path: Path) -> ValidatorResult: ...


class StateListener(Protocol):
    """Told of the run state after engine steps; registered under ``coord.listeners``."""

    def on_state(self, ws: Workspace, plan: CompiledPlan, roles: dict[str, RoleDefinition],
                 state: Mapping[str, Any], decided_gates: list[str]) -> ListenerResult:
        """React to the state (render, notify); report files written and conflicts."""
        ...


@dataclass
class ListenerResult:
    """What a listener wrote and what it refused to overwrite."""

    written: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)


def _driver_class(name: str, obj: object) -> type[Driver]:
    if not isinstance(obj, type) or not hasattr(obj, "run"):
        raise UnknownPlugin(f"driver {name!r} must be a class with a run() method, got {obj!r}")
    if not isinstance(getattr(obj, "traits", None), DriverTraits):
        raise UnknownPlugin(f"driver {name!r} ({obj.__module__}.{obj.__qualname__}) must declare "
                            "`traits = DriverTraits(...)`")
    return obj


def _validator(name: str, obj: object) -> Validator:
    if not callable(obj):
        raise UnknownPlugin(f"validator {name!r} must be callable (path) -> (passed, detail), got {obj!r}")
    return obj


def _listener(name: str, obj: object) -> StateListener:
    made = obj() if isinstance(obj, type) else obj
    if not hasattr(made, "on_state"):
        raise UnknownPlugin(f"listener {name!r} must have an on_state() method")
    return made


DRIVERS: Registry[type[Driver]] = Registry(DRIVER_GROUP, "driver", _driver_class)
VALIDATORS: Registry[Validator] = Registry(VALIDATOR_GROUP, "validator", _validator)
LISTENERS: Registry[StateListener] = Registry(LISTENER_GROUP, "listener", _listener)


_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b.")
"""Terminal escape sequences (colours, cursor moves, titles) a program may print."""


def printable(text: str) -> str:
    """``text`` without terminal escape sequences and control characters (line breaks and tabs kept): what
    another program printed, made safe to show on coord's console, boards and messages."""
    text = _ESCAPES.sub("", text)
    return "".join(c if c.isprintable() or c in "\n\t" else "" for c in text)


def tail(text: str, lines: int = 20) -> str:
    """Last lines of a log, for error messages (escape sequences and control characters removed)."""
    return "\n".join(printable(text).rstrip().splitlines()[-lines:])


def outcome_from_error(exc: BaseException) -> TaskOutcome:
    """A failed outcome that names the error type and message."""
    return TaskOutcome(status="failed", error=f"{type(exc).__name__}: {exc}")


ArtifactDict = dict[str, Any]
__all__ = ["DRIVERS", "LISTENERS", "VALIDATORS", "ArtifactDict", "Driver", "DriverContext", "DriverHooks",
           "DriverTraits", "ListenerResult", "StateListener", "TaskOutcome", "Validator", "driver_traits",
           "outcome_from_error", "tail"]
