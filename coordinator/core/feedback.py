"""What a task sent back by a gate learns about its earlier attempts, as data.

A step reads it as ``ctx.feedback``, a command as the JSON file ``$COORD_FEEDBACK``,
an agent as a section of its EXECUTE_NOW file. On a first attempt there is none::

    @step()
    def pilot(ctx: StepContext, *, temperature: float = 1.0) -> StepResult:
        if ctx.feedback is not None and not ctx.feedback.passed("runaway_rate"):
            temperature = min(temperature, 0.7)
        ...
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from coordinator.core.state import CriterionOutcome, FeedbackRecord, ModelFinding, ReviewAttempt

FEEDBACK_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Criterion:
    """One criterion of an earlier review."""

    id: str
    label: str
    kind: str
    measured: Any
    """What coord measured (a number, a bool, an exit code, …)."""
    op: str | None
    threshold: Any
    passed: bool
    critical: bool


@dataclass(frozen=True)
class Attempt:
    """One earlier review of the work."""

    attempt: int
    grade: str | None
    score: float | None
    verdict: str | None
    criteria: tuple[Criterion, ...]

    def criterion(self, id_or_metric: str) -> Criterion | None:
        """The criterion with this id, or the metric criterion on ``<task>.<metric>`` / ``<metric>``."""
        slug = "".join(ch if ch.isalnum() else "_" for ch in id_or_metric)
        for c in self.criteria:
            if c.id in (id_or_metric, slug) or c.id.endswith("_" + slug):
                return c
        return None


@dataclass(frozen=True)
class Finding:
    """A reviewer model's finding (its opinion, not a measurement)."""

    severity: str
    title: str
    detail: str
    file: str | None
    line: int | None
    criterion: str | None


@dataclass(frozen=True)
class Feedback:
    """Why the work came back, and everything the earlier reviews measured."""

    attempt: int
    """The attempt now running (2 after the first send-back)."""
    max_attempts: int | None
    """The last attempt the gate allows (None when a person reopened the task outside a gate)."""
    gate: str | None = None
    attempts: tuple[Attempt, ...] = ()
    """Every earlier review, oldest first."""
    findings: tuple[Finding, ...] = ()
    note: str | None = None
    """A person's note with the decision (or board edit) that sent the work back."""
    note_by: str | None = None
    lines: tuple[str, ...] = field(default=())
    """The same feedback as the text lines boards and agents read."""

    @property
    def latest(self) -> Attempt | None:
        """The most recent earlier review."""
        return self.attempts[-1] if self.attempts else None

    @property
    def last_attempt(self) -> bool:
        """True when this is the last attempt the gate allows."""
        return self.max_attempts is not None and self.attempt >= self.max_attempts

    def measured(self, id_or_metric: str) -> Any:
        """What the latest review measured for a criterion (None when it has no such criterion)."""
        crit = self.latest.criterion(id_or_metric) if self.latest else None
        return crit.measured if crit else None

    def passed(self, id_or_metric: str) -> bool | None:
        """Whether the latest review passed a criterion (None when it has no such criterion)."""
        crit = self.latest.criterion(id_or_metric) if self.latest else None
        return crit.passed if crit else None

    def to_json(self) -> dict[str, Any]:
        """The form a command reads from ``$COORD_FEEDBACK``."""
        return {
            "schema_version": FEEDBACK_SCHEMA_VERSION, "gate": self.gate, "attempt": self.attempt,
            "max_attempts": self.max_attempts,
            "attempts": [{"attempt": a.attempt, "grade": a.grade, "score": a.score, "verdict": a.verdict,
                          "criteria": [vars(c) for c in a.criteria]} for a in self.attempts],
            "findings": [vars(f) for f in self.findings], "note": self.note, "note_by": self.note_by,
            "lines": list(self.lines)}

    @classmethod
    def of(cls, lines: Sequence[str], record: Mapping[str, Any] | None, attempt: int) -> Feedback | None:
        """From a task record's text ``feedback`` and structured ``review`` (None when there is neither)."""
        if not lines and not record:
            return None
        if not record:
            return cls(attempt=attempt, max_attempts=None, lines=tuple(lines))
        return cls(
            attempt=int(record.get("attempt") or attempt), max_attempts=record.get("max_attempts"),
            gate=record.get("gate"),
            attempts=tuple(Attempt(int(a["attempt"]), a.get("grade"), a.get("score"), a.get("verdict"),
                                   tuple(Criterion(**c) for c in a.get("criteria") or []))
                           for a in record.get("attempts") or []),
            findings=tuple(Finding(**f) for f in record.get("findings") or []),
            note=record.get("note"), note_by=record.get("note_by"), lines=tuple(lines))


def outcomes(criteria: Sequence[Mapping[str, Any]]) -> list[CriterionOutcome]:
    """The part of measured criteria a later attempt needs."""
    return [CriterionOutcome(id=str(c["name"]), label=str(c.get("label") or c["name"]), kind=str(c["kind"]),
                             measured=c.get("measured"), op=c.get("op"), threshold=c.get("threshold"),
                             passed=bool(c.get("passed")), critical=bool(c.get("critical")))
            for c in criteria]


def feedback_record(gate: str, attempt: int, max_attempts: int, attempts: list[ReviewAttempt],
                    findings: list[ModelFinding], note: str | None, note_by: str | None) -> FeedbackRecord:
    """A :class:`FeedbackRecord` for the task record of a task a gate sends back."""
    return FeedbackRecord(gate=gate, attempt=attempt, max_attempts=max_attempts, attempts=attempts,
                          findings=findings, note=note, note_by=note_by)
