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
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from coordinator.core.errors import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_WAITING,
    UsageError,
    WorkspaceBusyError,
)
from coordinator.core.events import EventLog, now_iso
from coordinator.core.grading import grade_floor
from coordinator.core.read_only import require_writable
from coordinator.core.run_store import load_run_plan
from coordinator.core.state import PERSON_HOLD, REVIEW_HOLD, DecisionRecord, GateRecord
from coordinator.core.workspace import Workspace, lock_holder
from coordinator.engine.runner import (
    UNFINISHED,
    RunOptions,
    find_run,
    list_runs,
    resume_run,
    run_status,
)
from reviews import inbox
from reviews.gate import decision_applied, needs_person, window_open
from reviews.gitinfo import person
from roles.definitions import roles_for

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
    """True when the decision is in the run's checkpoint; False when it is still queued."""
    live: bool = False
    """True when a live run held the workspace: that run applies the queued decision."""
    gate_status: str | None = None
    """The gate's status afterwards (None while queued)."""
    problems: list[str] = field(default_factory=list)
    hints: list[str] = field(default_factory=list)
    """When the run waits again: what continues it (the command or tick for each wait)."""

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


def _validate(action: str, note: str | None, grade: str | None, by: str | None = None) -> None:
    if by is not None and (not by.strip() or any(not c.isprintable() for c in by) or len(by) > 100):
        raise UsageError("--by is a person's name: one line of printable text, at most 100 characters")
    if note is not None and any(not c.isprintable() and c not in "\n\t" for c in note):
        raise UsageError("--note holds control characters; write it as plain text")
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
    closed, another decision on it is already queued, or the grade is not on the scale.
    The same decision given again (a command killed before the run took it) is not queued
    twice: the queued one goes on.
    """
    run_id, decision = queue_decision(ws, gate_id, action, note=note, grade=grade, by=by, run_id=run_id)
    return apply_queued(ws, run_id, decision)


def queue_decision(ws: Workspace, gate_id: str, action: Action, *, note: str | None = None,
                   grade: str | None = None, by: str | None = None,
                   run_id: str | None = None) -> tuple[str, DecisionRecord]:
    """Check a decision and queue it durably for its run (nothing is applied yet); the run and the decision.

    A decision with the same action and grade already queued for the gate is returned instead
    of a new one, so a command or board sync killed after queueing queues nothing twice.
    """
    _validate(action, note, grade, by)
    require_writable(ws.state_dir, f"record a decision on gate {gate_id!r}")
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
        if q["action"] == action and q["grade"] == grade:
            _log_queued(ws, run_id, q)
            return run_id, q
        raise UsageError(f"a decision on gate {gate_id!r} is already queued ({q['action']} by {q['by']} at "
                         f"{q['at']}); the run applies it when it continues (`coord resume {run_id}`)")
    rec = run_status(ws, run_id)["gates"][gate_id]
    status = rec.get("status", "pending")
    who = by or person(ws.root)
    held = rec.get("decision")
    if status != "waiting" and held and (held["action"], held["grade"], held["by"], held["note"]) == \
            (action, grade, who, note):
        return run_id, held  # the same command again after a kill that came once the run had taken it
    if status != "waiting":
        holder = lock_holder(ws)
        live = holder is not None and holder.run_id == run_id
        raise UsageError(not_waiting(gate_id, run_id, rec, plan.gates[gate_id].policy, live=live))
    if rec.get("override_until") and not window_open(rec):
        raise UsageError(f"the override window of gate {gate_id!r} closed at {rec['override_until']}; "
                         f"its automatic verdict stands ({rec.get('status')})")
    decision = DecisionRecord(id=uuid.uuid4().hex, gate=gate_id, action=action, by=who, at=now_iso(), note=note,
                              grade=grade)
    held = inbox.put(ws, run_id, decision)
    if held["id"] != decision["id"]:  # another process queued a decision on the gate a moment before
        if (held["action"], held["grade"]) != (action, grade):
            raise UsageError(f"a decision on gate {gate_id!r} was queued a moment ago ({held['action']} by "
                             f"{held['by']} at {held['at']}); the run applies it, and yours was not recorded")
        decision = held
    _log_queued(ws, run_id, decision)
    return run_id, decision


def _log_queued(ws: Workspace, run_id: str, decision: DecisionRecord) -> None:
    EventLog.of(ws, run_id).emit("decision_queued", once=f"decision_queued:{decision['id']}",
                                     gate=decision["gate"], decision=decision["id"], action=decision["action"],
                                     by=decision["by"])


def apply_queued(ws: Workspace, run_id: str, decision: DecisionRecord) -> DecisionResult:
    """Resume the run so it takes a queued decision (or leave it to the live run that holds the workspace)."""
    gate_id = decision["gate"]
    result = DecisionResult(run_id=run_id, gate_id=gate_id, action=decision["action"], by=decision["by"],
                            at=decision["at"], note=decision["note"], grade=decision["grade"], phase="running",
                            applied=False)
    record = find_run(ws, run_id)
    if record.get("phase") not in UNFINISHED:  # it took the decision and ended: nothing to resume
        st = run_status(ws, run_id)
        gate = st["gates"].get(gate_id, {})
        result.phase, result.problems, result.gate_status = st["phase"], st["problems"], gate.get("status")
        result.applied = decision_applied(gate, decision["id"])
        return result
    try:
        summary = resume_run(ws, run_id, RunOptions(plan=""))
    except WorkspaceBusyError:
        result.live = True
        return result  # a live run holds the workspace; it applies the queued decision itself
    gate = summary.state.get("gates", {}).get(gate_id, {})
    result.phase, result.problems = summary.phase, summary.problems
    result.gate_status = gate.get("status")
    result.applied = decision_applied(gate, decision["id"])
    if summary.phase == "waiting":
        result.hints = continue_hints(ws, run_id, summary.state)
    return result


def not_waiting(gate_id: str, run_id: str, rec: Mapping[str, Any], policy: str, *, live: bool = False) -> str:
    """Why a decision on a gate that does not wait for one is refused, and what can be done instead
    (``live``: a coord process is driving the run now)."""
    status = rec.get("status", "pending")
    decided = f" (decided by {rec['decided_by']} at {rec['decided_at']})" if rec.get("decided_by") else ""
    head = f"gate {gate_id!r} of run {run_id} is not waiting for a decision: it is {status}{decided}"
    if status == "pending" and live:
        return (f"{head}; it is reviewed once the tasks it covers are done, and the run is going now: decide it "
                "when it waits for you (`coord status` shows when)")
    if status == "pending":
        return f"{head}; it is reviewed once the tasks it covers are done (`coord resume {run_id}` runs them)"
    if policy == "auto" and status in ("rejected", "changes_requested"):
        return (f"{head}. A policy-auto gate is decided by its measurements alone: fix the work and untick a "
                f"task the gate covers on its board (it is reviewed again), or give the gate `policy: "
                f"auto_then_human` (or `human`) in the plan and start a fresh run to let a person decide")
    if status in ("rejected", "changes_requested"):
        return (f"{head}. To have it reviewed again, untick a task it covers on its board "
                f"(`coord board sync` reopens it and the gate)")
    return head


def continue_hints(ws: Workspace, run_id: str, state: Mapping[str, Any]) -> list[str]:
    """What continues a run that waits for a person: the command or the tick, for each gate and task it waits on."""
    plan = load_run_plan(ws, run_id)
    roles = roles_for(ws, plan)
    hints = []
    for gid, spec in plan.gates.items():
        if needs_person(cast(GateRecord, (state.get("gates") or {}).get(gid) or {})):
            board = f"task_boards/{roles[spec.reviewer].board_name}_TASKS.md" if spec.reviewer in roles else "its board"
            hints.append(f"gate {gid} waits for your decision: `coord approve {gid}`, `coord reject {gid} --note WHY` "
                         f"or `coord override {gid} --grade G --note WHY` (or tick `approve` on {board})")
    for tid in plan.order:
        rec: Mapping[str, Any] = (state.get("tasks") or {}).get(tid) or {}
        role = roles.get(plan.tasks[tid].role)
        if rec.get("status") != "waiting" or role is None or rec.get("held_by") not in (PERSON_HOLD, REVIEW_HOLD):
            continue
        board = f"task_boards/{role.board_name}_TASKS.md"
        what = (f"read {', '.join(str(a['path']) for a in rec.get('artifacts') or []) or 'its answer'} and tick it "
                f"on {board}" if rec.get("held_by") == REVIEW_HOLD else f"tick it on {board} once it is done")
        hints.append(f"task {tid} waits for {role.agent}: {what}, then `coord board sync` and "
                     f"`coord resume {run_id}` (or keep `coord watch` running, which does both)")
    return hints
