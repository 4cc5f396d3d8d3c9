"""One dispatch of a task, as the task pool runs it and as a worker queue carries it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from coordinator.core.plan import CompiledTask
from coordinator.core.state import FeedbackRecord


@dataclass(frozen=True)
class TaskJob:
    """One dispatch of a task with everything a driver gets besides the run (a worker queue's payload too)."""

    task: CompiledTask
    dispatch: int
    """With the run and the task, the key of this piece of work: a result record is written once per key."""
    feedback: tuple[str, ...] = ()
    """Why a gate (or a person) sent the task back, as text."""
    earlier_attempts: int = 0
    """Attempts of this task's earlier dispatches (a gate sent it back, a person reopened it)."""
    review: FeedbackRecord | None = None
    """The same feedback as data."""
    upstream: dict[str, Any] = field(default_factory=dict)
    """Metrics of the upstream tasks its ``${task.metric}`` references name."""
    inputs: tuple[str, ...] = ()
    """The artifacts of the tasks it needs."""
    earlier_cost: float = 0.0
    """USD the task's earlier dispatches recorded: its record's cost counts every run of it."""
    digests: tuple[tuple[str, str, str], ...] = ()
    """(path, sha256, task that wrote it) of those artifacts: a file changed since is not fed to the task."""

    def to_json(self) -> dict[str, Any]:
        """The job as JSON-able data (:meth:`from_json` reads it back)."""
        return {"task": self.task.model_dump(mode="json", by_alias=True), "dispatch": self.dispatch,
                "feedback": list(self.feedback), "earlier_attempts": self.earlier_attempts,
                "review": self.review, "upstream": self.upstream, "inputs": list(self.inputs),
                "digests": [list(d) for d in self.digests], "earlier_cost": self.earlier_cost}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TaskJob:
        """The job :meth:`to_json` wrote."""
        return cls(CompiledTask.model_validate(data["task"]), int(data["dispatch"]), tuple(data["feedback"]),
                   int(data["earlier_attempts"]), data.get("review"), dict(data["upstream"]), tuple(data["inputs"]),
                   float(data.get("earlier_cost") or 0.0),
                   tuple((str(p), str(h), str(t)) for p, h, t in data.get("digests") or ()))
