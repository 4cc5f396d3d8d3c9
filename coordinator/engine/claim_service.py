"""The session's side of claims: what an interactive agent may take in hand, and handing a run its result.

``coord mcp`` calls these (a CLI command could too). The store and the run's side are
:mod:`coordinator.engine.task_claims`. Which tasks can be claimed:

- an assignment that has not started (pending): the run waits for the session when it gets to it;
- an assignment waiting for a person (the ``human`` driver, or a stand-in's answer that needs review) in a
  run that no process drives: it is made pending again, so the run hands it to the session when it goes on;
- an assignment a killed process left running: the run that resumes it waits for the session.

Never a pipeline step or a command (coord runs those itself), a task that is done, failed, skipped or
blocked, a task its driver is doing now, or one a budget holds.

An accepted report reaches the run as follows: a live run (another process drives it) takes it within
a moment; a paused run is continued right here, as ``coord approve`` continues one, until it finishes
or waits again (``continue_run=False`` leaves that to ``coord resume``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from coordinator.core.errors import UsageError, WorkspaceBusyError
from coordinator.core.plan import CompiledPlan, CompiledTask
from coordinator.core.run_store import load_run_plan
from coordinator.core.state import PERSON_HOLD, REVIEW_HOLD
from coordinator.core.workspace import Workspace, WorkspaceLock, lock_holder
from coordinator.engine import task_claims
from coordinator.engine.decisions import continue_hints
from coordinator.engine.run_state import read_run_state, write_run_state
from coordinator.engine.runner import RunOptions, find_run, resume_run, run_status
from roles.definitions import roles_for
from roles.task_view import execute_now_text

TAKE_WAIT_S = 10.0
"""How long a report waits for a live run to take an accepted result before it answers."""
ENDED = ("done", "skipped", "blocked", "failed")


@dataclass
class ClaimView:
    """A claim as the session sees it: the record and what to do."""

    run_id: str
    task: str
    role: str
    claim: task_claims.ClaimRecord
    instructions: str
    """The task's EXECUTE_NOW text: what a headless agent would have been given as its prompt."""
    accept: list[str]
    """The task's accept checks, as the plan states them (coord measures them on every report)."""
    reopened: bool = False
    """The task waited for a person and was made pending again for the session."""


@dataclass
class ReportView:
    """What became of a report."""

    run_id: str
    task: str
    report: task_claims.SessionReport
    replayed: bool
    handed_to: str
    """``live run`` (another process takes it), ``this process`` (the run was continued here), ``stored``
    (the run takes it when it is resumed), or ``nobody`` (not accepted)."""
    task_status: str | None = None
    run_phase: str | None = None
    problems: list[str] = field(default_factory=list)
    hints: list[str] = field(default_factory=list)


def _unfinished_run(ws: Workspace, run_id: str | None) -> str:
    record = find_run(ws, run_id, unfinished=run_id is None)
    if record.get("phase") not in ("running", "waiting"):
        raise UsageError(f"run {record['run_id']} is {record.get('phase')}: only an unfinished run's tasks can be "
                         "claimed")
    return str(record["run_id"])


def _assignment(plan: CompiledPlan, task_id: str, role: str | None) -> CompiledTask:
    task = plan.tasks.get(task_id)
    if task is None:
        mine = [t.id for t in plan.tasks.values() if role is None or t.role == role]
        raise UsageError(f"run has no task {task_id!r} (tasks{f' of role {role}' if role else ''}: "
                         f"{', '.join(mine) or 'none'})")
    if role is not None and task.role != role:
        raise UsageError(f"task {task_id!r} belongs to role {task.role!r}, not {role!r}")
    if task.run is not None or task.command is not None:
        what = f"pipeline step `{task.run}`" if task.run else "its command"
        raise UsageError(f"task {task_id!r} is coord's own work ({what}); only assignments can be claimed")
    return task


def _claimable(task_id: str, rec: dict[str, Any], live: bool) -> bool:
    """Whether the task may be claimed as it stands; True when it waits for a person and must be reopened."""
    status = str(rec.get("status", "pending"))
    if status in ENDED:
        raise UsageError(f"task {task_id!r} is {status}" + (f": {rec['error']}" if rec.get("error") else "")
                         + ("; untick it on its board to reopen it" if status in ("done", "failed") else ""))
    if status == "waiting" and rec.get("held_by") not in (PERSON_HOLD, REVIEW_HOLD):
        raise UsageError(f"task {task_id!r} is held: {rec.get('reason') or rec.get('held_by')}")
    if status == "waiting" and live:
        raise UsageError(f"task {task_id!r} waits for a person in a run another process drives; claim it once "
                         "that run pauses (it does when nothing else can run), or tick it on its board")
    return status == "waiting"


def claim_task(ws: Workspace, task_id: str, holder: str, *, role: str | None = None, run_id: str | None = None,
               lease_s: float = task_claims.LEASE_S) -> ClaimView:
    """Put a task in ``holder``'s hands (or renew their claim); the run waits for their result."""
    rid = _unfinished_run(ws, run_id)
    plan = load_run_plan(ws, rid)
    task = _assignment(plan, task_id, role)
    st = run_status(ws, rid)
    rec = st["tasks"].get(task_id, {})
    earlier = task_claims.load(ws, rid, task_id)
    renewing = task_claims.in_hand(earlier) and earlier is not None and earlier["holder"] == holder
    reopen = False if renewing else _claimable(task_id, rec, bool(st.get("live")))
    claim = task_claims.make_claim(ws, rid, task, holder, lease_s)
    if reopen:
        try:
            _reopen(ws, rid, task_id)
        except WorkspaceBusyError:
            task_claims.release(ws, rid, task_id, holder, "a run started before the task could be handed over")
            raise
    roles = roles_for(ws, plan)
    state = run_status(ws, rid) if reopen else st
    text = execute_now_text(plan, roles[task.role], {"run_id": rid, "tasks": state["tasks"]}, task_id)
    return ClaimView(rid, task_id, task.role, claim, text, [c.describe() for c in task.accept], reopen)


def _reopen(ws: Workspace, run_id: str, task_id: str) -> None:
    """Make a task that waits for a person pending again, through the checkpointer (as a board edit is applied),
    so the run hands it to the session when it goes on."""
    with WorkspaceLock(ws):
        _, nxt = read_run_state(ws, run_id)
        write_run_state(ws, run_id, {"tasks": {task_id: {"status": "pending", "held_by": None, "error": None,
                                                         "reason": None, "finished_at": None}}}, nxt)


def add_note(ws: Workspace, task_id: str, holder: str, text: str, *, run_id: str | None = None) -> task_claims.ClaimRecord:
    """A note of the session's on a task it holds (it goes with the result); renews the claim."""
    rid = _unfinished_run(ws, run_id)
    return task_claims.add_note(ws, rid, task_id, holder, text)


def release_task(ws: Workspace, task_id: str, holder: str, *, run_id: str | None = None) -> task_claims.ClaimRecord:
    """Let go of a claimed task: its driver does it when the run gets to it."""
    rid = _unfinished_run(ws, run_id)
    return task_claims.release(ws, rid, task_id, holder)


def report_result(ws: Workspace, task_id: str, holder: str, summary: str, files: list[str], *,
                  run_id: str | None = None, attempt: int | None = None, continue_run: bool = True) -> ReportView:
    """Measure the session's result on a task it holds; when it passes, hand it to the run."""
    rid = _unfinished_run(ws, run_id)
    plan = load_run_plan(ws, rid)
    task = _assignment(plan, task_id, None)
    measured = task_claims.record_report(ws, rid, task, holder, summary, files, attempt)
    view = ReportView(rid, task_id, measured.report, measured.replayed, "nobody")
    if not measured.report["accepted"]:
        return view
    holder_now = lock_holder(ws)
    if holder_now is not None and holder_now.run_id == rid:
        _await_take(ws, rid, task_id, view)
    elif continue_run:
        try:
            summary_ = resume_run(ws, rid, RunOptions(plan=""))
        except WorkspaceBusyError:
            _await_take(ws, rid, task_id, view)
        else:
            view.handed_to, view.run_phase, view.problems = "this process", summary_.phase, summary_.problems
            view.task_status = summary_.state.get("tasks", {}).get(task_id, {}).get("status")
            if summary_.phase == "waiting":
                view.hints = continue_hints(ws, rid, summary_.state)
    else:
        view.handed_to = "stored"
        view.hints = [f"`coord resume {rid}` hands the result to the run"]
    return view


def _await_take(ws: Workspace, run_id: str, task_id: str, view: ReportView) -> None:
    """Wait a little for the live run to take (or send back) the result; say what happened."""
    view.handed_to = "live run"
    deadline = time.monotonic() + TAKE_WAIT_S
    while time.monotonic() < deadline:
        rec = task_claims.load(ws, run_id, task_id)
        if rec is None or rec["status"] != "reported":
            break
        time.sleep(task_claims.POLL_S)
    rec = task_claims.load(ws, run_id, task_id)
    if rec is not None and rec["status"] == "taken":
        view.task_status = "taken"
    elif rec is not None and rec["status"] == "held" and rec["reports"]:
        view.report = rec["reports"][-1]  # measured again when the run took it, and sent back
    else:
        view.hints = ["the live run takes the result when it gets to the task"]
