"""Pure scheduling: from plan + state, what changes and what may start.

No I/O here, so every rule is testable on plain dicts.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from coordinator.core.plan import CompiledPlan
from coordinator.core.state import (
    DECIDED_GATE,
    PASSING_GATE,
    TERMINAL_TASK,
    GateRecord,
    TaskRecord,
    TaskStatus,
)


@dataclass
class Schedule:
    """Decisions of one scheduling pass."""

    updates: dict[str, TaskRecord] = field(default_factory=dict)
    """Tasks that became skipped or blocked."""
    ready: list[str] = field(default_factory=list)
    """Pending tasks whose needs and gates are satisfied, in plan order."""
    due_gates: list[str] = field(default_factory=list)
    """Pending gates whose reviewed tasks are all finished."""
    gate_skips: dict[str, str] = field(default_factory=dict)
    """Gates that cannot review (a reviewed task did not finish) → why."""


class Frontier:
    """What a scheduling pass must look at, so that a pass costs what changed, not the plan's size.

    A pending task that waits for a need or a gate is set aside ("parked") under what it waits
    for and looked at again only when that changes; a ready task stays in the ready list (in
    plan order) until it starts or one of its needs changes. :meth:`touch` names what changed
    since the last pass (every change of a live run goes through the graph's nodes, which
    report it); the first pass, and any pass after :meth:`reset`, looks at every task.
    """

    def __init__(self, plan: CompiledPlan) -> None:
        self.plan = plan
        self.pos = {t: i for i, t in enumerate(plan.order)}
        self.active: set[str] = set(plan.order)
        self.parked: dict[str, set[str]] = {}
        self.ready_pos: list[int] = []
        """Positions (in plan order) of the tasks found ready and not yet seen to start."""

    def touch(self, ids: Iterable[str]) -> None:
        """Tasks or gates whose records changed: what waits for them is looked at again."""
        for x in ids:
            woken = self.parked.pop(x, None)
            if woken:
                self.active |= woken
            if x in self.pos:
                self.active.add(x)

    def reset(self) -> None:
        """Look at every task in the next pass."""
        self.active = set(self.plan.order)

    def candidates(self) -> list[str]:
        """The tasks to look at, in plan order."""
        order = self.plan.order
        return [order[i] for i in sorted(self.pos[t] for t in self.active)]

    def park(self, tid: str, on: Iterable[str]) -> None:
        """``tid`` waits for ``on`` (or is ready until one of them changes)."""
        for x in on:
            self.parked.setdefault(x, set()).add(tid)
        self.active.discard(tid)

    def set_ready(self, tid: str, ready: bool) -> None:
        """Keep the ready list in step with what the pass found."""
        p = self.pos[tid]
        i = bisect_left(self.ready_pos, p)
        present = i < len(self.ready_pos) and self.ready_pos[i] == p
        if ready and not present:
            insort(self.ready_pos, p)
        elif not ready and present:
            del self.ready_pos[i]

    def ready(self) -> list[str]:
        """The ready tasks in plan order."""
        order = self.plan.order
        return [order[i] for i in self.ready_pos]


def _status(tasks: Mapping[str, TaskRecord], tid: str) -> TaskStatus:
    return tasks.get(tid, {}).get("status", "pending")


def reopen_set(plan: CompiledPlan, roots: Iterable[str],
               tasks: Mapping[str, Mapping[str, object]]) -> tuple[list[str], list[str]]:
    """The tasks ``roots``, every task downstream of them that is no longer pending, and the gates that reviewed
    any of them: what must be done (and decided) again when the roots run again."""
    tasks_out: list[str] = list(roots)
    gates_out: list[str] = []
    todo = list(tasks_out)
    while todo:
        cur = todo.pop()
        nxt = list(plan.dependents(cur))
        for gid, after in plan.gate_after.items():
            if cur in after and gid not in gates_out:
                gates_out.append(gid)
                nxt += [t for t in plan.order if gid in plan.tasks[t].blocked_by or gid in plan.tasks[t].needs]
        for dep in nxt:
            if dep not in tasks_out and tasks.get(dep, {}).get("status", "pending") != "pending":
                tasks_out.append(dep)
                todo.append(dep)
    return tasks_out, gates_out


def satisfied_by(rec: TaskRecord) -> bool:
    """A need is satisfied by a done task or one the profile skipped."""
    return rec.get("status") == "done" or (rec.get("status") == "skipped" and rec.get("skip_cause") == "profile")


def plan_step(plan: CompiledPlan, tasks: Mapping[str, TaskRecord], gates: Mapping[str, GateRecord],
              frontier: Frontier | None = None) -> Schedule:
    """One pass in topological order; later tasks see earlier tasks' new statuses.

    With a ``frontier`` only the tasks it names are looked at (the others wait for something
    that has not changed); the result is the same as a full pass.
    """
    out = Schedule()
    view: Mapping[str, TaskRecord] = tasks if frontier is not None else dict(tasks)
    overlay: dict[str, TaskRecord] = {}

    for gid in plan.gates:
        if gates.get(gid, {}).get("status", "pending") != "pending":
            continue
        after = plan.gate_after[gid]
        if not all(_status(view, t) in TERMINAL_TASK for t in after):
            continue
        bad = [t for t in after if _status(view, t) != "done"]
        if bad:
            out.gate_skips[gid] = "cannot review: " + ", ".join(f"{t} is {_status(view, t)}" for t in bad)
        else:
            out.due_gates.append(gid)

    def status(tid: str) -> TaskStatus:
        rec = overlay.get(tid)
        return rec.get("status", "pending") if rec is not None else _status(view, tid)

    for tid in (plan.order if frontier is None else frontier.candidates()):
        if status(tid) != "pending":
            if frontier is not None:
                frontier.active.discard(tid)
                frontier.set_ready(tid, False)
            continue
        task = plan.tasks[tid]
        update: TaskRecord | None = None
        waits_for: list[str] = []
        if task.skip:
            update = {"status": "skipped", "skip_cause": "profile",
                      "reason": f"optional; skipped by profile {plan.profile!r}"}
        else:
            waiting = False
            for need in task.needs:
                if need in plan.gates:  # needing a gate waits for its decision, whatever it is
                    if gates.get(need, {}).get("status", "pending") not in DECIDED_GATE:
                        waiting = True
                        waits_for.append(need)
                    continue
                rec = overlay.get(need) or view.get(need, {})
                st = rec.get("status", "pending")
                if satisfied_by(rec):
                    continue
                if st == "failed":
                    update = {"status": "skipped", "skip_cause": "upstream",
                              "reason": f"needs {need}, which failed"}
                    break
                if st == "skipped":
                    update = {"status": "skipped", "skip_cause": "upstream",
                              "reason": f"needs {need}, which was skipped"}
                    break
                if st == "blocked":
                    update = {"status": "blocked", "reason": f"needs {need}, which is blocked"}
                    break
                waiting = True
                waits_for.append(need)
            if update is None:
                for gid in task.blocked_by:
                    gstatus = gates.get(gid, {}).get("status", "pending")
                    if gstatus in PASSING_GATE:
                        continue
                    if gstatus in DECIDED_GATE:
                        update = {"status": "blocked", "reason": f"gate {gid} {gstatus}"}
                        break
                    waiting = True
                    waits_for.append(gid)
            if update is None and not waiting:
                out.ready.append(tid)
        if frontier is not None:
            # ready: looked at again when a need or gate changes; waiting: when what it waits for does
            frontier.set_ready(tid, update is None and not waiting)
            frontier.park(tid, waits_for if waiting and update is None else [*task.needs, *task.blocked_by])
        if update is not None:
            out.updates[tid] = update
            overlay[tid] = {**(view.get(tid) or {}), **update}
            if frontier is not None:
                frontier.touch([tid])  # what waits for it is looked at in this same pass's next round
    if frontier is not None:
        out.ready = [t for t in frontier.ready() if status(t) == "pending"]
    return out


def run_outcome(plan: CompiledPlan, tasks: Mapping[str, TaskRecord], gates: Mapping[str, GateRecord], *,
                live: bool = False, recorded: str | None = None) -> tuple[str, list[str]]:
    """Phase and the problems that explain it: finished, failed or waiting once the run has ended.

    Unfinished tasks only mean "never became ready" in a run that ended: while its process
    still drives it (``live``) the phase is ``running``; when the run's record (``recorded``,
    of a run no process drives) says ``running`` its process died: ``interrupted``; when it
    says ``waiting`` (paused, or reopened on the boards) it waits for ``coord resume``.
    """
    problems = []
    for tid in plan.order:
        rec = tasks.get(tid, {})
        st = rec.get("status", "pending")
        if st == "failed":
            problems.append(f"task {tid} failed: {rec.get('error')}")
        elif st == "blocked":
            problems.append(f"task {tid} blocked: {rec.get('reason')}")
        elif st == "skipped" and rec.get("skip_cause") != "profile":
            problems.append(f"task {tid} skipped: {rec.get('reason')}")
    for gid in plan.gates:
        grec = gates.get(gid, {})
        if grec.get("status") in ("rejected", "changes_requested"):
            problems.append(f"gate {gid} {grec['status']} (grade {grec.get('grade')}, score {grec.get('score')})")
        elif grec.get("status") == "skipped":
            problems.append(f"gate {gid} skipped: {grec.get('reason')}")
    waiting = [g for g in plan.gates if gates.get(g, {}).get("status") == "waiting"] + \
        [t for t in plan.order if tasks.get(t, {}).get("status") == "waiting"]
    unfinished = [t for t in plan.order if tasks.get(t, {}).get("status", "pending") in ("pending", "running")]
    if live:
        return "running", problems
    if waiting:
        return "waiting", [f"waiting for a person: {', '.join(waiting)}", *problems]
    if unfinished and recorded == "running":
        return "interrupted", [f"the run stopped before {', '.join(unfinished)} finished; continue it with "
                               "`coord resume`", *problems]
    if unfinished and recorded == "waiting":
        return "waiting", [f"ready to continue: {', '.join(unfinished)}; continue it with `coord resume`",
                           *problems]
    if problems:
        return "failed", problems
    if unfinished:
        return "failed", [f"tasks never became ready: {', '.join(unfinished)}"]
    return "finished", []
