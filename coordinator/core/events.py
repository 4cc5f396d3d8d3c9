"""Append-only event log: every transition of every run, one JSON object per line.

With a Postgres database configured (:mod:`coordinator.core.database`) each event also goes to its
``events`` table, which every machine sees; ``events.jsonl`` stays as this machine's mirror.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import orjson

from coordinator.core.database import Database
from coordinator.core.io import AppendFile, wrote
from coordinator.core.workspace import Workspace

log = logging.getLogger(__name__)

EventKind = Literal[
    "run_started", "run_resumed", "run_finished", "run_paused",
    "task_started", "task_finished", "task_failed", "task_retried", "task_skipped", "task_blocked",
    "task_recovered", "task_timed_out", "task_fanned_out",
    "gate_decided", "deferred_opened", "deferred_resolved", "board_rendered",
    "budget_alert", "task_held",
    "gate_retry", "gate_decision", "decision_queued", "decision_ignored",
    "branch_merged", "merge_failed",
    # interactive sessions (coord mcp): a task claimed, noted, reported, taken by the run, let go
    "claim_made", "claim_noted", "claim_reported", "claim_taken", "claim_released", "claim_expired",
    "mcp_call",
    "output_replaced",  # a step replaced an output a person had edited
    "notify_attempt", "notify_dropped",  # a notification's delivery attempt; one given up (queue full, no tries left)
]


DB_RETRY_S = 30.0
"""After the database refused an event, the events of the next seconds go to the mirror only."""
FAULT_AFTER_EVENT = "COORD_FAULT_AFTER_EVENT"
"""Crash tests set this to an event kind (``kind`` or ``kind:N``, its N-th in the process): the process
dies (as from SIGKILL) right after writing it."""
_fault_seen: dict[str, int] = {}
_fault_lock = threading.Lock()


def _fault_after(kind: str) -> None:
    want = os.environ.get(FAULT_AFTER_EVENT)
    if not want or want.partition(":")[0] != kind:
        return
    nth = want.partition(":")[2]
    with _fault_lock:
        _fault_seen[kind] = seen = _fault_seen.get(kind, 0) + 1
    if seen >= (int(nth) if nth.isdigit() else 1):
        os._exit(137)


def now_iso() -> str:
    """UTC timestamp with milliseconds."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class EventLog:
    """Thread-safe appender for ``.coord/events.jsonl``.

    Each event is written with a single ``write`` of one line on an O_APPEND
    descriptor, so a kill never leaves half an event followed by another.
    """

    def __init__(self, path: Path, run_id: str, listener: Callable[[dict[str, Any]], None] | None = None,
                 database: Database | None = None) -> None:
        self.path = path
        self.run_id = run_id
        self.listener = listener
        self.database = database
        self._db_warned = False
        self._db_retry_at = 0.0
        self._lock = threading.Lock()
        self._once: set[str] | None = None
        self._file = AppendFile(path)
        path.parent.mkdir(parents=True, exist_ok=True)

    @classmethod
    def of(cls, ws: Workspace, run_id: str, listener: Callable[[dict[str, Any]], None] | None = None) -> EventLog:
        """The event log of a workspace's run (also in its database, when one is configured)."""
        return cls(ws.events, run_id, listener, ws.database)

    def close(self) -> None:
        """Close the log's descriptor (the next event opens it again)."""
        self._file.close()

    def _store(self, event: dict[str, Any], kind: str, once: str | None, line: bytes) -> None:
        """Also write the event to the database; when the server is unreachable the local mirror has it
        and the run goes on (the checkpoint that follows stops it cleanly if the server stays away)."""
        assert self.database is not None
        if time.monotonic() < self._db_retry_at:  # it failed a moment ago: do not wait for it per event
            return
        try:
            _insert(self.database, self.run_id, kind, once, line.rstrip(b"\n"))
        except Exception as e:  # a driver error of any kind: the event is kept in the mirror
            self._db_retry_at = time.monotonic() + DB_RETRY_S
            level, self._db_warned = (logging.DEBUG if self._db_warned else logging.WARNING), True
            log.log(level, "event %s of run %s is only in %s: the database refused it (%s)", kind, self.run_id,
                    self.path, " ".join(str(e).split()))

    def emit(self, kind: EventKind, *, once: str | None = None, **fields: Any) -> dict[str, Any]:
        """Append one event and pass it to the listener.

        ``once``: a key for an event that records a fact of the run's state (a gate decided, an item
        deferred). A node that runs again after a kill — its checkpoint was not written — emits it
        again; the log keeps the first and drops the repeat.
        """
        event = {"ts": now_iso(), "run": self.run_id, "kind": kind, **fields}
        if once is not None:
            event["once"] = once
        line = orjson.dumps(event, option=orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS)
        with self._lock:
            if once is not None:
                if self._once is None:
                    self._once = {str(e["once"]) for e in read_events(self.path, self.run_id) if "once" in e}
                if once in self._once:
                    return event
                self._once.add(once)
            self._file.append(line)
        if self.database is not None:
            self._store(event, kind, once, line)
        wrote("event", kind)  # crash tests: may die here
        _fault_after(kind)  # fault injection for crash tests
        self.tell(event)
        return event

    def tell(self, event: dict[str, Any]) -> None:
        """Pass an event to the listener without writing it (another process, a worker, logged it)."""
        listener = self.listener
        if listener is not None:
            try:
                listener(event)
            except (OSError, SystemExit) as e:  # a display whose output is gone (`| head` exited) never stops the work
                self.listener = None
                log.warning("progress display stopped: %s: %s", type(e).__name__, e)


def _insert(db: Database, run_id: str, kind: str, once: str | None, line: bytes) -> None:
    with db.connection() as conn:
        conn.execute("INSERT INTO events (run_id, kind, once, body) VALUES (%s, %s, %s, %s) "
                     "ON CONFLICT DO NOTHING", (run_id, kind, once, line.decode("utf-8")))


def latest_event_id(db: Database, run_id: str) -> int | None:
    """The id of the newest event of ``run_id`` in the database (whichever machine wrote it); None: none yet."""
    with db.connection() as conn:
        row = conn.execute("SELECT max(id) FROM events WHERE run_id = %s", (run_id,)).fetchone()
    return None if row is None or row[0] is None else int(row[0])


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
