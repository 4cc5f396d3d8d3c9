"""What ``coord status`` says of a run's dispatched tasks when the workspace has workers."""

from __future__ import annotations

from typing import Any

from coordinator.core.workspace import Workspace
from coordinator.engine.workers import registry
from coordinator.engine.workers.settings import workers_settings


def explain(ws: Workspace, status: dict[str, Any]) -> None:
    """Give each running task of ``status`` (``coord status``'s dict) a ``reason`` saying where it is: on which
    worker, queued, or waiting for a worker that offers what it requires; and ``worker``. Nothing changes
    without workers configured, or before the queue's tables exist."""
    db = ws.database
    if db is None or workers_settings(ws.root) is None:
        return
    with db.connection() as conn:
        if conn.execute("SELECT to_regclass('coord_dispatches')").fetchone()[0] is None:
            return
    found = registry.waiting(db, str(status["run_id"]))
    for tid, rec in status.get("tasks", {}).items():
        entry = found.get(tid)
        if entry is None or rec.get("status") != "running":
            continue
        rec["worker"] = entry["worker"]
        rec.setdefault("reason", None)
        rec["reason"] = rec["reason"] or registry.reason(entry)
