"""The workspace lock on a Postgres database: a session advisory lock instead of ``flock``.

The lock lives as long as the connection that took it: a process that dies (or whose network
goes) loses it with its session, as a killed process loses its ``flock``. The ``locks`` table
names the holder (``pid 123 on host running run <id>``) for whoever is refused; a row left by
a dead holder is ignored, since only a granted advisory lock counts.

A session lock is lost silently when the session ends under its holder: a server restarted mid-run, a
connection cut by the network or by an administrator. :class:`LockKeeper` looks at the session every
:data:`CHECK_S` seconds; when it is gone it takes the lock again on a new connection, and when another
process took the lock meanwhile it says so (``on_lost``), so the run stops instead of going on beside
the other one.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import threading
from collections.abc import Callable
from typing import Any

from coordinator.core.database import Database, describe
from coordinator.core.errors import CoordError, WorkspaceBusyError

log = logging.getLogger(__name__)

_COORD_KEY = 0x436F6F72
"""First half of every coord advisory lock key ('Coor')."""
LOCK_NAME = "workspace"
CHECK_S = 2.0
"""How often a held lock's session is checked (one round trip on the lock's own connection)."""


def parse_holder(text: str) -> tuple[int | None, str | None]:
    """(pid, run id) from a lock holder's text: ``pid 123[ on host][ running run <id>]``."""
    m = re.fullmatch(r"pid (\d+)(?: on \S+)?(?: running run (\S+))?", text)
    return (int(m.group(1)), m.group(2)) if m else (None, None)


def _key(schema: str) -> int:
    return int(hashlib.sha256(f"{schema}:{LOCK_NAME}".encode()).hexdigest()[:8], 16) & 0x7FFFFFFF


def take_database_lock(db: Database, holder: str) -> Any:
    """Take the workspace lock on a connection of its own (returned: closing it releases the lock);
    :class:`WorkspaceBusyError` naming the holder when another process has it."""
    db.open()  # the schema (and its locks table) first
    conn = db.connect()
    try:
        got = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (_COORD_KEY, _key(db.settings.schema))).fetchone()
        if not got[0]:
            row = conn.execute("SELECT holder FROM locks WHERE name = %s", (LOCK_NAME,)).fetchone()
            text = row[0] if row else "another process"
            conn.close()
            raise WorkspaceBusyError(f"workspace {db.settings.schema} (database {db.settings.safe_url}) is in use by "
                                     f"{text}; wait for it to finish or stop it", holder=text,
                                     run_id=parse_holder(text)[1])
        set_database_lock_holder(conn, holder)
    except WorkspaceBusyError:
        raise
    except Exception as e:
        conn.close()
        mapped = _mapped(e, db)
        if mapped is None:
            raise
        raise mapped from None
    return conn


def _mapped(error: BaseException, db: Database) -> Exception | None:
    return describe(error, db.settings) if type(error).__module__.startswith("psycopg") else None


def set_database_lock_holder(conn: Any, holder: str) -> None:
    """Say who holds the lock (called by its holder)."""
    conn.execute("INSERT INTO locks (name, holder) VALUES (%s, %s) ON CONFLICT (name) DO UPDATE SET "
                 "holder = excluded.holder, since = now()", (LOCK_NAME, holder))


def release_database_lock(conn: Any) -> None:
    """Release the lock and close its connection (a connection already gone released it already)."""
    try:
        conn.execute("SELECT pg_advisory_unlock_all()")
    except Exception:
        pass
    finally:
        conn.close()


def database_lock_holder(db: Database) -> str | None:
    """Who holds the workspace lock (the holder's own words), or None when nobody does."""
    with db.connection() as conn:
        row = conn.execute(
            "SELECT l.holder FROM pg_locks g LEFT JOIN locks l ON l.name = %s WHERE g.locktype = 'advisory' "
            "AND g.granted AND g.classid = %s::int8::oid AND g.objid = %s::int8::oid AND g.objsubid = 2 "
            "AND g.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            (LOCK_NAME, _COORD_KEY, _key(db.settings.schema))).fetchone()
    if row is None:
        return None
    return str(row[0] or "another process")


def holds_database_lock(conn: Any, db: Database) -> bool:
    """Whether ``conn``'s session holds the workspace lock; False when the session is gone."""
    try:
        row = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = pg_backend_pid() "
            "AND classid = %s::int8::oid AND objid = %s::int8::oid AND objsubid = 2)",
            (_COORD_KEY, _key(db.settings.schema))).fetchone()
    except Exception:  # the server restarted or the connection was cut: the session and its lock are gone
        return False
    return bool(row[0])


class LockKeeper:
    """Keeps a held workspace lock held: re-takes it when its session was lost (see the module's docstring)."""

    def __init__(self, db: Database, conn: Any, holder: str, on_lost: Callable[[str], None],
                 interval: float = CHECK_S) -> None:
        self.db, self.conn, self.holder = db, conn, holder
        self.on_lost, self.interval = on_lost, interval
        self.lost: str | None = None
        """Who took the lock while this process had lost it (then the keeper stops)."""
        self.retaken = 0
        """How many times the lock was taken again after its session ended."""
        self._mutex = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="coord-lock-keeper", daemon=True)

    def start(self) -> LockKeeper:
        """Begin checking in a thread of its own."""
        self._thread.start()
        return self

    def set_holder(self, holder: str) -> None:
        """Say who holds the lock (kept for a lock taken again)."""
        with self._mutex:
            self.holder = holder
            set_database_lock_holder(self.conn, holder)

    def close(self) -> None:
        """Stop checking, release the lock and close its connection."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.interval + 5)
        with self._mutex:
            release_database_lock(self.conn)

    def check(self) -> bool:
        """Take the lock again if its session was lost; False once another process holds it."""
        with self._mutex:
            if self.lost is not None:
                return False
            if holds_database_lock(self.conn, self.db):
                return True
            with contextlib.suppress(Exception):  # already broken
                self.conn.close()
            try:
                self.conn = take_database_lock(self.db, self.holder)
            except WorkspaceBusyError as e:
                self.lost = e.holder or "another process"
            except CoordError as e:  # the server is not back yet: try again at the next check
                log.warning("the workspace lock's database session was lost and the lock cannot be taken "
                            "again yet: %s", e)
                return True
            else:
                self.retaken += 1
                log.warning("the workspace lock's database session was lost (a server restart?); took the "
                            "lock again")
                return True
        if not self._stop.is_set():  # its holder is still inside the lock's block: tell it
            self.on_lost(self.lost)
        return False

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            if not self.check():
                return
