"""Graph nodes.

``advance``: apply queued decisions and budget raises, settle gates and the
schedule, resolve deferred items, restart orphans, start ready tasks, tell the
state listeners (the boards) — one named function per job. ``await_tasks``: wait for the first running task to
finish (or an override window to close, or a decision to arrive).
``human_gate``: pause the run with ``interrupt()`` until a person decides.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from coordinator.core import refs
from coordinator.core.events import now_iso
from coordinator.core.io import wrote
from coordinator.core.ports import DRIVERS, LISTENERS, ListenerResult
from coordinator.core.run_store import save_run_plan
from coordinator.core.state import BudgetView, DecisionRecord, GateRecord, RunState, TaskRecord
from coordinator.core.step import resolve_step
from coordinator.engine import gates as _gates
from coordinator.engine.budget import HOLD, hold_paid, release_held
from coordinator.engine.context import RunContext
from coordinator.engine.plan_loader import fan_out
from coordinator.engine.schedule import Frontier, plan_step, run_outcome
from reviews import inbox
from reviews.gate import decision_applied, needs_person, window_open
from reviews.records import write_review_record

if TYPE_CHECKING:
    from langgraph.runtime import Runtime


def _merged(state: RunState, ch: _gates.Changes) -> RunState:
    def merge(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
        if not new:  # most steps change a few records: copying 10,000 others for nothing cost 40 µs a call
            return old
        return {**old, **{k: {**old.get(k, {}), **v} for k, v in new.items()}}

    return {**state, "tasks": merge(state.get("tasks", {}), ch.tasks),
            "gates": merge(state.get("gates", {}), ch.gates),
            "deferred": merge(state.get("deferred", {}), ch.deferred)}


BUDGET_REREAD_S = 1.0
"""The budget view is read from the ledger whenever the ledger's files changed, and at least this often."""


def _take_inbox(ctx: RunContext, state: RunState, ch: _gates.Changes) -> None:
    """Apply decisions queued while this run was live; drop those a checkpoint already holds."""
    for decision in inbox.pending(ctx.ws, ctx.run_id):
        gid = decision["gate"]
        rec: GateRecord = state.get("gates", {}).get(gid, {})
        if gid in ctx.plan.gates and not decision_applied(rec, decision["id"]) \
                and _gates.decide(ctx, gid, rec, decision, ch, {**state.get("tasks", {}), **ch.tasks}):
            continue  # applied now; the file goes once a checkpoint holds the decision
        inbox.remove(ctx.ws, ctx.run_id, gid, decision["id"])


def advance(state: RunState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    """One engine step; each part is one job, in this order."""
    ctx = runtime.context
    if ctx.in_graph:
        wrote("checkpoint", "step")  # crash tests: the graph checkpointed the step before this one
    ch = _gates.Changes()
    _take_inbox(ctx, state, ch)
    _release_budget_holds(ctx, state, ch)
    ready, tasks_state, settled_render = _settle(ctx, state, ch)
    _resolve_deferred(ctx, _merged(state, ch), ch)
    _restart_orphans(ctx, tasks_state)
    starting, start_render = _mark_started(ctx, ready, tasks_state, ch)
    ctx.touched.update(ch.tasks, ch.gates)  # the next pass looks at what this step changed
    return _publish(ctx, state, ch, starting, tasks_state, settled_render or start_render)


def _release_budget_holds(ctx: RunContext, state: RunState, ch: _gates.Changes) -> None:
    """A budget raise since the hold lets held paid work start again."""
    if ctx.budget is None:
        return
    tasks = state.get("tasks", {})
    if ctx.held is None:  # the first step of this process: look at every task once
        ctx.held = {t for t, r in tasks.items() if _is_held(r)}
    else:  # later, only the tasks that changed since the last step can have been held or released
        for tid in ctx.touched:
            (ctx.held.add if _is_held(tasks.get(tid) or {}) else ctx.held.discard)(tid)
    if ctx.held:
        for tid, rec in release_held(ctx.budget, ctx.plan, tasks).items():
            ch.task(tid, rec)
    else:
        ctx.budget.take_release()  # the release moments pass whether or not something is held then


def _is_held(rec: TaskRecord) -> bool:
    return rec.get("status") == "waiting" and rec.get("held_by") == HOLD


def _settle(ctx: RunContext, state: RunState, ch: _gates.Changes) -> tuple[list[str], dict[str, TaskRecord], bool]:
    """Close override windows, skip/block what cannot run, review due gates and run the drivers'
    ``after_gates`` hooks, until nothing changes; return the ready tasks, the task records and
    whether the boards must be rendered.

    A skipped task can make a gate unreviewable, whose decision can block further tasks (or send
    tasks back), all within one step; hence the loop.
    """
    force_render = False
    while True:
        merged = _merged(state, ch)
        tasks_state, gates_state = merged["tasks"], merged["gates"]
        plan = ctx.plan
        closed = [g for g in plan.gates if gates_state.get(g, {}).get("status") == "waiting"
                  and gates_state[g].get("override_until") and not window_open(gates_state[g])]
        for gid in closed:
            _gates.close_window(ctx, gid, gates_state[gid], ch, tasks_state)
        if closed:
            continue
        if ctx.frontier is None or ctx.frontier.plan is not plan:
            ctx.frontier = Frontier(plan)  # the first pass of this process, or a fanned-out plan: all
        ctx.frontier.touch(ctx.touched)
        ctx.frontier.touch([*ch.tasks, *ch.gates])
        ctx.touched.clear()
        sched = plan_step(plan, tasks_state, gates_state, ctx.frontier)
        ready_templates = [t for t in sched.ready if plan.tasks[t].fanout is not None]
        if ready_templates:  # a run-time foreach fans out when it could start, not before
            _fan_out(ctx, ready_templates, tasks_state, ch)
            force_render = True
            continue
        for tid, upd in sched.updates.items():
            ch.task(tid, upd)
            ctx.events.emit("task_skipped" if upd["status"] == "skipped" else "task_blocked",
                            task=tid, reason=upd.get("reason"))
        for gid, why in sched.gate_skips.items():
            ch.gate(gid, GateRecord(status="skipped", reason=why, decided_at=now_iso()))
            ctx.events.emit("gate_decided", once=f"gate_decided:{gid}:skipped", gate=gid, status="skipped",
                            reason=why)
        for gid in sched.due_gates:
            _gates.review(ctx, gid, tasks_state, gates_state.get(gid, {}), ch)
        # Drivers whose work waits for its gates (a cli branch merges only once they let it through).
        merges = _after_gates(ctx, tasks_state, gates_state)
        for tid, change in merges.items():
            ch.task(tid, cast(TaskRecord, change))
            outcome = change["metrics"].get("merge")
            if change.get("status") == "failed":
                ctx.events.emit("merge_failed", task=tid, merge=outcome, error=change.get("error"))
            elif outcome == "merged":
                ch.task(tid, TaskRecord(notes=_merged_notes(tasks_state.get(tid, {}), change["metrics"])))
                ctx.events.emit("branch_merged", task=tid, commit=change["metrics"].get("merge_commit"))
        if not (sched.updates or sched.gate_skips or sched.due_gates or merges):
            return sched.ready, tasks_state, force_render or bool(ch.gates)
        force_render = force_render or bool(sched.gate_skips or sched.due_gates or merges)


def _merged_notes(rec: TaskRecord, metrics: dict[str, Any]) -> list[str]:
    """A merged task's notes: the line that said its branch waits for its gates gives way to the merge."""
    branch = metrics.get("branch")
    kept = [n for n in rec.get("notes") or [] if not n.startswith(f"branch {branch} waits for gate")]
    commit = str(metrics.get("merge_commit") or "")[:12]
    return [*kept, f"branch {branch} merged into {metrics.get('base_branch')}" + (f" ({commit})" if commit else "")
            + " once its gates approved"]


def _fan_out(ctx: RunContext, ready: list[str], tasks_state: dict[str, TaskRecord], ch: _gates.Changes) -> None:
    """Replace each ready run-time ``foreach`` task by one task per item of its upstream metric.

    The expanded plan is stored before the state that names its tasks, so a run killed in between
    resumes with the expansion (recomputed from the same checkpointed metrics, it is the same).
    """
    for tid in ready:
        template = ctx.plan.tasks[tid]
        base, _, metric = str(template.fanout).partition(".")
        ids = ctx.expansions.get(base, [base])
        records = [tasks_state.get(t, {}) for t in ids]
        reported = [(r.get("metrics") or {}).get(metric) for r in records]
        try:
            if any(v is None for v in reported):
                raise ValueError(f"foreach ${{{template.fanout}}}: task {base!r} reported no metric {metric!r}")
            items = reported[0] if ids == [base] else [x for v in reported for x in (v if isinstance(v, list) else [v])]
            plan = fan_out(ctx.plan, tid, items)
        except ValueError as e:
            ch.task(tid, TaskRecord(status="failed", error=str(e), finished_at=now_iso()))
            ctx.events.emit("task_failed", task=tid, error=str(e))
            continue
        save_run_plan(ctx.ws, ctx.run_id, plan)
        ctx.plan = plan
        copies = [t for t in plan.order if plan.tasks[t].base_id == tid]
        ctx.expansions[tid] = copies
        for cid in copies:
            ch.task(cid, TaskRecord(status="pending", dispatch=0))
        ctx.events.emit("task_fanned_out", once=f"task_fanned_out:{tid}", task=tid, tasks=copies,
                        source=template.fanout)


def _resolve_deferred(ctx: RunContext, merged: RunState, ch: _gates.Changes) -> None:
    """A deferred item is resolved once a task named to resolve it is done *and* the criterion that opened
    it, measured again, passes; a failed re-measurement leaves it open with what was measured."""
    for key, item in merged["deferred"].items():
        if item["status"] != "open":
            continue
        check = _gates.remeasure(ctx, item, merged["tasks"], merged["gates"])
        if check is None:
            continue
        ch.deferred[key] = {**item, "remeasured": check}
        if check["passed"]:
            ch.deferred[key] = {**item, "remeasured": check, "status": "resolved", "resolved_in": check["after"]}
            ctx.events.emit("deferred_resolved", once=f"deferred_resolved:{key}", item=item["text"],
                            task=check["after"], measured=check["detail"])


def _restart_orphans(ctx: RunContext, tasks_state: dict[str, TaskRecord]) -> None:
    """Tasks running when an earlier process stopped start again under the same dispatch."""
    if ctx.orphans_checked:  # later, every running task was started by this process
        return
    ctx.orphans_checked = True
    in_pool = ctx.pool.known()
    for tid in ctx.plan.order:
        rec = tasks_state.get(tid, {})
        if rec.get("status") == "running" and tid not in in_pool:
            _submit(ctx, tid, int(rec.get("dispatch", 1)), rec, tasks_state)


def _mark_started(ctx: RunContext, ready: list[str], tasks_state: dict[str, TaskRecord],
                  ch: _gates.Changes) -> tuple[list[str], bool]:
    """Ready tasks that fit the concurrency bound and the budget → running; return them and whether
    the boards must be rendered before they start (an agent reads its EXECUTE_NOW, a step the status)."""
    plan = ctx.plan
    force_render = False
    free = max(0, ctx.concurrency - len(ctx.pool.running()))
    starting = ready[:free]
    if ctx.budget is not None:  # at 100 % paid work waits instead of starting
        held = hold_paid(ctx.budget, plan, ctx.roles, starting, ctx.ws.root)
        for tid, hold in held.items():
            ch.task(tid, hold)
            ctx.events.emit("task_held", task=tid, reason=hold.get("reason"), held_by=hold.get("held_by"))
        starting = [t for t in starting if t not in held]
        force_render = bool(held)
    for tid in starting:
        dispatch = int(tasks_state.get(tid, {}).get("dispatch", 0)) + 1
        ch.task(tid, TaskRecord(status="running", dispatch=dispatch, started_at=now_iso()))
        if plan.tasks[tid].run is None or _reads_status(ctx, plan.tasks[tid].run):
            force_render = True
    return starting, force_render


def _publish(ctx: RunContext, state: RunState, ch: _gates.Changes, starting: list[str],
             tasks_state: dict[str, TaskRecord], force_render: bool) -> dict[str, Any]:
    """Decide the phase, tell the listeners, hand the started tasks to the pool; return the update."""
    merged = _merged(state, ch)
    budget_view = _budget_view(ctx, state)
    if budget_view is not None:
        merged["budget"] = budget_view
    phase = "running"
    if not starting and not ctx.pool.busy() and not any(window_open(g) for g in merged["gates"].values()):
        phase, _ = run_outcome(ctx.plan, merged["tasks"], merged["gates"])
    merged["phase"] = phase  # type: ignore[typeddict-item]
    if force_render or phase != "running" or ctx.render_due():
        _render(ctx, merged, [g for g in ch.gates if merged["gates"][g].get("verdict")])
    for tid in starting:  # after the render: an agent's prompt is the EXECUTE_NOW just written
        _submit(ctx, tid, ch.tasks[tid]["dispatch"], {**tasks_state.get(tid, {}), **merged["tasks"][tid]},
                merged["tasks"])
    update: dict[str, Any] = {**ch.as_update(), "phase": phase}
    if budget_view is not None:
        update["budget"] = budget_view
    return update


def _submit(ctx: RunContext, tid: str, dispatch: int, rec: TaskRecord, tasks: dict[str, TaskRecord]) -> None:
    """Hand a task to the pool with what it may read of its upstream tasks and its earlier attempts."""
    task = ctx.plan.tasks[tid]
    wanted = {r.split(".", 1)[0] for r in refs.references([task.params, task.instructions, task.command])
              if refs.UPSTREAM.fullmatch(r)}
    upstream: dict[str, Any] = {}
    for base in wanted:
        ids = ctx.expansions.get(base, [base])
        metrics = [dict(tasks.get(t, {}).get("metrics") or {}) for t in ids
                   if tasks.get(t, {}).get("status") == "done"]
        if len(metrics) == len(ids):  # only a fully finished upstream task answers
            upstream[base] = metrics[0] if ids == [base] else metrics
    inputs = tuple(str(a["path"]) for need in task.needs for a in tasks.get(need, {}).get("artifacts") or [])
    ctx.pool.submit(task, dispatch, feedback=list(rec.get("feedback") or []),
                    earlier_attempts=int(rec.get("attempts") or 0), review=rec.get("review"),
                    upstream=upstream, inputs=inputs, digests=_digests(task.needs, tasks),
                    earlier_cost=float(rec.get("cost_usd") or 0.0))


def _digests(needs: list[str], tasks: dict[str, TaskRecord]) -> tuple[tuple[str, str, str], ...]:
    """(path, sha256, writer) of the artifacts of the tasks ``needs`` names, as the last of them to finish
    recorded each (a need may rewrite a file another need wrote). Costs the needs, not the run's size."""
    last: dict[str, tuple[str, str, str]] = {}
    for _, tid, rec in sorted((tasks.get(t, {}).get("finished_at") or "", t, tasks.get(t, {})) for t in needs):
        for a in rec.get("artifacts") or []:
            if a.get("path") and a.get("sha256"):
                last[str(a["path"])] = (str(a["path"]), str(a["sha256"]), tid)
    return tuple(last.values())


def _budget_view(ctx: RunContext, state: RunState) -> BudgetView | None:
    """The run's budget status for state and boards; emits an event per newly crossed alert threshold."""
    if ctx.budget is None:
        return None
    # The view changes only when calls are recorded (a task finished) or a person changes the budget
    # from another process; reading the ledger after every no-op task would cost more than the task.
    now = time.monotonic()
    stamp = _ledger_stamp(ctx)
    if ctx.spend_changed or stamp != ctx.budget_stamp or ctx.budget_view is None \
            or now - ctx.budget_view_at >= BUDGET_REREAD_S:
        ctx.spend_changed = False
        ctx.budget_view, ctx.budget_view_at, ctx.budget_stamp = ctx.budget.status().to_state(), now, stamp
    view: BudgetView = ctx.budget_view
    earlier = state.get("budget")
    seen = set(earlier["alerts"]) if earlier else set()
    for threshold in view["alerts"]:
        if threshold not in seen:
            ctx.events.emit("budget_alert", once=f"budget_alert:{threshold}", threshold=threshold, spent_usd=view["run"]["spent_usd"],
                            limit_usd=view["run"]["limit_usd"])
    return view


def _after_gates(ctx: RunContext, tasks: dict[str, Any], gates: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Task updates from the ``after_gates`` hooks of the drivers this run's roles use."""
    out: dict[str, dict[str, Any]] = {}
    for name in sorted({r.driver for r in ctx.roles.values()}):
        hook = getattr(DRIVERS.get(name), "after_gates", None)
        if hook is not None:
            out.update(hook(ctx.ws.root, ctx.run_id, ctx.plan, tasks, gates))
    return out


def _reads_status(ctx: RunContext, step_ref: str | None) -> bool:
    return step_ref is not None and resolve_step(step_ref, ctx.ws.root).reads_run_status


def _render(ctx: RunContext, state: RunState, decided_gates: list[str]) -> None:
    started = time.monotonic()
    written = []
    for gid in decided_gates:
        written += write_review_record(ctx.ws, ctx.plan, state, gid)
    result = ListenerResult()
    for _, listener in LISTENERS:
        told = listener.on_state(ctx.ws, ctx.plan, ctx.roles, state, decided_gates)
        result.written += told.written
        result.conflicts += told.conflicts
    ctx.conflicts = result.conflicts
    ctx.last_render = time.monotonic()
    ctx.render_seconds = ctx.last_render - started
    written += result.written
    if written:
        ctx.events.emit("board_rendered", files=written, conflicts=result.conflicts)
    if ctx.on_render is not None:
        ctx.on_render(written)


def _window_deadline(state: RunState) -> float | None:
    """Monotonic time at which the first open override window closes."""
    closes = [datetime.fromisoformat(str(g["override_until"])) for g in state.get("gates", {}).values()
              if window_open(g)]
    if not closes:
        return None
    return time.monotonic() + max(0.0, (min(closes) - datetime.now(UTC)).total_seconds())


def await_tasks(state: RunState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    """Block until a running task finished, an override window closed or a decision arrived."""
    ctx = runtime.context
    deadline = _window_deadline(state)
    seen = {d["id"] for d in inbox.pending(ctx.ws, ctx.run_id)}

    def wake() -> bool:
        return inbox.has_pending(ctx.ws, ctx.run_id) and \
            any(d["id"] not in seen for d in inbox.pending(ctx.ws, ctx.run_id))

    if ctx.pool.busy():
        finished = ctx.pool.wait_any(deadline=deadline, wake=wake)
        ctx.touched.update(finished)
        return {"tasks": finished}
    while deadline is not None and time.monotonic() < deadline and not wake():
        time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
    return {"tasks": {}}


def _ledger_stamp(ctx: RunContext) -> tuple[int, ...]:
    """Changes whenever anyone writes the cost ledger (a call recorded by a worker, a budget raised
    from another process): the modification times and sizes of its database and WAL."""
    path = ctx.ws.state_dir / "ledger.sqlite"
    out: list[int] = []
    for part in (path, path.with_name(path.name + "-wal")):
        try:
            st = part.stat()
            out += [st.st_mtime_ns, st.st_size]
        except OSError:
            out += [0, 0]
    return tuple(out)


def human_gate(state: RunState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    """Pause until a person decides a waiting gate; apply the decision when resumed.

    Nothing before ``interrupt()`` has a side effect: on resume LangGraph runs
    this node again from the top, and ``interrupt()`` then returns the decision.
    """
    ctx = runtime.context
    gates = state.get("gates", {})
    waiting = [g for g in ctx.plan.gates if needs_person(gates.get(g, {}))]
    if not waiting:
        return {}
    # A decision already queued answers the wait: the graph may have been resumed without it
    # (a board sync wrote the checkpoint after the pause, so no interrupt was pending to answer).
    queued = next((d for d in inbox.pending(ctx.ws, ctx.run_id)
                   if d["gate"] in waiting and not decision_applied(gates[d["gate"]], d["id"])), None)
    # start-up: a new run's first step runs before LangGraph has loaded
    from langgraph.types import interrupt

    decision: DecisionRecord = queued if queued is not None else interrupt({
        "run": ctx.run_id, "action": "decide a gate",
        "gates": [{"gate": g, "verdict": gates[g].get("verdict"), "grade": gates[g].get("grade"),
                   "score": gates[g].get("score")} for g in waiting]})
    gid = decision.get("gate") if isinstance(decision, dict) else None
    if gid not in waiting:
        ctx.events.emit("decision_ignored", gate=gid, reason="not a gate waiting for a person")
        return {}
    ch = _gates.Changes()
    _gates.decide(ctx, gid, gates[gid], decision, ch, state.get("tasks", {}))
    ctx.touched.update(ch.tasks, ch.gates)
    merged = _merged(state, ch)
    write_review_record(ctx.ws, ctx.plan, merged, gid)
    ctx.last_render = 0.0  # the next advance re-renders the boards with the decision
    return ch.as_update()


def route_after_advance(state: RunState) -> str:
    """Keep going while anything runs; pause for a person; otherwise the run is over."""
    if state.get("phase") == "running":
        return "await_tasks"
    if state.get("phase") == "waiting" and any(needs_person(g) for g in state.get("gates", {}).values()):
        return "human_gate"
    return "__end__"
