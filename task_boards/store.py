"""What coord remembers about boards: the text it last rendered, notices and problems.

``.coord/boards/<file>.last`` holds, per board, the text coord last rendered
(with the person's text outside the marked sections). It is the *base* of the
three-way merge and the reference edits are detected against.
``.coord/boards/problems.json`` keeps the merge conflicts and garbled edits
that `coord status` and TEAM_COORDINATION.md report.
With a database configured these are rows of it under the same paths
(:mod:`coordinator.core.state_files`), so every machine merges against the same base.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import orjson

from coordinator.core import state_files
from coordinator.core.io import wrote
from coordinator.core.workspace import Workspace
from task_boards.locks import board_rel


def base_file(ws: Workspace, path: Path) -> Path:
    """Where coord keeps what it last rendered for a board."""
    return _base_file(ws, path)


def _base_file(ws: Workspace, path: Path) -> Path:
    rel = board_rel(ws, path)
    return ws.state_dir / "boards" / (rel.replace("/", "__") + ".last")


def load_base(ws: Workspace, path: Path) -> str | None:
    """The text coord last rendered for ``path``, or None if it never rendered it."""
    raw = state_files.read_bytes(ws, _base_file(ws, path))
    return None if raw is None else raw.decode("utf-8")


def save_base(ws: Workspace, path: Path, text: str) -> None:
    """Remember ``text`` as what coord last rendered for ``path``.

    Written by rename (never half a file) but not fsynced: it is rewritten on
    every render of every board, and the only cost of losing the latest one in
    a power cut is that edits made before the cut are compared with the
    previous render.
    """
    dest = _base_file(ws, path)
    if ws.database is not None:
        state_files.write_bytes(ws, dest, text.encode("utf-8"), durable=False)
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(text.encode("utf-8"))
    os.replace(tmp, dest)
    wrote("board_base", dest)


def _problems_file(ws: Workspace) -> Path:
    return ws.state_dir / "boards" / "problems.json"


def load_problems(ws: Workspace) -> dict[str, list[str]]:
    """``{"conflicts": [...], "edit_errors": [...]}`` as last recorded."""
    try:
        data: dict[str, Any] = orjson.loads(state_files.read_bytes(ws, _problems_file(ws)) or b"{}")
    except orjson.JSONDecodeError:
        data = {}
    return {"conflicts": list(data.get("conflicts") or []), "edit_errors": list(data.get("edit_errors") or [])}


def save_problems(ws: Workspace, *, conflicts: list[str] | None = None,
                  edit_errors: list[str] | None = None) -> None:
    """Replace the recorded conflicts and/or edit errors (None keeps the current list)."""
    current = load_problems(ws)
    if conflicts is not None:
        current["conflicts"] = conflicts
    if edit_errors is not None:
        current["edit_errors"] = edit_errors
    state_files.write_json(ws, _problems_file(ws), current)


def board_problems(ws: Workspace) -> list[str]:
    """Every recorded board problem, conflicts first (for `coord status`)."""
    p = load_problems(ws)
    return p["conflicts"] + p["edit_errors"]


def notices_file(ws: Workspace, run_id: str) -> Path:
    """Where the run's board notices are kept."""
    return ws.run_dir(run_id) / "board_notices.json"


def audit_file(ws: Workspace, run_id: str) -> Path:
    """``.coord/runs/<run>/board_edits.jsonl``: every applied board edit (who, what, when)."""
    return ws.run_dir(run_id) / "board_edits.jsonl"


def load_notices(ws: Workspace, run_id: str) -> dict[str, dict[str, str]]:
    """Task id → ``{"text", "status"}``: shown on the board while the task keeps that status."""
    try:
        data: dict[str, dict[str, str]] = orjson.loads(state_files.read_bytes(ws, notices_file(ws, run_id)) or b"{}")
        return data
    except orjson.JSONDecodeError:
        return {}


def save_notices(ws: Workspace, run_id: str, notices: dict[str, dict[str, str]]) -> None:
    """Replace the run's board notices."""
    state_files.write_json(ws, notices_file(ws, run_id), notices)


def append_audit(ws: Workspace, run_id: str, records: list[dict[str, Any]]) -> None:
    """Append applied board edits to ``.coord/runs/<run>/board_edits.jsonl`` (who, what, when)."""
    path = audit_file(ws, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as fh:
        for rec in records:
            fh.write(orjson.dumps(rec, option=orjson.OPT_APPEND_NEWLINE))
    wrote("audit", path)
