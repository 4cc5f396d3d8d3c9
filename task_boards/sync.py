"""`coord board sync`: read the boards, apply people's edits to the run, re-render.

Edits reach the run through the LangGraph checkpointer: one
``graph.update_state`` on the run's thread with the merged task, gate and
deferred records, applied as the node that last ran so the graph's next step
is unchanged. Plan changes (new tasks, reassignments) are written to the
run's stored plan (``.coord/runs/<run>/plan.json``), which resume reads.

Edits are applied only while no run process holds the workspace; a running
run keeps merging its renders with the edits, and the first sync after it
pauses or ends applies them (`coord watch` retries on its own; a refused sync
reports the run and the boards with edits waiting).
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import orjson

from coordinator.core.errors import CoordError, WorkspaceBusyError
from coordinator.core.faults import fault_point
from coordinator.core.io import json_bytes
from coordinator.core.plan import CompiledPlan
from coordinator.core.run_store import (
    has_journal,
    load_run_plan,
    plan_file,
    replay_journal,
    write_journal,
)
from coordinator.core.state import DecisionRecord, RunState
from coordinator.core.workspace import Workspace, WorkspaceLock
from coordinator.engine.decisions import apply_queued, queue_decision
from coordinator.engine.run_state import merged_state, read_run_state, write_run_state
from coordinator.engine.runner import UNFINISHED, find_run, reopen_run
from coordinator.engine.schedule import plan_step
from reviews import inbox
from reviews.gitinfo import person
from roles.definitions import roles_for
from task_boards.apply import Changes, compute_changes
from task_boards.edits import detect_edits
from task_boards.freshness import (
    checkpoint_newer,
    looks_running,
    missing_boards,
    render_behind,
    stale_boards,
)
from task_boards.locks import board_lock
from task_boards.markers import MarkerError
from task_boards.merge import missing_sections
from task_boards.model import Edit, ParsedBoard
from task_boards.parse import parse_board
from task_boards.render import render_all
from task_boards.saves import NotUtf8, read_text
from task_boards.sections import bodies
from task_boards.store import (
    audit_file,
    base_file,
    load_base,
    load_notices,
    notices_file,
    save_problems,
)

log = logging.getLogger(__name__)


@dataclass
class SyncReport:
    """What one sync did."""

    run_id: str | None = None
    applied: list[str] = field(default_factory=list)
    reverted: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """Garbled edits (``file:line: message``); when any exist nothing was applied."""
    incomplete: bool = False
    """A board lacked coord's sections (deleted, or read while being saved): the watcher retries."""
    busy: str | None = None
    """Set when a run process holds the workspace: nothing was applied."""
    holder: str = ""
    """When ``busy``: who holds the workspace, as its lock file says (``pid 123 run <id>``)."""
    active_run: str | None = None
    """The run that holds the workspace (when ``busy`` and the holder is a run)."""
    waiting_edits: list[str] = field(default_factory=list)
    """When ``busy``: boards whose coord sections a person changed since coord last rendered them."""
    written: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    can_continue: bool = False
    """The run has work that may start now (``coord resume`` runs it)."""
    waiting: bool = False
    """The run was paused waiting on a person (or has just been reopened on the boards)."""
    reopened: list[str] = field(default_factory=list)
    """Tasks the edits made pending again (unticked, added, sent back)."""
    refreshed: list[str] = field(default_factory=list)
    """Boards that showed something coord no longer holds (another run, or a render that could not be
    written while their markers were broken), rendered again: ``file: why``."""

    @property
    def changed(self) -> bool:
        """True when an edit was applied or reverted."""
        return bool(self.applied or self.reverted)


def who(root: Path) -> str:
    """The person editing the boards of the workspace at ``root`` (the same answer as ``coord approve``)."""
    return person(root)


def _queue_approvals(ws: Workspace, run_id: str, changes: Changes, person: str,
                     report: SyncReport) -> list[tuple[Edit, DecisionRecord]]:
    """Queue each ticked approval with the gates service *before* the sync commits, so a kill between the
    two loses no approval (the next sync finds the tick again and the decision already queued)."""
    queued = []
    for edit in changes.approvals:
        entry = next(a for a in changes.audit if a["kind"] == "approve" and a["where"] == edit.where())
        try:
            _, decision = queue_decision(ws, edit.target, "approve", note=f"ticked on {edit.where()}", by=person,
                                         run_id=run_id)
        except CoordError as e:
            report.reverted.append(f"{edit.where()}: approval of gate {edit.target!r} not recorded: {e}")
            entry["outcome"] = f"refused: {e}"
            continue
        entry["outcome"] = f"queued as decision {decision['id']}"
        queued.append((edit, decision))
    return queued


def _apply_approvals(ws: Workspace, run_id: str, queued: list[tuple[Edit, DecisionRecord]], person: str,
                     report: SyncReport) -> None:
    """Let the run take the queued approvals (it resumes; a live run takes them itself) and say how it went."""
    for edit, decision in queued:
        result = apply_queued(ws, run_id, decision)
        after = "the live run applies it" if result.live else f"run {run_id} resumed: {result.phase}" \
            if result.applied else f"queued; `coord resume {run_id}` applies it"
        report.applied.append(f"{edit.where()}: gate {edit.target!r} approved by {person}; {after}")


def _apply_left_over(ws: Workspace, run_id: str, report: SyncReport) -> None:
    """Decisions queued for a paused run that never took them (a sync or `coord approve` was killed in
    between): resume the run with them, once."""
    for decision in inbox.pending(ws, run_id)[:1]:  # one resume takes every queued decision
        result = apply_queued(ws, run_id, decision)
        if result.live:
            return
        report.applied.append(f"the {decision['action']} of gate {decision['gate']!r} by {decision['by']}, queued "
                              f"at {decision['at']}, went to run {run_id}: {result.phase}")


def warm_cache(ws: Workspace) -> None:
    """Parse every board and its last render ahead of time, so the next edit is applied faster."""
    for path in _board_files(ws):
        rel = path.relative_to(ws.root).as_posix()
        base = load_base(ws, path)
        if base is not None:
            parse_board(base, rel)
        with contextlib.suppress(NotUtf8):  # the sync that applies edits reports it
            parse_board(read_text(path, rel), rel)


def _board_files(ws: Workspace) -> list[Path]:
    return sorted(ws.boards.glob("*_TASKS.md")) if ws.boards.exists() else []


def sync_boards(ws: Workspace, run_id: str | None = None, *, editor: str | None = None) -> SyncReport:
    """Apply the edits people made to the boards since coord last rendered them, once; render again a
    board that shows something the run no longer holds."""
    record = find_run(ws, run_id)
    rid = record["run_id"]
    report = SyncReport(run_id=rid, waiting=record.get("phase") == "waiting")
    person = editor or who(ws.root)
    try:
        with WorkspaceLock(ws):
            queued, state, touched = _apply_edits(ws, rid, report, person)
            if report.reopened and record.get("phase") not in UNFINISHED:
                reopen_run(ws, rid, report.reopened)  # the registry must not say finished
                report.waiting = True
            if not (report.problems or report.changed or queued):
                unfinished = record.get("phase") in UNFINISHED
                state_now = read_run_state(ws, rid)[0] if unfinished or checkpoint_newer(ws) else None
                plan_now = load_run_plan(ws, rid)
                report.refreshed = stale_boards(ws, rid) + (render_behind(ws, state_now) if state_now else []) \
                    + missing_boards(ws, [r.board_name for r in roles_for(ws, plan_now).values()])
                if unfinished and state_now is not None and state_now.get("phase", "running") == "running" \
                        and looks_running(ws):  # this sync holds the workspace: no process drives the run
                    report.refreshed.append(f"boards: run {rid} is not running (the process driving it stopped "
                                            f"without saying so); they say interrupted until `coord resume {rid}`")
                    state_now = cast(RunState, {**state_now, "phase": "interrupted"})  # shown only, never saved
                if report.refreshed:
                    _render(ws, rid, report, state_now, None)
                elif unfinished and state_now is not None:
                    report.can_continue = _can_continue(load_run_plan(ws, rid), state_now)
    except WorkspaceBusyError as e:
        report.busy, report.holder, report.active_run = str(e), e.holder, e.run_id
        report.waiting_edits = waiting_edits(ws)
        return report
    if not (report.problems or report.changed or queued) and record.get("phase") in UNFINISHED:
        _apply_left_over(ws, rid, report)  # decisions an interrupted sync or command queued, never applied
    if report.problems or not (report.changed or queued):
        return report
    if queued:
        _apply_approvals(ws, rid, queued, person, report)
        state, touched = None, None  # the run wrote the checkpoint: read it again
    try:
        with WorkspaceLock(ws):
            _render(ws, rid, report, state, touched)
    except WorkspaceBusyError as e:  # a run started meanwhile; its own renders take over
        report.busy = str(e)
    return report


def _can_continue(plan: CompiledPlan, state: RunState) -> bool:
    """Work a resume would do: ready tasks, due gates, or tasks a killed process left running (the sync
    holds the workspace, so no live process runs them)."""
    sched = plan_step(plan, state.get("tasks", {}), state.get("gates", {}))
    orphans = any(r.get("status") == "running" for r in state.get("tasks", {}).values())
    return bool(sched.ready or sched.due_gates or sched.updates or sched.gate_skips or orphans)


def waiting_edits(ws: Workspace) -> list[str]:
    """Boards whose coord sections differ from what coord last rendered: edits not applied yet.

    Reads only (under each board's lock, so a render's file and base are seen together);
    text a person changed outside coord's sections is not an edit and is not listed.
    """
    out = []
    for path in _board_files(ws):
        with board_lock(ws, path):
            base = load_base(ws, path)
            try:
                text = read_text(path)
            except NotUtf8:
                text = None  # a sync says where
        if base is None or base == text:
            continue
        try:
            changed = text is None or bodies(base) != bodies(text)
        except MarkerError:
            changed = True  # garbled markers: the sync that applies the edits will say where
        if changed:
            out.append(path.relative_to(ws.root).as_posix())
    return out


def _apply_edits(ws: Workspace, run_id: str, report: SyncReport,
                 person: str) -> tuple[list[tuple[Edit, DecisionRecord]], RunState | None, set[str] | None]:
    if has_journal(ws, run_id):  # a sync killed mid-way: finish or drop it first
        replay_journal(ws, run_id, read_run_state(ws, run_id)[0].get("board_sync"))
    plan = load_run_plan(ws, run_id)
    roles = set(roles_for(ws, plan))
    files = _board_files(ws)
    with ExitStack() as stack:
        for path in files:
            stack.enter_context(board_lock(ws, path))
        texts: dict[Path, str] = {}
        for path in list(files):
            try:
                texts[path] = read_text(path, path.relative_to(ws.root).as_posix())
            except NotUtf8 as e:  # nothing of that board is applied; the others are
                report.problems.append(str(e))
                report.incomplete = True
                files.remove(path)
        bases = {p: load_base(ws, p) for p in files}
        if all(bases[p] is None or bases[p] == texts[p] for p in files):
            save_problems(ws, edit_errors=[])
            return [], None, None
        edited: set[str] = set()
        base_boards: dict[str, ParsedBoard] = {}
        boards: dict[str, ParsedBoard] = {}
        for path in files:
            rel = path.relative_to(ws.root).as_posix()
            lost = _lost_sections(bases[path], texts[path])
            if lost:
                report.incomplete = True
                report.problems.append(f"{rel}:1: coord's section(s) {', '.join(lost)} are missing (removed, or "
                                       "the file is being saved); restore the markers to apply its edits")
                continue
            board = parse_board(texts[path], rel)
            if board.run_id is not None and board.run_id != run_id:
                if bases[path] not in (None, texts[path]):
                    report.problems.append(f"{rel}:1: this board belongs to run {board.run_id}, not {run_id}; "
                                           "its edits are ignored — undo them (or delete the board) and "
                                           f"`coord board sync` renders it for run {run_id}")
                continue
            boards[rel] = board
            if bases[path] not in (None, texts[path]):
                edited.add(rel)
            base_text = bases[path]
            base_boards[rel] = parse_board(base_text if base_text is not None else texts[path], rel)
        state, nxt = read_run_state(ws, run_id)
        found = detect_edits(base_boards, boards, plan, state, roles)
        report.problems += [str(p) for p in found.problems]
        save_problems(ws, edit_errors=report.problems)
        if report.problems:
            return [], None, None
        changes = compute_changes(found.edits, plan, state, load_notices(ws, run_id), ws.root, person)
        reopened = [t for t, r in changes.tasks.items() if r.get("status") == "pending"]
        if reopened and state.get("phase") not in UNFINISHED:
            changes.phase = "waiting"  # every summary says so, not "finished" with the old figures
        report.reverted += changes.reverted
        queued = _queue_approvals(ws, run_id, changes, person, report)
        _commit(ws, run_id, changes, {p: texts[p] for p in files if bases[p] is not None and bases[p] != texts[p]},
                nxt)
        if changes.state_update():
            report.reopened = reopened
        report.applied += changes.applied
    touched = None if changes.phase else _touched_roles(changes, [boards[r] for r in edited])
    return queued, merged_state(state, changes.state_update()), touched


def _commit(ws: Workspace, run_id: str, changes: Changes, new_bases: dict[Path, str], nxt: tuple[str, ...]) -> None:
    """Apply a sync as one transaction: journal the files it writes, commit the edits to the checkpoint
    (with the sync's id), then write the files. A kill before the commit applies nothing; after it,
    the next sync or run finishes the journal — every edit is applied exactly once."""
    sync_id = uuid.uuid4().hex
    rel = {p: p.relative_to(ws.root).as_posix() for p in new_bases}
    files = {base_file(ws, p).relative_to(ws.root).as_posix(): text for p, text in new_bases.items()}
    files[notices_file(ws, run_id).relative_to(ws.root).as_posix()] = json_bytes(changes.notices).decode("utf-8")
    if changes.plan_changed:
        files[plan_file(ws, run_id).relative_to(ws.root).as_posix()] = \
            json_bytes(changes.plan.model_dump(mode="json")).decode("utf-8")
    audit = [orjson.dumps({**rec, "sync": sync_id}).decode("utf-8") for rec in changes.audit]
    write_journal(ws, run_id, sync_id, files, {audit_file(ws, run_id).relative_to(ws.root).as_posix(): audit}
                  if audit else {})
    fault_point("journal_written")
    update = changes.state_update()
    if update:  # the commit point; a sync that changes no state (an approval, text only) has nothing to commit
        write_run_state(ws, run_id, {**update, "board_sync": sync_id}, nxt)
        fault_point("sync_committed")
    replay_journal(ws, run_id, sync_id)
    log.debug("sync %s applied to %s", sync_id, ", ".join(rel.values()) or "no board")


def _touched_roles(changes: Changes, edited: list[ParsedBoard]) -> set[str] | None:
    """Roles whose boards the edits can change; None (all) when gates, deferred items or the plan changed."""
    if changes.plan_changed or changes.gates or changes.deferred:
        return None
    roles = {changes.plan.tasks[t].role for t in changes.tasks}
    roles |= {changes.plan.tasks[t].role for t in changes.notices}
    return roles | {b.role for b in edited if b.role}  # absorbed boards are rewritten too


def _lost_sections(base: str | None, text: str) -> list[str]:
    if base is None or base == text:
        return []
    try:
        return missing_sections(bodies(base), bodies(text))
    except MarkerError as e:
        return [f"(unreadable markers: {e})"]


def _render(ws: Workspace, run_id: str, report: SyncReport, state: RunState | None,
            only_roles: set[str] | None) -> None:
    plan = load_run_plan(ws, run_id)
    if state is None:
        state = read_run_state(ws, run_id)[0]
    result = render_all(ws, plan, roles_for(ws, plan), state, only_roles=only_roles)
    report.written += result.written
    report.conflicts += result.conflicts
    report.can_continue = _can_continue(plan, state)
