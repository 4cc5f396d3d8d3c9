"""Graph nodes. ``advance``: review due gates, render, schedule and dispatch.
``await_tasks``: wait for the first running task to finish."""

from __future__ import annotations

import time
from typing import Any

from langgraph.runtime import Runtime

from coordinator.context import RunContext
from coordinator.events import now_iso
from coordinator.schedule import plan_step, run_outcome
from coordinator.state import DeferredItem, GateRecord, RunState, TaskRecord
from reviews.criteria import metric_lookup
from reviews.gate import review_gate
from roles.drivers.cli import merge_reviewed
from task_boards.render import render_all, write_review_record


def _merged(state: RunState, tasks: dict[str, Any], gates: dict[str, Any],
            deferred: dict[str, Any]) -> RunState:
    def merge(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
        return {**old, **{k: {**old.get(k, {}), **v} for k, v in new.items()}}

    return {**state, "tasks": merge(state.get("tasks", {}), tasks),
            "gates": merge(state.get("gates", {}), gates),
            "deferred": merge(state.get("deferred", {}), deferred)}


def advance(state: RunState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    """Decide gates, resolve deferred items, schedule and dispatch, render."""
    ctx = runtime.context
    plan = ctx.plan
    task_updates: dict[str, TaskRecord] = {}
    gate_updates: dict[str, GateRecord] = {}
    deferred_updates: dict[str, DeferredItem] = {}
    force_render = False

    # Repeat until nothing changes: a skipped task can make a gate unreviewable,
    # whose decision can block further tasks, all within one step.
    while True:
        merged = _merged(state, task_updates, gate_updates, deferred_updates)
        tasks_state, gates_state = merged["tasks"], merged["gates"]
        sched = plan_step(plan, tasks_state, gates_state)
        for tid, upd in sched.updates.items():
            task_updates[tid] = {**task_updates.get(tid, {}), **upd}
            ctx.events.emit("task_skipped" if upd["status"] == "skipped" else "task_blocked",
                            task=tid, reason=upd.get("reason"))
        for gid, why in sched.gate_skips.items():
            gate_updates[gid] = GateRecord(status="skipped", reason=why, decided_at=now_iso())
            ctx.events.emit("gate_decided", gate=gid, status="skipped", reason=why)
        for gid in sched.due_gates:
            lookup = metric_lookup({t: r.get("metrics") or {} for t, r in tasks_state.items()}, ctx.expansions)
            rec = review_gate(plan.gates[gid], lookup, ctx.ws.root)
            gate_updates[gid] = rec
            ctx.events.emit("gate_decided", gate=gid, status=rec["status"], verdict=rec["verdict"],
                            score=rec["score"], grade=rec["grade"])
            deferred_updates.update(_open_deferred(ctx, gid, rec))
        # Branches of cli assignments merge only once every gate reviewing them approved.
        merges = merge_reviewed(ctx.ws.root, ctx.run_id, plan, tasks_state, gates_state)
        for tid, change in merges.items():
            task_updates[tid] = {**task_updates.get(tid, {}), **change}  # type: ignore[typeddict-item]
            outcome = change["metrics"].get("merge")
            if change.get("status") == "failed":
                ctx.events.emit("merge_failed", task=tid, merge=outcome, error=change.get("error"))
            elif outcome == "merged":
                ctx.events.emit("branch_merged", task=tid, commit=change["metrics"].get("merge_commit"))
        if not (sched.updates or sched.gate_skips or sched.due_gates or merges):
            break
        force_render = force_render or bool(sched.gate_skips or sched.due_gates or merges)

    for key, item in merged["deferred"].items():
        if item["status"] != "open":
            continue
        done = [t for base in item["resolved_by"] for t in ctx.expansions.get(base, [base])
                if tasks_state.get(t, {}).get("status") == "done"]
        if done:
            deferred_updates[key] = {**item, "status": "resolved", "resolved_in": done[0]}
            ctx.events.emit("deferred_resolved", item=item["text"], task=done[0])

    in_pool = ctx.pool.known()
    orphans = [t for t in plan.order if tasks_state.get(t, {}).get("status") == "running" and t not in in_pool]
    for tid in orphans:  # running when an earlier process stopped: start again under the same dispatch
        ctx.pool.submit(plan.tasks[tid], int(tasks_state[tid].get("dispatch", 1)))
    free = max(0, ctx.concurrency - len(ctx.pool.running()))
    starting = sched.ready[:free]
    for tid in starting:
        dispatch = int(tasks_state.get(tid, {}).get("dispatch", 0)) + 1
        task_updates[tid] = TaskRecord(status="running", dispatch=dispatch, started_at=now_iso())
        if plan.tasks[tid].run is None or _reads_status(plan.tasks[tid].run):
            force_render = True

    merged = _merged(state, task_updates, gate_updates, deferred_updates)
    phase = "running"
    if not starting and not ctx.pool.busy():
        phase, _ = run_outcome(plan, merged["tasks"], merged["gates"])
    merged["phase"] = phase  # type: ignore[typeddict-item]
    if force_render or phase != "running" or ctx.render_due():
        _render(ctx, merged, [g for g in gate_updates if gate_updates[g].get("verdict")])
    for tid in starting:
        ctx.pool.submit(plan.tasks[tid], task_updates[tid]["dispatch"])
    return {"tasks": task_updates, "gates": gate_updates, "deferred": deferred_updates, "phase": phase}


def _open_deferred(ctx: RunContext, gid: str, rec: GateRecord) -> dict[str, DeferredItem]:
    out: dict[str, DeferredItem] = {}
    checks = {c.defer: c for c in ctx.plan.gates[gid].criteria if c.defer}
    for text in rec.get("deferred") or []:
        check = checks[text]
        crit = next(c for c in rec.get("criteria", []) if c["name"] == check.name)
        out[f"{gid}:{check.name}"] = DeferredItem(
            text=text, gate=gid, criterion=check.name,
            detail=f"{crit['label']}: measured {crit['measured']}", resolved_by=list(check.resolved_by),
            status="open", resolved_in=None)
        ctx.events.emit("deferred_opened", gate=gid, item=text)
    return out


def _reads_status(step_name: str | None) -> bool:
    from pipeline._step import STEPS

    spec = STEPS.get(step_name or "")
    return bool(spec and spec.reads_run_status)


def _render(ctx: RunContext, state: RunState, decided_gates: list[str]) -> None:
    written = []
    for gid in decided_gates:
        written += write_review_record(ctx.ws, ctx.plan, state, gid)
    result = render_all(ctx.ws, ctx.plan, ctx.roles, state)
    ctx.conflicts = result.conflicts
    ctx.last_render = time.monotonic()
    written += result.written
    if written:
        ctx.events.emit("board_rendered", files=written, conflicts=result.conflicts)
    if ctx.on_render is not None:
        ctx.on_render(written)


def await_tasks(state: RunState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    """Block until at least one running task finished; record every finished one."""
    results = runtime.context.pool.wait_any()
    return {"tasks": results}


def route_after_advance(state: RunState) -> str:
    """Keep going while anything runs; otherwise the run is finished, failed or waiting."""
    return "await_tasks" if state.get("phase") == "running" else "__end__"
