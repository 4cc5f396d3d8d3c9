"""Run service: start, resume and inspect runs. The CLI is a thin layer over this."""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
import math
import secrets
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from coordinator.core.errors import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_WAITING,
    CoordError,
    UsageError,
    UsageErrors,
)
from coordinator.core.events import EventLog, now_iso, read_events
from coordinator.core.loading import collector_paused
from coordinator.core.plan import CompiledPlan
from coordinator.core.ports import DRIVERS, LISTENERS
from coordinator.core.roles import RoleDefinition
from coordinator.core.run_store import (
    has_journal,
    load_run_plan,
    replay_journal,
    save_run_plan,
    save_run_record,
)
from coordinator.core.state import STATE_SCHEMA_VERSION, RunState, merge_records
from coordinator.core.workspace import Workspace, WorkspaceLock
from coordinator.engine.accept import accept_failures
from coordinator.engine.budget import RunBudget, ScopeStatus, with_budget
from coordinator.engine.checkpoint_read import move_aside
from coordinator.engine.context import RunContext
from coordinator.engine.cost_report import render_cost_dashboard
from coordinator.engine.nodes import advance
from coordinator.engine.notify import notifying_event_log
from coordinator.engine.notify_config import load_notify
from coordinator.engine.plan_loader import load_plan
from coordinator.engine.pool import TaskPool
from coordinator.engine.run_view import UNFINISHED as UNFINISHED
from coordinator.engine.run_view import find_run as find_run
from coordinator.engine.run_view import list_runs as list_runs
from coordinator.engine.run_view import run_status as run_status
from coordinator.engine.schedule import run_outcome
from coordinator.engine.scratch import scratch_space
from coordinator.engine.stores import (
    checkpoints_where,
    open_checkpointer,
    open_ledger,
    probe_checkpoints,
    prune_run,
)
from coordinator.engine.workers.settings import workers_settings
from reviews import inbox
from roles.definitions import roles_for

if TYPE_CHECKING:
    from langgraph.types import Command

log = logging.getLogger(__name__)
# UNFINISHED, find_run, list_runs and run_status live in run_view (no LangGraph); imported here as well.

Listener = Callable[[dict[str, Any]], None]


@dataclass
class RunOptions:
    """What `coord run` was asked to do."""

    plan: str
    profile: str | None = None
    fresh: bool = False
    budget_usd: float | None = None
    concurrency: int | None = None
    """Most tasks in flight at once; None: :data:`CONCURRENCY`, or :data:`DISPATCH_WITH_WORKERS` when the
    workspace has workers (the workers' own ``--concurrency`` then bounds what runs)."""
    overrides: dict[str, Any] = field(default_factory=dict)
    render_interval: float = 1.0


@dataclass
class RunSummary:
    """How a run ended."""

    run_id: str
    plan: str
    phase: str
    problems: list[str]
    resumed: bool
    state: RunState

    @property
    def exit_code(self) -> int:
        """0 finished, 1 something failed, 3 waiting on a person."""
        return {"finished": EXIT_OK, "waiting": EXIT_WAITING}.get(self.phase, EXIT_FAILED)


CONCURRENCY = 4
"""Tasks in flight at once by default: this process runs them in its own threads."""
DISPATCH_WITH_WORKERS = 64
"""Tasks dispatched at once by default when workers run them (a queued task costs a row, not a thread)."""


def _default_concurrency(ws: Workspace) -> int:
    return DISPATCH_WITH_WORKERS if workers_settings(ws.root) is not None else CONCURRENCY


def parse_budget(raw: str | float | None, what: str = "--budget") -> float | None:
    """``--budget`` (or another amount, named by ``what``) as a positive, finite number of USD;
    a :class:`UsageError` otherwise."""
    if raw is None:
        return None
    try:
        usd = float(raw)
    except (TypeError, ValueError):
        usd = math.nan
    if not math.isfinite(usd) or usd <= 0:
        raise UsageError(f"{what} must be a positive number of USD, got {str(raw)!r}")
    return usd


def _new_run_id(plan: str) -> str:
    return f"{plan}-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def _save_run(ws: Workspace, record: dict[str, Any]) -> None:
    save_run_record(ws, record)


def reopen_run(ws: Workspace, run_id: str, tasks: list[str]) -> None:
    """Record that an ended run has work again (tasks reopened or added on its boards): it waits to be resumed."""
    record = find_run(ws, run_id)
    _save_run(ws, {**record, "phase": "waiting", "reopened_at": now_iso(),
                   "problems": [f"reopened on the boards: {', '.join(tasks)}; continue with `coord resume {run_id}`"]})


def _initial_state(run_id: str, plan: CompiledPlan) -> RunState:
    return RunState(schema_version=STATE_SCHEMA_VERSION, run_id=run_id, plan=plan.name,
                    tasks={t: {"status": "pending", "dispatch": 0} for t in plan.order},
                    gates={g: {"status": "pending"} for g in plan.gates}, deferred={}, phase="running")


def preflight(ws: Workspace, plan: CompiledPlan) -> None:
    """Before a run starts: ask each driver that plays an assignment's role what would make it fail
    (a coding-agent CLI missing from PATH, …); a :class:`UsageError` listing every problem otherwise."""
    roles = roles_for(ws, plan)
    assigned = sorted({t.role for t in plan.tasks.values() if t.run is None} & set(roles))
    by_driver: dict[str, list[RoleDefinition]] = {}
    for name in assigned:
        by_driver.setdefault(roles[name].driver, []).append(roles[name])
    problems = []
    for driver, played in sorted(by_driver.items()):
        check = getattr(DRIVERS.get(driver), "preflight", None)
        if check is not None:
            problems += check(played)
    if problems:
        raise UsageError("; ".join(problems) + " — nothing was started")


def check_run(ws: Workspace, options: RunOptions, problems: Sequence[UsageError] = ()) -> CompiledPlan:
    """Everything `coord run` checks before it writes anything — ``--budget``, the plan with its ``--set``
    values and profile, the role bindings, each driver's preflight — with every problem reported at once
    (``problems``: those the command line found parsing its own values). The plan, with the budget applied."""
    found = list(problems)
    budget_usd = None
    try:
        budget_usd = parse_budget(options.budget_usd)
    except UsageError as e:
        found.append(e)
    plan = None
    try:
        plan = load_plan(options.plan, workspace=ws.root, profile=options.profile, overrides=options.overrides)
    except UsageError as e:
        found.append(e)
    if plan is not None:
        try:
            preflight(ws, plan)  # the role bindings of coord.yaml first, then what each driver needs
        except UsageError as e:
            found.append(e)
    try:
        load_notify(ws)  # coord.yaml's notify: targets, before anything is written
    except UsageError as e:
        found.append(e)
    UsageErrors.raise_if_any(found)
    assert plan is not None
    if budget_usd is not None:
        plan = plan.model_copy(update={"budget": plan.budget.model_copy(update={"usd": budget_usd})})
    return plan


def _accept_fn(ws: Workspace, plan: CompiledPlan, expansions: dict[str, list[str]]) -> Any:
    return functools.partial(accept_failures, ws.root)  # the same measurement a session's report gets


@contextlib.contextmanager
def _long_lived_heap() -> Iterator[None]:
    """While a run goes, keep what existed before it (modules, caches) out of the collector's full passes.

    On a 1,000-task plan those passes over the imported libraries cost 0.1–0.2 s of a 0.8 s run;
    what the run itself creates is collected as usual, and everything again once it returns.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@_long_lived_heap()
def run_plan(ws: Workspace, options: RunOptions, listener: Listener | None = None,
             progress: Callable[[str, str, float | None], None] | None = None) -> RunSummary:
    """`coord run`: resume the unfinished run of this plan, or start a new one.

    Everything the user gave is validated before anything is written.
    """
    plan = check_run(ws, options)
    ws.ensure()
    with WorkspaceLock(ws) as lock:
        problem = probe_checkpoints(ws)
        if problem is not None:
            if not options.fresh:
                raise problem
            moved = move_aside(ws.db)
            log.warning("the checkpoint database was damaged; moved it to %s", moved)
            for record in list_runs(ws):  # their checkpoints went with it: they cannot be resumed
                if record.get("phase") in UNFINISHED:
                    _save_run(ws, {**record, "phase": "failed", "problems": [
                        f"its checkpoint database was damaged and moved to {moved.name}"]})
        unfinished = [r for r in list_runs(ws) if r["plan"] == plan.name
                      and r.get("phase") in UNFINISHED]
        if unfinished and not options.fresh:
            last = unfinished[-1]
            if last["plan_sha256"] != plan.sha256:
                raise UsageError(
                    f"run {last['run_id']} of plan {plan.name!r} is unfinished but was started with a "
                    "different plan, profile or parameters; resume it with `coord resume "
                    f"{last['run_id']}` or start over with `coord run {options.plan} --fresh`")
            return _drive(ws, last["run_id"], options, listener, progress, lock, resumed=True)
        run_id = _new_run_id(plan.name)
        ws.run_dir(run_id).mkdir(parents=True, exist_ok=True)
        save_run_plan(ws, run_id, plan)
        _save_run(ws, {"run_id": run_id, "plan": plan.name, "plan_ref": options.plan,
                       "plan_sha256": plan.sha256, "profile": plan.profile, "overrides": options.overrides,
                       "created_at": now_iso(), "phase": "running", "checkpointed": False})
        return _drive(ws, run_id, options, listener, progress, lock, resumed=False)


@_long_lived_heap()
def resume_run(ws: Workspace, run_id: str | None, options: RunOptions, listener: Listener | None = None,
               progress: Callable[[str, str, float | None], None] | None = None) -> RunSummary:
    """`coord resume`: continue a run from its last checkpoint (with a new budget when one is given).

    A run that ended failed (named by its id) has its failed tasks run again, with what they held up."""
    parse_budget(options.budget_usd)
    with WorkspaceLock(ws) as lock:
        record = find_run(ws, run_id, unfinished=True)
        run_id = record["run_id"]
        if record.get("phase") == "failed" and record.get("checkpointed", True):
            _retry_failed(ws, record)
        return _drive(ws, run_id, options, listener, progress, lock, resumed=True)


def _retry_failed(ws: Workspace, record: dict[str, Any]) -> None:
    """Make a failed run's failed tasks pending again, with the tasks their failure skipped or blocked and
    the gates it left unable to review; the scheduler decides them all again (a gate's rejection stands)."""
    # start-up: reads through LangGraph
    from coordinator.engine.run_state import read_run_state, write_run_state

    run_id = record["run_id"]
    state, nxt = read_run_state(ws, run_id)
    tasks: dict[str, Any] = dict(state.get("tasks") or {})
    again = [t for t, r in tasks.items() if r.get("status") in ("failed", "blocked")
             or (r.get("status") == "skipped" and r.get("skip_cause") == "upstream")]
    gates = [g for g, r in (state.get("gates") or {}).items() if r.get("status") == "skipped"]
    if not again and not gates:
        return
    update: dict[str, Any] = {
        "phase": "running",
        "tasks": {t: {**tasks[t], "status": "pending", "error": None, "reason": None, "finished_at": None,
                      "held_by": None} for t in again},
        "gates": {g: {"status": "pending", "reason": None, "decided_at": None} for g in gates}}
    write_run_state(ws, run_id, update, nxt)
    _save_run(ws, {**record, "phase": "running", "problems": [], "retried_at": now_iso(),
                   "retried": again})


def _started(ws: Workspace, run_id: str) -> bool:
    """Whether the run got past its first checkpoint.

    A run started by this version says so in its record (``checkpointed``): its first step runs
    before the graph is built, so events alone cannot tell. An older run's event log decides: an
    event a step wrote (run_started/run_resumed come before the first checkpoint)."""
    record = next((r for r in list_runs(ws) if r["run_id"] == run_id), {})
    if "checkpointed" in record:
        return bool(record["checkpointed"])
    return any(e.get("kind") not in ("run_started", "run_resumed") for e in read_events(ws.events, run_id))


def _first_step(ctx: RunContext, state: RunState) -> RunState:
    """A new run's first step, before LangGraph has loaded: the graph's own ``advance`` on the initial
    state, so the first tasks run (and the boards are rendered) while the graph is being built. What it
    returns is the graph's input; the graph's first step then finds those tasks running.

    A kill before the first checkpoint leaves a run with no checkpoint whose record says so: it
    starts again from the beginning, and a task that finished meanwhile is taken from the results log."""
    ctx.in_graph = False
    try:
        update = advance(state, SimpleNamespace(context=ctx))  # type: ignore[arg-type]
    finally:
        ctx.in_graph = True
    out: dict[str, Any] = dict(state)
    for key, value in update.items():
        out[key] = merge_records(out.get(key), value) if key in ("tasks", "gates", "deferred") else value
    return out  # type: ignore[return-value]


def _drive(ws: Workspace, run_id: str, options: RunOptions, listener: Listener | None,
           progress: Callable[[str, str, float | None], None] | None, lock: WorkspaceLock, *,
           resumed: bool) -> RunSummary:
    try:
        return _drive_run(ws, run_id, options, listener, progress, lock, resumed=resumed)
    except RunInterrupted:
        raise
    except KeyboardInterrupt:  # before the graph ran (while LangGraph loaded): the run is resumable all the same
        raise RunInterrupted(run_id) from None
    except Exception as e:
        _fail_unstarted(ws, run_id, e)
        raise


def _fail_unstarted(ws: Workspace, run_id: str, error: Exception) -> None:
    """A run that failed before its first checkpoint (a damaged ledger, a board it cannot write) is
    recorded as failed: there is nothing to resume, and it should not be listed as interrupted."""
    with contextlib.suppress(Exception):  # the disk may be what failed: the error itself is what matters
        record = next((r for r in list_runs(ws) if r["run_id"] == run_id), None)
        if record is not None and record.get("checkpointed") is False and record.get("phase") in UNFINISHED:
            _save_run(ws, {**record, "phase": "failed", "finished_at": now_iso(),
                           "problems": [f"stopped before its first checkpoint: {error}"]})


def _drive_run(ws: Workspace, run_id: str, options: RunOptions, listener: Listener | None,
               progress: Callable[[str, str, float | None], None] | None, lock: WorkspaceLock, *,
               resumed: bool) -> RunSummary:
    lock.claim(run_id)
    if has_journal(ws, run_id):  # a board sync killed mid-way: finish or drop it
        from coordinator.engine.run_state import read_run_state  # start-up: reads through LangGraph

        replay_journal(ws, run_id, read_run_state(ws, run_id)[0].get("board_sync"))
    plan = load_run_plan(ws, run_id)
    for path in ws.remove_stale_temp_files():
        log.info("removed %s, left by an interrupted write", path)
    roles = roles_for(ws, plan)
    events = notifying_event_log(ws, run_id, plan.name, listener)  # coord.yaml's notify: targets listen too
    ctx = RunContext(ws=ws, plan=plan, run_id=run_id, roles=roles, pool=None,  # type: ignore[arg-type]
                     events=events, concurrency=max(1, options.concurrency or _default_concurrency(ws)),
                     render_interval=options.render_interval)
    ledger = open_ledger(ws)  # costs hook: ledger + budget (coordinator/budget.py)
    if resumed and options.budget_usd is not None:  # --budget on resume sets the run's limit, like `budget raise --to`
        ledger.change_budget(run_id, "run", "set", parse_budget(options.budget_usd), "--budget on resume")

    def spend_changed() -> None:  # a call was recorded: the next step re-reads the budget view
        ctx.spend_changed = True

    ctx.budget = RunBudget(ledger, run_id, plan.budget, roles, on_alert=_alert_to(events), on_spend=spend_changed)
    ctx.pool = TaskPool(workspace=ws.root, run_id=run_id, events=events, roles=roles,
                        accept=_accept_fn(ws, plan, ctx.expansions),
                        progress=progress or (lambda task, msg, frac: None), spend_for=ctx.budget.for_task)
    config: Any = {"configurable": {"thread_id": run_id},
                   "recursion_limit": max(1000, 25 * (len(plan.tasks) + len(plan.gates)))}
    with scratch_space(ws):
        graph_input: Any = None
        if not resumed:  # a new run: its first tasks start now, the graph is built while they run
            events.emit("run_started", once=f"run_started:{run_id}", plan=plan.name, profile=plan.profile,
                        params=plan.params)
            graph_input = _first_step(ctx, _initial_state(run_id, plan))
        with collector_paused():  # start-up: LangGraph loads once the first tasks are running
            from coordinator.engine.checkpoint import DURABILITY, keep_checkpoints
            from coordinator.engine.graph import build_graph
        with open_checkpointer(ws) as saver:
            graph = build_graph(saver)
            if resumed:
                graph_input = _resume_input(ws, run_id, plan.name, options, events, graph, config)
            gc.freeze()  # the plan and the state read back live as long as the run (thawed by _long_lived_heap)
            checkpointed = False
            try:
                for _ in graph.stream(graph_input, config, context=ctx, durability=DURABILITY,
                                      stream_mode="updates"):
                    if not checkpointed:  # a step went through: the run has its first checkpoint on disk
                        checkpointed = True
                        _mark_checkpointed(ws, run_id)
            except KeyboardInterrupt:
                _show_interrupted(ctx, graph.get_state(config).values if checkpointed else graph_input)
                raise RunInterrupted(run_id) from None
            state: RunState = graph.get_state(config).values  # type: ignore[assignment]
            # Earlier checkpoints serve nothing once the graph has stopped: resume, status, reviews and
            # board edits read the latest one (and its pending writes, an interrupt's among them).
            prune_run(saver, run_id, keep_checkpoints())
    plan = ctx.plan  # a run-time foreach may have expanded it
    outcome = run_outcome(plan, state.get("tasks", {}), state.get("gates", {}))
    phase, problems = with_budget(*outcome, {**state, "budget": ctx.budget.status().to_state()})
    render_cost_dashboard(ws, ledger, run_id, plan.name, dict(state))
    record = next((r for r in list_runs(ws) if r["run_id"] == run_id), {"run_id": run_id, "plan": plan.name})
    _save_run(ws, {**record, "phase": phase, "finished_at": now_iso(), "problems": problems})
    events.emit("run_finished" if phase != "waiting" else "run_paused", phase=phase, problems=problems)
    return RunSummary(run_id, plan.name, phase, problems, resumed, state)


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a run; it can be resumed (``run_id``)."""

    def __init__(self, run_id: str) -> None:
        super().__init__(run_id)
        self.run_id = run_id


def _show_interrupted(ctx: RunContext, state: Any) -> None:
    """The boards of a run stopped by Ctrl-C say so (not "running"), from its last checkpoint."""
    if not state:
        return
    try:
        shown: Any = {**state, "phase": "interrupted"}  # shown only: no run state is ever saved with it
        for _, listener in LISTENERS:
            listener.on_state(ctx.ws, ctx.plan, ctx.roles, shown, [])
    except Exception:  # the interrupt goes on; the boards catch up at the next render
        log.warning("the boards could not be marked interrupted", exc_info=True)


def _resume_input(ws: Workspace, run_id: str, plan_name: str, options: RunOptions, events: EventLog, graph: Any,
                  config: Any) -> Any:
    """What the graph of a resumed run starts from: nothing (its checkpoint), the answer to its pending
    interrupt, or the initial state when a kill came before its first checkpoint."""
    snapshot = graph.get_state(config)
    if not snapshot.values:
        if _started(ws, run_id):
            raise CoordError(f"run {run_id} has no checkpoint in {checkpoints_where(ws)} (deleted or replaced); "
                             "it cannot be resumed where it was — start it again with `coord run PLAN --fresh`")
        plan = load_run_plan(ws, run_id)
        if any(e.get("kind") == "run_started" for e in read_events(ws.events, run_id)):
            # killed before its first checkpoint: it starts over, and the log says it was resumed
            events.emit("run_resumed", plan=plan_name, restarted=True)
        else:
            events.emit("run_started", once=f"run_started:{run_id}", plan=plan.name, profile=plan.profile,
                        params=plan.params)
        return _initial_state(run_id, plan)
    extra: dict[str, Any] = {"budget_usd": options.budget_usd} if options.budget_usd is not None else {}
    events.emit("run_resumed", plan=plan_name, **extra)
    if snapshot.interrupts:
        return _resume_with(ws, run_id, snapshot.interrupts)
    return None if snapshot.next else {"phase": "running"}


def _mark_checkpointed(ws: Workspace, run_id: str) -> None:
    record = next((r for r in list_runs(ws) if r["run_id"] == run_id), None)
    if record is not None and not record.get("checkpointed"):
        _save_run(ws, {**record, "checkpointed": True})


def _alert_to(events: EventLog) -> Callable[[float, ScopeStatus], None]:
    """Budget alerts as events, each written once, the moment settled spend crosses its threshold."""
    def alert(threshold: float, run: ScopeStatus) -> None:
        events.emit("budget_alert", once=f"budget_alert:{threshold}", threshold=threshold,
                    spent_usd=round(run.spent_usd, 8), limit_usd=run.limit_usd)
    return alert


def _resume_with(ws: Workspace, run_id: str, interrupts: Any) -> Command[Any] | None:
    """The queued decision that answers the pending interrupt, as a ``Command(resume=...)``.

    Without one the graph is resumed plainly: the waiting node pauses again.
    """
    waiting = {g["gate"] for i in interrupts for g in (i.value or {}).get("gates", [])}
    for decision in inbox.pending(ws, run_id):
        if decision["gate"] in waiting:
            from langgraph.types import Command  # start-up: loaded with the graph already

            return Command(resume=decision)
    return None


