"""Graph state: only serializable data, merged through reducers.

Nodes return partial updates; ``tasks``, ``gates`` and ``deferred`` merge
record by record, so parallel updates to different tasks never clash.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired, TypedDict

TaskStatus = Literal["pending", "running", "done", "failed", "skipped", "blocked", "waiting"]
GateStatus = Literal["pending", "approved", "deferred", "changes_requested", "rejected", "skipped", "waiting"]
"""``deferred``: the gate failed with ``on_fail: defer``; gated tasks go on and the findings are carried."""
Verdict = Literal["approved", "changes_requested", "rejected"]
DecisionAction = Literal["approve", "reject", "override"]
TERMINAL_TASK: frozenset[str] = frozenset({"done", "failed", "skipped", "blocked"})
DECIDED_GATE: frozenset[str] = frozenset({"approved", "deferred", "changes_requested", "rejected", "skipped"})
PASSING_GATE: frozenset[str] = frozenset({"approved", "deferred"})
"""Gate statuses that let the tasks they block start."""

STATE_SCHEMA_VERSION = 1

PERSON_HOLD = "person"
"""``TaskRecord.held_by`` of a task handed to a person (the ``human`` driver): it waits for their tick."""
REVIEW_HOLD = "review"
"""``TaskRecord.held_by`` of an answer with nothing to check (an assignment without accept checks that a
stand-in answered): it needs a person's review, and their tick, before it is done."""


class ArtifactRecord(TypedDict):
    """A file a task produced."""

    path: str
    sha256: str
    bytes: int
    rows: int | None


class TaskRecord(TypedDict, total=False):
    """Everything coord knows about one task in one run."""

    status: TaskStatus
    dispatch: int
    """How many times the scheduler started this task afresh (resumes keep the number)."""
    attempts: int
    """Attempts over every dispatch: in-task retries and runs after a gate sent it back or a person reopened it."""
    started_at: str | None
    finished_at: str | None
    duration_s: float | None
    driver: str
    agent: str
    metrics: dict[str, Any]
    artifacts: list[ArtifactRecord]
    notes: list[str]
    error: str | None
    reason: str | None
    """Why a task was skipped or blocked."""
    cost_usd: float
    recovered: bool
    """The result came from the durable result record written before a crash."""
    environment_fault: bool
    """It failed because the machine refused (a full disk): a resume runs it again."""
    skipped_run: bool
    """The step found its outputs up to date and did not run."""
    skip_cause: Literal["profile", "upstream"]
    """Skipped by the profile (satisfies dependents) or because a need failed (propagates)."""
    feedback: list[str]
    """Review findings handed to the agent on a retry (and people's notes), as text."""
    review: FeedbackRecord
    """The same review as data, for steps and commands that adjust their next attempt."""
    held_by: str | None
    """``budget`` while the budget holds this paid task back (coordinator/budget.py); ``person`` while a
    person has it (the ``human`` driver); ``review`` while an answer with nothing to check waits for a
    person to review it (the ``offline`` driver)."""
    accepted_by: str | None
    """Set when a person's tick made the task done: ``checks`` (its accept checks passed) or
    ``person (<name>)`` (it has none: done on that person's word)."""


class ClaimComparison(TypedDict):
    """One figure an agent claimed, next to what coord measured."""

    text: str
    """The claim as written (a short excerpt)."""
    claimed: str
    measured: str
    matches: bool


class CriterionResult(TypedDict):
    """One gate criterion as measured."""

    name: str
    label: str
    kind: Literal["metric", "file", "command", "claims", "review"]
    target: str
    op: str | None
    threshold: Any
    measured: Any
    passed: bool
    critical: bool
    weight: float
    deferred: bool
    detail: str | None
    defer_text: NotRequired[str | None]
    """The deferred item's text when ``deferred`` (the check's ``defer:`` or its finding)."""
    counts: NotRequired[dict[str, int]]
    """Command checks: pass/fail counts parsed from the output."""
    claimed: NotRequired[str | None]
    """Claims checks: the first mismatching (or first) claim, for a one-line view."""
    claims: NotRequired[list[ClaimComparison]]
    """Claims checks: every claim found, side by side with the measurement."""


ModelReviewStatus = Literal["reviewed", "failed", "skipped", "not_configured"]
"""``reviewed``: the model answered; ``failed``: its call or its answer failed; ``skipped``: not
called (budget exhausted); ``not_configured``: the reviewer role has no LLM provider."""


class ModelFinding(TypedDict):
    """One finding a reviewer model reported (its opinion, not a measurement)."""

    severity: Literal["blocker", "major", "minor", "info"]
    title: str
    detail: str
    file: str | None
    line: int | None
    criterion: str | None


class ModelReview(TypedDict):
    """What a gate's reviewer model said about the evidence coord measured, and what it cost.

    Kept apart from the measured criteria: advisory unless a ``review`` criterion counts it.
    """

    status: ModelReviewStatus
    reason: str | None
    """Why the model did not review (or failed), in words a person can act on."""
    role: str
    agent: str
    provider: str | None
    model: str | None
    attempt: int
    summary: str | None
    recommendation: Literal["approve", "changes_requested", "reject"] | None
    findings: list[ModelFinding]
    calls: int
    tokens_in: int
    tokens_out: int
    cost_usd: float
    """Known USD of the calls (see ``cost_known``)."""
    cost_known: bool
    evidence_sha256: str | None
    evidence_chars: int
    evidence_truncated: bool
    """The evidence hit the prompt bound and was cut."""
    answer_file: str | None
    """Workspace-relative path of the stored answer (``.coord/runs/<run>/reviews/<gate>.<attempt>.llm.json``)."""
    reused: bool
    """The stored answer was reused (a resumed run) instead of calling the model again."""
    at: str


class DecisionRecord(TypedDict):
    """A person's decision on a gate."""

    id: str
    """Unique per decision: applying the same decision twice is a no-op."""
    gate: str
    action: DecisionAction
    by: str
    at: str
    note: str | None
    grade: str | None
    """The grade a person gave with ``override``."""


class CriterionOutcome(TypedDict):
    """One criterion of an earlier review, as a task sent back reads it."""

    id: str
    label: str
    kind: str
    measured: Any
    op: str | None
    threshold: Any
    passed: bool
    critical: bool


class ReviewAttempt(TypedDict):
    """One earlier review of the work: its grade, verdict and every criterion."""

    attempt: int
    grade: str | None
    score: float | None
    verdict: Verdict | None
    criteria: list[CriterionOutcome]


class FeedbackRecord(TypedDict):
    """What a gate that sent a task back tells its next attempt, as data (``TaskRecord.review``)."""

    gate: str
    attempt: int
    """The attempt now starting (2 after the first send-back)."""
    max_attempts: int
    """The last attempt the gate allows (1 + its ``max_retries``)."""
    attempts: list[ReviewAttempt]
    """Every earlier review, oldest first."""
    findings: list[ModelFinding]
    """The reviewer model's findings on the latest attempt (its opinion, not measurements)."""
    note: str | None
    """A person's note with the decision that sent the work back."""
    note_by: str | None


class AttemptSummary(TypedDict):
    """An earlier review of a gate that sent its tasks back."""

    attempt: int
    score: float | None
    grade: str | None
    verdict: Verdict | None
    findings: list[str]
    reviewed_at: str | None
    decision: NotRequired[DecisionRecord | None]
    """The person's decision that sent the work back, if one did."""
    model_review: NotRequired[ModelReview | None]
    """What the reviewer model said about that attempt."""
    criteria: NotRequired[list[CriterionOutcome]]
    """What that attempt measured, criterion by criterion."""


class GateRecord(TypedDict, total=False):
    """A gate's review: measurements, score, grade, verdict and decision."""

    status: GateStatus
    score: float | None
    grade: str | None
    grade_measured: str | None
    """The grade the score earned, kept when a person overrides ``grade``."""
    verdict: Verdict | None
    """The verdict coord measured (a person's decision changes ``status``, not this)."""
    criteria: list[CriterionResult]
    findings: list[str]
    deferred: list[str]
    decided_at: str | None
    decided_by: str | None
    attempt: int
    reason: str | None
    policy: str
    on_fail: str
    reviewed_at: str | None
    override_until: str | None
    """``auto_then_human``: until when a person may override the automatic verdict."""
    decision: DecisionRecord | None
    history: list[AttemptSummary]
    commit: str | None
    """The workspace's git commit when reviewed (``+dirty`` when it had changes)."""
    model_review: ModelReview | None
    """The reviewer model's opinion of this attempt's evidence (or why there is none)."""


class Remeasurement(TypedDict):
    """The criterion that opened a deferred item, measured again once a task meant to resolve it was done."""

    after: str
    """The resolving task whose completion the measurement follows."""
    stamp: str
    """The resolving tasks' completions measured (``task@finished_at``): each is measured once."""
    at: str
    measured: Any
    passed: bool | None
    """None when nothing measured the criterion again (the item stays open)."""
    detail: str
    """What was measured against what the criterion needs, or why nothing was."""


class DeferredItem(TypedDict):
    """Work a gate let through but did not forget."""

    text: str
    gate: str
    criterion: str
    detail: str
    resolved_by: list[str]
    status: Literal["open", "resolved"]
    resolved_in: str | None
    remeasured: NotRequired[Remeasurement | None]
    """The latest re-measurement of the criterion (an item is resolved only when it passes); None until
    a resolving task is done (and again when the gate opens the item anew)."""


class RecordMap(dict[str, Any]):
    """An id → record map that knows the map it was merged from and the ids that merge touched.

    The checkpointer stores each checkpoint's maps as deltas from the last one; following these links
    back to that map gives the ids that can differ in O(changed), where comparing every record would
    cost O(tasks) on every step. A map read back from storage has no link: then every record is compared.
    """

    __slots__ = ("derived_from", "touched")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.derived_from: dict[str, Any] | None = None
        self.touched: frozenset[str] = frozenset()


def merge_records(left: dict[str, Any] | None, right: dict[str, Any] | None) -> dict[str, Any]:
    """Merge two id → record maps; a record in ``right`` updates the same id's fields in ``left``."""
    if not left:
        return RecordMap(right or {})
    if not right:
        return left
    out = RecordMap(left)
    for key, rec in right.items():
        out[key] = {**out[key], **rec} if key in out and isinstance(out[key], dict) else rec
    out.derived_from, out.touched = left, frozenset(right)
    return out


def touched_since(before: dict[str, Any], after: dict[str, Any], limit: int = 256) -> set[str] | None:
    """The ids merges touched on the way from ``before`` to ``after`` (merges only add or update, so no id
    is dropped); None when ``after`` is not linked back to ``before`` within ``limit`` merges."""
    touched: set[str] = set()
    at: dict[str, Any] | None = after
    for _ in range(limit):
        if at is before:
            return touched
        if not isinstance(at, RecordMap) or at.derived_from is None:
            return None
        touched |= at.touched
        at = at.derived_from
    return None


class ScopeView(TypedDict):
    """One budget scope (the run, or a role) as state and boards show it."""

    limit_usd: float | None
    spent_usd: float
    unknown_calls: int
    """Calls recorded without a known price."""
    pct: float | None
    approved: bool
    exhausted: bool
    text: str


class BudgetView(TypedDict):
    """The run's budget picture in state."""

    run: ScopeView
    roles: dict[str, ScopeView]
    thresholds: list[float]
    alerts: list[float]
    """Thresholds the run's spend has crossed."""
    exhausted: bool


class RunState(TypedDict, total=False):
    """The state of one run (one LangGraph thread)."""

    schema_version: int
    run_id: str
    plan: str
    tasks: Annotated[dict[str, TaskRecord], merge_records]
    gates: Annotated[dict[str, GateRecord], merge_records]
    deferred: Annotated[dict[str, DeferredItem], merge_records]
    phase: Literal["running", "finished", "waiting", "failed"]
    budget: BudgetView
    """Spend vs limits and crossed alert thresholds (coordinator/engine/budget.py ``BudgetStatus.to_state``)."""
    board_sync: str
    """The id of the last board sync whose edits this state holds: the commit point of a sync's journal
    (coordinator/core/run_store.py)."""
