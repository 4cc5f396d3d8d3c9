"""What the read-only commands show of a workspace's runs: their records and a run's state.

Kept apart from the runner so that ``coord status``, ``coord runs`` and friends start without
loading LangGraph: the state comes from :func:`coordinator.engine.checkpoint_read.latest_state`,
and only a checkpoint that reader cannot read goes through the graph.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Mapping
from typing import Any

from coordinator.core.errors import ConfigError, CoordError, UsageError
from coordinator.core.plan import CompiledPlan
from coordinator.core.roles import board_name_of
from coordinator.core.run_store import load_run_plan, run_records, unreadable_run_records
from coordinator.core.workspace import Workspace, lock_holder
from coordinator.engine.budget import with_budget
from coordinator.engine.checkpoint_read import Unreadable, damaged, latest_state
from coordinator.engine.schedule import run_outcome
from reviews.gate_status import gate_status_text, needs_person
from roles.definitions import load_workspace_roles

log = logging.getLogger(__name__)

UNFINISHED = ("running", "waiting")
"""Recorded phases of a run that can still continue."""


def list_runs(ws: Workspace) -> list[dict[str, Any]]:
    """Run records of the workspace, oldest first."""
    return run_records(ws)


def find_run(ws: Workspace, run_id: str | None, *, unfinished: bool = False) -> dict[str, Any]:
    """The run the user means: ``run_id`` (an exact id or a unique prefix of one), else the latest run
    (the latest unfinished one when ``unfinished``). Every command picks its run through here."""
    runs = list_runs(ws)
    try:
        return _pick(ws, runs, run_id, unfinished)
    except UsageError:
        damaged = unreadable_run_records(ws)
        if damaged:  # the run meant may be the one whose record cannot be read: say so, not "no runs"
            raise CoordError(f"run record {', '.join(damaged)} is damaged (not valid JSON), so its run cannot be "
                             "shown or resumed; its checkpoint, events and data are kept. `coord run PLAN --fresh` "
                             "starts a new run") from None
        raise


def _pick(ws: Workspace, runs: list[dict[str, Any]], run_id: str | None, unfinished: bool) -> dict[str, Any]:
    if run_id is not None:
        matches = [r for r in runs if r["run_id"] == run_id] or \
            [r for r in runs if run_id and r["run_id"].startswith(run_id)]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise UsageError(f"run id {run_id!r} is ambiguous: it starts {len(matches)} runs "
                             f"({', '.join(r['run_id'] for r in matches)}); give more of it (see `coord runs`)")
        raise UsageError(f"unknown run {run_id!r} (see `coord runs`)")
    if not runs:
        raise UsageError(f"no runs in {ws.root} yet (start one with `coord run PLAN`)")
    pool = [r for r in runs if r.get("phase") in UNFINISHED] if unfinished else runs
    if not pool:
        last = runs[-1]
        hint = (f"; the latest, {last['run_id']}, failed: `coord resume {last['run_id']}` runs its failed tasks again"
                if last.get("phase") == "failed" else "")
        raise UsageError(f"no unfinished run (see `coord runs`){hint}")
    return pool[-1]


def checkpointed_state(ws: Workspace, run_id: str) -> tuple[dict[str, Any], str | None]:
    """The run's latest state (as the graph would show it) and its checkpoint id."""
    try:
        found = _latest_state(ws, run_id)
    except Unreadable:
        # what the direct reader does not know goes through LangGraph (slow to load: only then)
        from coordinator.engine.run_state import read_run_state  # start-up: LangGraph only then

        return dict(read_run_state(ws, run_id)[0]), None
    except sqlite3.DatabaseError as e:
        raise damaged(ws.db, e) from None
    return ({}, None) if found is None else found


def _latest_state(ws: Workspace, run_id: str) -> tuple[dict[str, Any], str] | None:
    db = ws.database
    if db is None:
        return latest_state(ws.db, run_id)
    from coordinator.engine.pg import reader  # optional driver: Postgres only

    return reader.latest_state(db, run_id)


def run_status(ws: Workspace, run_id: str | None = None) -> dict[str, Any]:
    """The state of a run read from its checkpoint; nothing runs."""
    record = find_run(ws, run_id)
    plan = load_run_plan(ws, record["run_id"])
    state, checkpoint_id = checkpointed_state(ws, record["run_id"])
    tasks = state.get("tasks", {})
    gates = state.get("gates", {})
    holder = lock_holder(ws)
    live = holder is not None and holder.run_id == record["run_id"]
    # A run recorded as running is either live (its process holds the lock) or was interrupted.
    phase, problems = run_outcome(plan, tasks, gates, live=live, recorded=record.get("phase"))
    if phase != "running":  # a budget holding work, or a run past its limit, waits on a person
        phase, problems = with_budget(phase, problems, state)
    return {
        "run_id": record["run_id"], "plan": plan.name, "profile": plan.profile, "phase": phase,
        "recorded_phase": record.get("phase"), "problems": problems,
        "live": {"pid": holder.pid} if live and holder is not None else None,
        "tasks": {t: {"role": plan.tasks[t].role, "title": plan.tasks[t].title, **tasks.get(t, {})}
                  for t in plan.order},
        "gates": {g: {**gates.get(g, {"status": "pending"}), "status_text": text}
                  for g, text in gate_texts(ws, plan, gates).items()},
        "deferred": state.get("deferred", {}),
        "budget": state.get("budget"),
        "checkpoint_id": checkpoint_id,
    }


def gate_texts(ws: Workspace, plan: CompiledPlan, gates: Mapping[str, Any]) -> dict[str, str]:
    """Each gate's status in the boards' words; one that waits for a person names the command or the
    tick that continues the run."""
    boards: dict[str, str] = {}
    if any(needs_person(gates.get(g, {})) for g in plan.gates):
        try:  # who plays each role (coord.yaml may rebind it) names its board; no driver is resolved
            rebound = load_workspace_roles(ws.config)
        except ConfigError:  # a broken coord.yaml is reported by the commands that use it
            rebound = {}
        for name, binding in plan.roles.items():
            agent = (rebound.get(name) or {}).get("agent") or binding.agent
            boards[name] = f"task_boards/{board_name_of(str(agent))}_TASKS.md"
    return {g: gate_status_text(spec, gates.get(g, {}), board=boards.get(spec.reviewer, "its reviewer's board"))
            for g, spec in plan.gates.items()}


def runs_overview(ws: Workspace) -> list[dict[str, Any]]:
    """Run records, oldest first, each with ``live_pid`` (the process driving it, or None); a run
    recorded as running that no process drives shows as ``interrupted``. What `coord runs` lists
    and the dashboard's runs page shows."""
    records = list_runs(ws)
    holder = lock_holder(ws)
    for r in records:
        live = holder is not None and holder.run_id == r["run_id"]
        r["live_pid"] = holder.pid if live and holder is not None else None
        if not live and r.get("phase") == "running":
            r["phase"] = "interrupted"  # recorded as running, but no process drives it
    return records
