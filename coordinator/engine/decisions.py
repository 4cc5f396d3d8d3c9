"""Human decisions on gates: the one service the CLI and the boards call.

``coord approve/reject/override`` and a person ticking "approve" on a board
both go through :func:`record_decision`. It checks the decision makes sense,
queues it durably (:mod:`reviews.inbox`) and then either resumes the run with
it (``Command(resume=...)`` into the paused ``human_gate`` node, running the
graph to completion or to the next wait) or, when a live run holds the
workspace, leaves it for that run, which applies it within a moment.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Literal

from coordinator.core.errors import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_WAITING,
    UsageError,
    WorkspaceBusyError,
)
from coordinator.core.events import EventLog, now_iso
from coordinator.core.grading import grade_floor
from coordinator.core.run_store import load_run_plan
from coordinator.core.state import DecisionRecord
from coordinator.core.workspace import Workspace
from coordinator.engine.runner import RunOptions, find_run, list_runs, resume_run, run_status
from reviews import inbox
from reviews.gate import decision_applied, window_open
from reviews.gitinfo import person

Action = Literal["approve", "reject", "override"]


@dataclass
class DecisionResult:
    """What recording a decision did."""

    run_id: str
    gate_id: str
    action: Action
    by: str
    at: str
    note: str | None
    grade: str | None
    phase: str
    """The run's phase afterwards: finished, failed, waiting, or running (a live run will apply it)."""
    applied: bool
    """True when the decision is in the run's checkpoint; False when queued for a live run."""
    gate_status: str | None = None
    """The gate's status afterwards (None while queued)."""
    problems: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 finished or queued, 1 failed, 3 waiting on a person again."""
        if not self.applied:
            return EXIT_OK
        return {"finished": EXIT_OK, "waiting": EXIT_WAITING, "running": EXIT_OK}.get(self.phase, EXIT_FAILED)


def _find_run(ws: Workspace, gate_id: str, run_id: str | None) -> str:
    if run_id is not None:
        return str(find_run(ws, run_id)["run_id"])
    runs = list_runs(ws)
    having = [r for r in runs if gate_id in load_run_plan(ws, r["run_id"]).gates]
    if not having:
        raise UsageError(f"no run has a gate {gate_id!r} (see `coord status` for the gates of the latest run)")
    unfinished = [r for r in having if r.get("phase") in ("running", "waiting")]
    return str((unfinished or having)[-1]["run_id"])


def _validate(action: str, note: str | None, grade: str | None) -> None:
    if action not in ("approve", "reject", "override"):
        raise UsageError(f"unknown decision {action!r} (approve, reject or override)")
    if action in ("reject", "override") and not (note and note.strip()):
        raise UsageError(f"a decision to {action} needs a note saying why (--note)")
    if action == "override" and not grade:
        raise UsageError("an override needs the grade to give (--grade, e.g. B+)")
    if action != "override" and grade:
        raise UsageError("--grade only goes with override")


def record_decision(ws: Workspace, gate_id: str, action: Literal["approve", "reject", "override"], *,
                    note: str | None = None, grade: str | None = None, by: str | None = None,
                    run_id: str | None = None) -> DecisionResult:
    """Record a person's decision on a waiting gate and let the run go on with it.

    ``by`` defaults to the workspace's git ``user.name`` (else ``$USER``); ``run_id``
    to the latest unfinished run that has the gate. Raises :class:`UsageError`
    (and changes nothing) when the gate is not waiting, its override window has
    closed, a decision on it is already queued, or the grade is not on the scale.
    """
    _validate(action, note, grade)
    run_id = _find_run(ws, gate_id, run_id)
    plan = load_run_plan(ws, run_id)
    if gate_id not in plan.gates:
        raise UsageError(f"run {run_id} has no gate {gate_id!r} (gates: {', '.join(plan.gates) or 'none'})")
    if grade is not None:
        try:
            grade_floor(grade, plan.grading)
        except ValueError as e:
            raise UsageError(str(e)) from None
    queued = [d for d in inbox.pending(ws, run_id) if d["gate"] == gate_id]
    if queued:
        q = queued[0]
        raise UsageError(f"a decision on gate {gate_id!r} is already queued ({q['action']} by {q['by']} at "
                         f"{q['at']}); the run applies it when it continues (`coord resume {run_id}`)")
    rec = run_status(ws, run_id)["gates"][gate_id]
    status = rec.get("status", "pending")
    if status != "waiting":
        decided = f" (decided by {rec['decided_by']} at {rec['decided_at']})" if rec.get("decided_by") else ""
        raise UsageError(f"gate {gate_id!r} of run {run_id} is not waiting for a decision: it is {status}{decided}")
    if rec.get("override_until") and not window_open(rec):
        raise UsageError(f"the override window of gate {gate_id!r} closed at {rec['override_until']}")
    decision = DecisionRecord(id=uuid.uuid4().hex, gate=gate_id, action=action, by=by or person(ws.root),
                              at=now_iso(), note=note, grade=grade)
    inbox.put(ws, run_id, decision)
    EventLog(ws.events, run_id).emit("decision_queued", gate=gate_id, decision=decision["id"], action=action,
                                     by=decision["by"])
    result = DecisionResult(run_id=run_id, gate_id=gate_id, action=action, by=decision["by"], at=decision["at"],
                            note=note, grade=grade, phase="running", applied=False)
    try:
        summary = resume_run(ws, run_id, RunOptions(plan=""))
    except WorkspaceBusyError:
        return result  # a live run holds the workspace; it applies the queued decision itself
    gate = summary.state.get("gates", {}).get(gate_id, {})
    result.phase, result.problems = summary.phase, summary.problems
    result.gate_status = gate.get("status")
    result.applied = decision_applied(gate, decision["id"])
    return result
