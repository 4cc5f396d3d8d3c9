"""Decisions waiting to be applied: ``.coord/runs/<run>/inbox/<gate>.json``.

A person's decision is written here first (atomically) and applied by whoever
drives the run next: the live run when one holds the workspace, otherwise the
process that recorded it, which resumes the graph with it. The file is removed
only once a checkpoint holds the decision, so a kill in between loses nothing
and applies nothing twice (decisions carry an id; an applied id is skipped).
"""

from __future__ import annotations

import logging
from pathlib import Path

import orjson

from coordinator.core.io import atomic_write_json
from coordinator.core.state import DecisionRecord
from coordinator.core.workspace import Workspace

log = logging.getLogger(__name__)


def _dir(ws: Workspace, run_id: str) -> Path:
    return ws.run_dir(run_id) / "inbox"


def _safe(gate_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in gate_id)


def put(ws: Workspace, run_id: str, decision: DecisionRecord) -> None:
    """Queue a decision for its gate."""
    atomic_write_json(_dir(ws, run_id) / f"{_safe(decision['gate'])}.json", dict(decision))


def pending(ws: Workspace, run_id: str) -> list[DecisionRecord]:
    """Queued decisions, oldest first."""
    d = _dir(ws, run_id)
    if not d.is_dir():
        return []
    out: list[DecisionRecord] = []
    for path in d.glob("*.json"):
        try:
            out.append(orjson.loads(path.read_bytes()))
        except (orjson.JSONDecodeError, OSError):
            log.warning("ignoring unreadable queued decision %s", path)
    return sorted(out, key=lambda dec: dec["at"])


def has_pending(ws: Workspace, run_id: str) -> bool:
    """Cheap check for the waiting loop."""
    d = _dir(ws, run_id)
    return d.is_dir() and any(d.glob("*.json"))


def remove(ws: Workspace, run_id: str, gate_id: str, decision_id: str) -> None:
    """Drop a queued decision once applied (only if it is still the same decision)."""
    path = _dir(ws, run_id) / f"{_safe(gate_id)}.json"
    try:
        if orjson.loads(path.read_bytes()).get("id") == decision_id:
            path.unlink()
    except (FileNotFoundError, orjson.JSONDecodeError):
        pass
