"""Whether the boards show what the run holds: a board of another run, a render refused while a board's
markers were broken, or a render a killed process cut short. `coord board sync` renders such boards again."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from coordinator.core.plan import CompiledPlan
from coordinator.core.run_store import load_run_plan
from coordinator.core.state import RunState
from coordinator.core.workspace import Workspace
from task_boards.markers import MarkerError
from task_boards.parse import parse_board
from task_boards.saves import NotUtf8, read_text
from task_boards.store import load_problems


def checkpoint_newer(ws: Workspace) -> bool:
    """The checkpoint database changed after coord's last render wrote the status snapshot (a cheap
    test before reading the checkpoint: most syncs without edits follow a render)."""
    try:
        rendered = ws.status_file.stat().st_mtime_ns
    except FileNotFoundError:
        return False
    if ws.database is not None:  # checkpoints in a database have no file time: read them
        return True
    parts = [p.stat().st_mtime_ns for p in (ws.db, ws.db.with_name(ws.db.name + "-wal")) if p.exists()]
    return bool(parts) and max(parts) > rendered


def render_behind(ws: Workspace, state: RunState) -> list[str]:
    """The boards lag the run when coord's last render was cut short (the status snapshot, written last,
    does not hold what the checkpoint holds)."""
    try:
        snap = orjson.loads(ws.status_file.read_bytes())
    except (FileNotFoundError, orjson.JSONDecodeError):
        return []
    if snap.get("run_id") != state.get("run_id"):
        return []  # another run's boards: stale_boards says so

    def differs(key: str) -> bool:  # what the snapshot shows, against what the checkpoint holds now
        shown: Mapping[str, Any] = snap.get(key) or {}
        held: Mapping[str, Any] = state.get(key) or {}  # type: ignore[assignment]
        return any((shown[k] or {}).get("status", "pending") != (held.get(k) or {}).get("status", "pending")
                   for k in shown) or any(k not in shown for k in held if key == "deferred")

    behind = [key for key in ("tasks", "gates", "deferred") if differs(key)]
    if snap.get("phase") != state.get("phase") and (snap.get("phase"), state.get("phase")) != ("interrupted", "running"):
        behind.append("phase")  # (boards say "interrupted" of a run whose state says running when no process drives it)
    return [f"boards: coord's last render was cut short ({', '.join(behind)} behind the run); rendered again"] \
        if behind else []


def stale_boards(ws: Workspace, run_id: str) -> list[str]:
    """Boards with no edits that still show what coord no longer holds: another run's board, or one whose
    last render could not be written (its markers were broken then and have been put back since)."""
    conflicts = load_problems(ws)["conflicts"]
    plan = load_run_plan(ws, run_id)
    out = []
    for path in (sorted(ws.boards.glob("*_TASKS.md")) if ws.boards.exists() else []):
        rel = path.relative_to(ws.root).as_posix()
        try:
            board = parse_board(read_text(path, rel), rel)
        except (NotUtf8, MarkerError):
            continue  # reported where edits are read
        if board.run_id is not None and board.run_id != run_id:
            out.append(f"{rel}: it showed run {board.run_id}; rendered again for run {run_id}")
        elif gone := _entries_gone(plan, board.role, board.tasks):
            out.append(f"{rel}: the entries of {', '.join(gone)} were missing (a task is not removed by deleting it "
                       "from its board); rendered again")
        elif any(c.startswith(f"{rel}:") or c.startswith(f"{rel} ") for c in conflicts) and not board.problems:
            out.append(f"{rel}: coord's last render could not be written (its markers were broken); "
                       "rendered again")
    return out


def _entries_gone(plan: CompiledPlan, role: str | None, shown: list[Any]) -> list[str]:
    """Tasks of the board's role that the board does not show (their entries were deleted)."""
    if role is None or role not in plan.roles:
        return []
    now = {str(t.id) for t in shown}
    copies = {i.partition("[")[0] for i in now if "[" in i}  # a run-time foreach shows its copies instead
    return [t.id for t in plan.tasks_of_role(role) if t.id not in now and t.id not in copies]


def missing_boards(ws: Workspace, board_names: list[str]) -> list[str]:
    """Role boards (by their file prefix) that are not on disk, each as a line for the sync report."""
    out = []
    for name in board_names:
        path = ws.boards / f"{name}_TASKS.md"
        if not path.exists():
            out.append(f"{path.relative_to(ws.root).as_posix()}: missing; rendered again")
    return out


def looks_running(ws: Workspace) -> bool:
    """coord's last render showed the run as running (a process that was killed leaves it so)."""
    try:
        return bool(orjson.loads(ws.status_file.read_bytes()).get("phase") == "running")
    except (FileNotFoundError, orjson.JSONDecodeError):
        return False
