"""Decisions waiting to be applied: ``.coord/runs/<run>/inbox/<gate>.json``.

A person's decision is written here first (atomically) and applied by whoever
drives the run next: the live run when one holds the workspace, otherwise the
process that recorded it, which resumes the graph with it. The file is removed
only once a checkpoint holds the decision, so a kill in between loses nothing
and applies nothing twice (decisions carry an id; an applied id is skipped).
One decision per gate is queued at a time: two people deciding at once, the first
one stored wins and the other is told. With a database configured the queue is
rows of it (:mod:`coordinator.core.state_files`), seen from every machine.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import orjson

from coordinator.core import state_files
from coordinator.core.io import json_bytes
from coordinator.core.state import DecisionRecord
from coordinator.core.workspace import Workspace

log = logging.getLogger(__name__)

SEEN_FOR_S = 0.25
"""On a database, what this process read of a run's queue is reused this long (the waiting loop asks
several times a step); what it queues or removes itself is seen at once, others' within this time."""
_seen: dict[tuple[str, str], tuple[float, list[DecisionRecord]]] = {}


def _forget(ws: Workspace, run_id: str) -> None:
    if ws.database is not None:
        _seen.pop((ws.database.settings.schema, run_id), None)


def _dir(ws: Workspace, run_id: str) -> Path:
    return ws.run_dir(run_id) / "inbox"


def _safe(gate_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in gate_id)


def put(ws: Workspace, run_id: str, decision: DecisionRecord) -> DecisionRecord:
    """Queue a decision for its gate unless one is queued already; the decision the queue now holds
    (``decision``, or the one another process queued first)."""
    path = _dir(ws, run_id) / f"{_safe(decision['gate'])}.json"
    _forget(ws, run_id)
    while not state_files.create(ws, path, json_bytes(dict(decision))):
        raw = state_files.read_bytes(ws, path)
        if raw is not None:  # else it was applied and removed in between: queue ours after all
            held: DecisionRecord = orjson.loads(raw)
            return held
    return decision


def pending(ws: Workspace, run_id: str) -> list[DecisionRecord]:
    """Queued decisions, oldest first."""
    key = (ws.database.settings.schema, run_id) if ws.database is not None else None
    held = _seen.get(key) if key is not None else None
    if held is not None and time.monotonic() - held[0] < SEEN_FOR_S:
        return list(held[1])
    out: list[DecisionRecord] = []
    for path, raw in state_files.read_all(ws, _dir(ws, run_id), "*.json"):
        try:
            out.append(orjson.loads(raw))
        except orjson.JSONDecodeError:
            log.warning("ignoring unreadable queued decision %s", path)
    out.sort(key=lambda dec: dec["at"])
    if key is not None:
        _seen[key] = (time.monotonic(), out)
    return list(out)


def has_pending(ws: Workspace, run_id: str) -> bool:
    """Cheap check for the waiting loop."""
    if ws.database is not None:
        return bool(pending(ws, run_id))
    d = _dir(ws, run_id)
    return d.is_dir() and any(d.glob("*.json"))


def remove(ws: Workspace, run_id: str, gate_id: str, decision_id: str) -> None:
    """Drop a queued decision once applied (only if it is still the same decision)."""
    path = _dir(ws, run_id) / f"{_safe(gate_id)}.json"
    _forget(ws, run_id)
    raw = state_files.read_bytes(ws, path)
    try:
        if raw is not None and orjson.loads(raw).get("id") == decision_id:
            state_files.delete(ws, path, if_body=raw)
    except orjson.JSONDecodeError:
        pass
