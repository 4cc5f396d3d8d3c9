"""What a parsed board says: its tasks, gate approvals, and the problems found reading it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

EditKind = Literal["tick", "untick", "approve", "reassign", "note", "new_task", "defer"]

FIELDS = frozenset({"status", "kind", "needs", "why", "error", "accept", "measured", "artifacts",
                    "reported", "role", "note", "notice", "defer", "deferred"})
"""Keys coord renders (or reads) under a task; any other line under a task is a note."""
OWNED = frozenset({"status", "kind", "needs", "why", "error", "accept", "measured", "artifacts", "reported",
                   "notice"})
"""Keys whose lines coord writes from measurements; a person's change to them would be lost."""


@dataclass(frozen=True)
class BoardProblem:
    """A garbled edit: where it is and what is wrong."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


@dataclass
class BoardTask:
    """One task-list item in a board's tasks section."""

    id: str | None
    """From the ``<!-- coord:task id=... -->`` marker; None for a task a person added."""
    checked: bool | None
    """None when the checkbox is garbled."""
    title: str
    line: int
    """1-based line in the file."""
    fields: dict[str, str] = field(default_factory=dict)
    field_lines: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    note_lines: list[int] = field(default_factory=list)


@dataclass
class BoardGate:
    """One gate line in a board's gates section."""

    id: str
    checked: bool | None
    """True/False for an approve checkbox, None when the line has none."""
    line: int


@dataclass
class ParsedBoard:
    """A role board as read."""

    file: str
    role: str | None
    run_id: str | None
    tasks: list[BoardTask] = field(default_factory=list)
    gates: list[BoardGate] = field(default_factory=list)
    problems: list[BoardProblem] = field(default_factory=list)


@dataclass(frozen=True)
class Edit:
    """One change a person made that coord follows."""

    kind: EditKind
    target: str
    """Task or gate id (the generated id of a new task is decided when it is applied)."""
    file: str
    line: int
    value: str | None = None
    """New role, note text, new task title, or the reason a task is deferred."""
    extra: tuple[str, ...] = ()
    """Notes written under a new task (its instructions)."""
    role: str | None = None
    """The role whose board a new task was added to."""

    def where(self) -> str:
        """``file:line``."""
        return f"{self.file}:{self.line}"
