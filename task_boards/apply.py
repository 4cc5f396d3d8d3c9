"""Work out what validated board edits change: the plan stored with the run, the state, board notices.

Pure functions over the plan and state (plus the accept checks, which measure
files in the workspace); :mod:`task_boards.sync` does the reading and writing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coordinator.core.events import now_iso
from coordinator.core.plan import CompiledPlan, CompiledTask
from coordinator.core.state import DECIDED_GATE, PASSING_GATE
from coordinator.engine.schedule import reopen_set, satisfied_by
from reviews.criteria import evaluate, metric_lookup
from reviews.figures import figure
from task_boards.model import Edit

Notices = dict[str, dict[str, str]]


@dataclass
class Changes:
    """Everything a batch of edits changes."""

    plan: CompiledPlan
    plan_changed: bool = False
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    gates: dict[str, dict[str, Any]] = field(default_factory=dict)
    deferred: dict[str, dict[str, Any]] = field(default_factory=dict)
    notices: Notices = field(default_factory=dict)
    applied: list[str] = field(default_factory=list)
    reverted: list[str] = field(default_factory=list)
    approvals: list[Edit] = field(default_factory=list)
    audit: list[dict[str, Any]] = field(default_factory=list)
    phase: str | None = None
    """The run's new phase (``waiting``) when the edits reopen work on a run that had ended."""

    def state_update(self) -> dict[str, Any]:
        """The partial state update for the checkpointer (only non-empty channels)."""
        update = {k: v for k, v in (("tasks", self.tasks), ("gates", self.gates), ("deferred", self.deferred)) if v}
        return {**update, "phase": self.phase} if self.phase and update else update


def new_task_id(title: str, taken: set[str]) -> str:
    """A readable, unique id for a task a person added: ``board_<slug>``."""
    slug = re.sub(r"[^a-z0-9]+", "_", re.sub(r"[*`_]", "", title.lower())).strip("_")[:40] or "task"
    candidate, n = f"board_{slug}", 2
    while candidate in taken:
        candidate, n = f"board_{slug}_{n}", n + 1
    return candidate


def accept_failures(task: CompiledTask, rec: Mapping[str, Any], workspace: Path) -> list[str]:
    """Run a task's accept checks on coord's own measurements; the failures, if any."""
    metrics = rec.get("metrics") or {}
    lookup = metric_lookup({task.id: metrics, task.base_id: metrics}, {})
    failures = []
    for check in task.accept:
        res = evaluate(check, lookup, workspace, deferrable=False)
        if not res["passed"]:
            failures.append(f"{res['label']} (measured {figure(res['measured'])}"
                            + (f"; {res['detail']}" if res["detail"] else "") + ")")
    return failures


def held_by_gate(task: CompiledTask, plan: CompiledPlan, gates: Mapping[str, Any]) -> str:
    """Why a gate holds ``task`` back (undecided, or decided against it); "" when none does.

    A board edit is a person's word about a task, never a gate's decision: a task a gate holds
    back stays held until the gate lets it through, however it is ticked or deferred.
    """
    for gid in task.blocked_by:
        status = gates.get(gid, {}).get("status", "pending")
        if status not in PASSING_GATE:
            return (f"it waits for gate {gid} ({_gate_state(status)}), and a board edit cannot decide for a gate"
                    + (f": `coord approve {gid}` or `coord reject {gid} --note …`" if status == "waiting" else ""))
    for need in task.needs:
        status = gates.get(need, {}).get("status", "pending")
        if need in plan.gates and status not in DECIDED_GATE:
            return f"it needs gate {need}'s decision ({_gate_state(status)}), and a board edit cannot decide for a gate"
    return ""


def waits_for(task: CompiledTask, plan: CompiledPlan, tasks: Mapping[str, Any], gates: Mapping[str, Any]) -> str:
    """Why ``task`` cannot be done yet (a gate holds it, or a need is unfinished); "" when it can."""
    held = held_by_gate(task, plan, gates)
    if held:
        return held
    for need in task.needs:
        if need not in plan.gates and not satisfied_by(tasks.get(need, {})):
            return f"it needs {need}, which is {tasks.get(need, {}).get('status', 'pending')}"
    return ""


def _gate_state(status: str) -> str:
    return {"waiting": "waiting for a person", "pending": "not reviewed yet"}.get(status, status)


def compute_changes(edits: list[Edit], plan: CompiledPlan, state: Mapping[str, Any], notices: Notices,
                    workspace: Path, who: str,
                    accept: Callable[[CompiledTask, Mapping[str, Any], Path], list[str]] = accept_failures) -> Changes:
    """Apply ``edits`` in a stable order: plan changes first, then notes, state changes, approvals."""
    ch = Changes(plan=plan, notices=dict(notices))
    tasks_state: Mapping[str, Any] = state.get("tasks", {})
    order = {"new_task": 0, "reassign": 1, "note": 2, "defer": 3, "untick": 4, "tick": 5, "approve": 6}
    new_tasks = dict(plan.tasks)
    new_order = list(plan.order)

    def rec(tid: str) -> dict[str, Any]:
        return {**tasks_state.get(tid, {}), **ch.tasks.get(tid, {})}

    def update(tid: str, **fields: Any) -> None:
        ch.tasks[tid] = {**ch.tasks.get(tid, {}), **fields}

    def gate_recs() -> dict[str, Any]:
        return {g: {**state.get("gates", {}).get(g, {}), **ch.gates.get(g, {})} for g in plan.gates}

    for e in sorted(edits, key=lambda e: order[e.kind]):
        ch.audit.append({"at": now_iso(), "by": who, "kind": e.kind, "target": e.target, "where": e.where(),
                         "value": e.value, "outcome": "applied"})
        reverted_before = len(ch.reverted)
        if e.kind == "new_task":
            tid = new_task_id(e.value or "", set(new_tasks))
            role = e.role or ""
            new_tasks[tid] = CompiledTask(
                id=tid, base_id=tid, title=e.value or tid, role=role, needs=[], run=None, params={},
                instructions="\n".join([e.value or "", *e.extra]).strip(), accept=[], optional=False,
                skip=False, retries=0, retry_backoff=1.0, timeout=None)
            new_order.append(tid)
            update(tid, status="pending", dispatch=0)
            ch.audit[-1]["target"] = tid
            ch.applied.append(f"{e.where()}: new task {tid!r} for {role}")
        elif e.kind == "reassign":
            assert e.value is not None
            new_tasks[e.target] = new_tasks[e.target].model_copy(update={"role": e.value})
            ch.applied.append(f"{e.where()}: task {e.target!r} reassigned to {e.value}")
        elif e.kind == "note":
            update(e.target, feedback=[*(rec(e.target).get("feedback") or []), f"{e.value} (from {who})"])
            ch.applied.append(f"{e.where()}: note on {e.target!r} kept for its agent")
        elif e.kind == "defer" and (held := held_by_gate(new_tasks[e.target], plan, gate_recs())):
            ch.notices[e.target] = {"text": f"defer reverted — {held}", "status": rec(e.target).get("status", "pending")}
            ch.reverted.append(f"{e.where()}: defer of {e.target!r} reverted: {held}")
        elif e.kind == "defer":
            why = e.value or "deferred by a person"
            update(e.target, status="skipped", skip_cause="profile", reason=f"deferred on the board by {who}: {why}")
            ch.deferred[f"board:{e.target}"] = {
                "text": f"{new_tasks[e.target].title} (task {e.target})", "gate": "board", "criterion": e.target,
                "detail": why, "resolved_by": [], "status": "open", "resolved_in": None}
            ch.applied.append(f"{e.where()}: task {e.target!r} deferred")
        elif e.kind == "untick":
            reopened, gates = reopen_set(_plan(plan, new_tasks, new_order), [e.target],
                                          {t: rec(t) for t in new_order})
            for tid in reopened:
                update(tid, status="pending", error=None, reason=None, finished_at=None)
                ch.notices.pop(tid, None)
            for gid in gates:
                ch.gates[gid] = {"status": "pending", "verdict": None, "score": None, "grade": None,
                                 "decided_at": None, "decided_by": None}
            ch.applied.append(f"{e.where()}: task {e.target!r} reopened"
                              + (f" with {', '.join(reopened[1:])}" if len(reopened) > 1 else ""))
        elif e.kind == "tick":
            task = new_tasks[e.target]
            status = rec(e.target).get("status", "pending")
            if task.run is not None:
                why = f"coord runs pipeline step `{task.run}` itself; a tick cannot mark it done"
            elif (waits := waits_for(task, plan, {t: rec(t) for t in task.needs}, gate_recs())):
                why = waits
            else:
                failures = accept(task, rec(e.target), workspace)
                why = ("accept checks failed: " + "; ".join(failures)) if failures else ""
            if why:
                ch.notices[e.target] = {"text": f"tick reverted — {why}", "status": status}
                ch.reverted.append(f"{e.where()}: tick on {e.target!r} reverted: {why}")
            else:
                update(e.target, status="done", finished_at=now_iso(), error=None, reason=None, held_by=None,
                       accepted_by=f"person ({who})" if not task.accept else "checks")
                ch.notices.pop(e.target, None)
                ch.applied.append(f"{e.where()}: task {e.target!r} done " + (
                    "(accept checks passed)" if task.accept else f"on {who}'s word (it has no accept checks)"))
        else:
            ch.approvals.append(e)
            ch.audit[-1]["outcome"] = "pending"  # the sync queues the decision and says how it went
        if len(ch.reverted) > reverted_before:
            ch.audit[-1]["outcome"] = "reverted: " + ch.reverted[-1].split(" reverted: ", 1)[-1]
    if new_tasks != plan.tasks or new_order != plan.order:
        ch.plan, ch.plan_changed = _plan(plan, new_tasks, new_order), True
    return ch


def _plan(plan: CompiledPlan, tasks: dict[str, CompiledTask], order: list[str]) -> CompiledPlan:
    return plan.model_copy(update={"tasks": tasks, "order": order})

