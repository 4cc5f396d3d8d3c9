"""Append-only event log: every transition of every run, one JSON object per line."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import orjson

EventKind = Literal[
    "run_started", "run_resumed", "run_finished", "run_paused",
    "task_started", "task_finished", "task_failed", "task_retried", "task_skipped", "task_blocked",
    "task_recovered", "task_timed_out", "task_fanned_out",
    "gate_decided", "deferred_opened", "deferred_resolved", "board_rendered",
    "budget_alert", "task_held",
    "gate_retry", "gate_decision", "decision_queued", "decision_ignored",
    "branch_merged", "merge_failed",
]


def now_iso() -> str:
    """UTC timestamp with milliseconds."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class EventLog:
    """Thread-safe appender for ``.coord/events.jsonl``.

    Each event is written with a single ``write`` of one line on an O_APPEND
    descriptor, so a kill never leaves half an event followed by another.
    """

    def __init__(self, path: Path, run_id: str, listener: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.path = path
        self.run_id = run_id
        self.listener = listener
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)

    def emit(self, kind: EventKind, **fields: Any) -> dict[str, Any]:
        """Append one event and pass it to the listener."""
        event = {"ts": now_iso(), "run": self.run_id, "kind": kind, **fields}
        line = orjson.dumps(event, option=orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS)
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
        if self.listener is not None:
            self.listener(event)
        return event


def read_events(path: Path, run_id: str | None = None) -> Iterator[dict[str, Any]]:
    """Events from the log (optionally of one run); a torn last line is ignored."""
    if not path.exists():
        return
    with path.open("rb") as fh:
        for raw in fh:
            try:
                event = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if run_id is None or event.get("run") == run_id:
                yield event
