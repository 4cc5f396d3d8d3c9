"""Run service: start, resume and inspect runs. The CLI is a thin layer over this."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from langgraph.types import Command

from coordinator.budget import RunBudget
from coordinator.checkpoint import DURABILITY, open_saver
from coordinator.context import RunContext
from coordinator.cost_report import render_cost_dashboard
from coordinator.errors import UsageError
from coordinator.events import EventLog, now_iso
from coordinator.graph import build_graph
from coordinator.ledger import Ledger
from coordinator.plan import CompiledPlan
from coordinator.plan_loader import load_plan
from coordinator.pool import TaskPool
from coordinator.schedule import run_outcome
from coordinator.state import STATE_SCHEMA_VERSION, RunState
from coordinator.workspace import Workspace, WorkspaceLock
from pipeline._io import atomic_write_json
from reviews import inbox
from reviews.criteria import evaluate_all, metric_lookup, task_text_reader
from roles.definitions import RoleDefinition, load_workspace_roles, resolve_roles

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_WAITING = 0, 1, 2, 3
Listener = Callable[[dict[str, Any]], None]


@dataclass
class RunOptions:
    """What `coord run` was asked to do."""

    plan: str
    profile: str | None = None
    fresh: bool = False
    budget_usd: float | None = None
    concurrency: int = 4
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


def _new_run_id(plan: str) -> str:
    return f"{plan}-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def list_runs(ws: Workspace) -> list[dict[str, Any]]:
    """Run records of the workspace, oldest first."""
    runs_dir = ws.state_dir / "runs"
    if not runs_dir.exists():
        return []
    out = []
    for path in runs_dir.glob("*/run.json"):
        try:
            out.append(orjson.loads(path.read_bytes()))
        except orjson.JSONDecodeError:
            log.warning("ignoring unreadable run record %s", path)
    return sorted(out, key=lambda r: r.get("created_at", ""))


def _save_run(ws: Workspace, record: dict[str, Any]) -> None:
    atomic_write_json(ws.run_dir(record["run_id"]) / "run.json", record)


def _load_compiled(ws: Workspace, run_id: str) -> CompiledPlan:
    path = ws.run_dir(run_id) / "plan.json"
    if not path.exists():
        raise UsageError(f"run {run_id!r} has no stored plan ({path} is missing)")
    return CompiledPlan.model_validate(orjson.loads(path.read_bytes()))


def _initial_state(run_id: str, plan: CompiledPlan) -> RunState:
    return RunState(schema_version=STATE_SCHEMA_VERSION, run_id=run_id, plan=plan.name,
                    tasks={t: {"status": "pending", "dispatch": 0} for t in plan.order},
                    gates={g: {"status": "pending"} for g in plan.gates}, deferred={}, phase="running")


def _roles(ws: Workspace, plan: CompiledPlan) -> dict[str, RoleDefinition]:
    return resolve_roles(plan.roles, load_workspace_roles(ws.config), str(ws.config))


def _accept_fn(ws: Workspace, plan: CompiledPlan, expansions: dict[str, list[str]]) -> Any:
    def accept(task: Any, outcome: Any) -> list[str]:
        if not task.accept:
            return []
        lookup = metric_lookup({task.id: outcome.metrics, task.base_id: outcome.metrics}, {})
        failures = []
        record = {"notes": outcome.notes, "artifacts": outcome.artifacts}
        for res in evaluate_all(task.accept, lookup, ws.root, deferrable=False,
                                task_text=task_text_reader(ws.root, {task.id: record, task.base_id: record}, {})):
            if not res["passed"]:
                failures.append(f"{res['label']} (measured {res['measured']!r}"
                                + (f"; {res['detail']}" if res["detail"] else "") + ")")
        return failures

    return accept


def run_plan(ws: Workspace, options: RunOptions, listener: Listener | None = None,
             progress: Callable[[str, str, float | None], None] | None = None) -> RunSummary:
    """`coord run`: resume the unfinished run of this plan, or start a new one."""
    ws.ensure()
    plan = load_plan(options.plan, workspace=ws.root, profile=options.profile, overrides=options.overrides)
    if options.budget_usd is not None:
        plan = plan.model_copy(update={"budget": plan.budget.model_copy(update={"usd": options.budget_usd})})
    with WorkspaceLock(ws) as lock:
        unfinished = [r for r in list_runs(ws) if r["plan"] == plan.name
                      and r.get("phase") in ("running", "waiting")]
        if unfinished and not options.fresh:
            last = unfinished[-1]
            if last["plan_sha256"] != plan.sha256:
                raise UsageError(
                    f"run {last['run_id']} of plan {plan.name!r} is unfinished but was started with a "
                    "different plan, profile or parameters; resume it with `coord resume "
                    f"{last['run_id']}` or start over with `coord run {options.plan} --fresh`")
            lock.describe(last["run_id"])
            return _drive(ws, last["run_id"], options, listener, progress, resumed=True)
        run_id = _new_run_id(plan.name)
        ws.run_dir(run_id).mkdir(parents=True, exist_ok=True)
        atomic_write_json(ws.run_dir(run_id) / "plan.json", plan.model_dump(mode="json"))
        _save_run(ws, {"run_id": run_id, "plan": plan.name, "plan_ref": options.plan,
                       "plan_sha256": plan.sha256, "profile": plan.profile, "overrides": options.overrides,
                       "created_at": now_iso(), "phase": "running"})
        lock.describe(run_id)
        return _drive(ws, run_id, options, listener, progress, resumed=False)


def resume_run(ws: Workspace, run_id: str | None, options: RunOptions, listener: Listener | None = None,
               progress: Callable[[str, str, float | None], None] | None = None) -> RunSummary:
    """`coord resume`: continue a run from its last checkpoint."""
    with WorkspaceLock(ws) as lock:
        runs = list_runs(ws)
        if run_id is None:
            unfinished = [r for r in runs if r.get("phase") in ("running", "waiting")]
            if not unfinished:
                raise UsageError("no unfinished run to resume (see `coord runs`)")
            run_id = unfinished[-1]["run_id"]
        elif not any(r["run_id"] == run_id for r in runs):
            raise UsageError(f"unknown run {run_id!r} (see `coord runs`)")
        lock.describe(run_id)
        return _drive(ws, run_id, options, listener, progress, resumed=True)


def _drive(ws: Workspace, run_id: str, options: RunOptions, listener: Listener | None,
           progress: Callable[[str, str, float | None], None] | None, *, resumed: bool) -> RunSummary:
    plan = _load_compiled(ws, run_id)
    for path in ws.remove_stale_temp_files():
        log.info("removed %s, left by an interrupted write", path)
    roles = _roles(ws, plan)
    events = EventLog(ws.events, run_id, listener)
    ctx = RunContext(ws=ws, plan=plan, run_id=run_id, roles=roles, pool=None,  # type: ignore[arg-type]
                     events=events, concurrency=max(1, options.concurrency),
                     render_interval=options.render_interval)
    ledger = Ledger.of(ws.state_dir)  # costs hook: ledger + budget (coordinator/budget.py)
    ctx.budget = RunBudget(ledger, run_id, plan.budget, roles)
    ctx.pool = TaskPool(workspace=ws.root, run_id=run_id, events=events, roles=roles,
                        accept=_accept_fn(ws, plan, ctx.expansions),
                        progress=progress or (lambda task, msg, frac: None), spend_for=ctx.budget.for_task)
    config: Any = {"configurable": {"thread_id": run_id},
                   "recursion_limit": max(1000, 25 * (len(plan.tasks) + len(plan.gates)))}
    with open_saver(ws.db) as saver:
        graph = build_graph(saver)
        snapshot = graph.get_state(config)
        if resumed and snapshot.values:
            events.emit("run_resumed", plan=plan.name)
            graph_input: Any = None if snapshot.next else {"phase": "running"}
            if snapshot.interrupts:
                graph_input = _resume_with(ws, run_id, snapshot.interrupts)
        else:
            events.emit("run_started", plan=plan.name, profile=plan.profile, params=plan.params)
            graph_input = _initial_state(run_id, plan)
        for _ in graph.stream(graph_input, config, context=ctx, durability=DURABILITY,
                              stream_mode="updates"):
            pass
        state: RunState = graph.get_state(config).values  # type: ignore[assignment]
    phase, problems = run_outcome(plan, state.get("tasks", {}), state.get("gates", {}))
    if (state.get("budget") or {}).get("exhausted"):
        problems.insert(0, f"budget: {state['budget']['run']['text']}; paid work is paused until "
                           "`coord budget raise USD` (or `coord budget approve`) and `coord resume`")
    render_cost_dashboard(ws, ledger, run_id, plan.name, dict(state))
    record = next((r for r in list_runs(ws) if r["run_id"] == run_id), {"run_id": run_id, "plan": plan.name})
    _save_run(ws, {**record, "phase": phase, "finished_at": now_iso(), "problems": problems})
    events.emit("run_finished" if phase != "waiting" else "run_paused", phase=phase, problems=problems)
    return RunSummary(run_id, plan.name, phase, problems, resumed, state)


def _resume_with(ws: Workspace, run_id: str, interrupts: Any) -> Command | None:
    """The queued decision that answers the pending interrupt, as a ``Command(resume=...)``.

    Without one the graph is resumed plainly: the waiting node pauses again.
    """
    waiting = {g["gate"] for i in interrupts for g in (i.value or {}).get("gates", [])}
    for decision in inbox.pending(ws, run_id):
        if decision["gate"] in waiting:
            return Command(resume=decision)
    return None


def run_status(ws: Workspace, run_id: str | None = None) -> dict[str, Any]:
    """The state of a run read from its checkpoint; nothing runs."""
    runs = list_runs(ws)
    if not runs:
        raise UsageError(f"no runs in {ws.root} yet (start one with `coord run PLAN`)")
    record = runs[-1] if run_id is None else next((r for r in runs if r["run_id"] == run_id), None)
    if record is None:
        raise UsageError(f"unknown run {run_id!r} (see `coord runs`)")
    plan = _load_compiled(ws, record["run_id"])
    with open_saver(ws.db) as saver:
        graph = build_graph(saver)
        snap = graph.get_state({"configurable": {"thread_id": record["run_id"]}})
    state: dict[str, Any] = dict(snap.values or {})
    tasks = state.get("tasks", {})
    gates = state.get("gates", {})
    phase, problems = run_outcome(plan, tasks, gates)
    if phase != "waiting" and any(tasks.get(t, {}).get("status", "pending") in ("pending", "running")
                                  for t in plan.order):
        phase = "interrupted" if record.get("phase") == "running" else phase
    return {
        "run_id": record["run_id"], "plan": plan.name, "profile": plan.profile, "phase": phase,
        "recorded_phase": record.get("phase"), "problems": problems,
        "tasks": {t: {"role": plan.tasks[t].role, "title": plan.tasks[t].title, **tasks.get(t, {})}
                  for t in plan.order},
        "gates": {g: gates.get(g, {"status": "pending"}) for g in plan.gates},
        "deferred": state.get("deferred", {}),
        "budget": state.get("budget"),
        "checkpoint_id": (snap.config or {}).get("configurable", {}).get("checkpoint_id"),
    }


def workspace_at(path: Path | str) -> Workspace:
    """The workspace for a directory."""
    return Workspace.at(path)
