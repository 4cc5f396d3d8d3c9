"""The workspace lock on a Postgres database: a session advisory lock instead of ``flock``.

The lock lives as long as the connection that took it: a process that dies (or whose network
goes) loses it with its session, as a killed process loses its ``flock``. The ``locks`` table
names the holder (``pid 123 on host running run <id>``) for whoever is refused; a row left by
a dead holder is ignored, since only a granted advisory lock counts.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from coordinator.core.database import Database, describe
from coordinator.core.errors import WorkspaceBusyError

_COORD_KEY = 0x436F6F72
"""First half of every coord advisory lock key ('Coor')."""
LOCK_NAME = "workspace"


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
