"""The checkpointer factory: LangGraph's SqliteSaver in the workspace."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.types import Durability

from coordinator.core.errors import CoordError

DURABILITY: Durability = "sync"
"""Persist every superstep's checkpoint before the next one starts.

"async" may lose the latest checkpoint on SIGKILL and "exit" keeps nothing until
the run ends; with "sync" a finished task is on disk before anything depends on it.
"""


class CheckpointDamaged(CoordError):
    """The checkpoint database cannot be read: runs in it cannot be resumed or shown."""


def damaged(db: Path, error: BaseException) -> CheckpointDamaged:
    """The error to show for a checkpoint database SQLite refuses, with what to do."""
    return CheckpointDamaged(
        f"the checkpoint database {db} is damaged ({error}); its runs cannot be resumed or shown. "
        "`coord run PLAN --fresh` moves it aside (to state.sqlite.damaged-<time>) and starts a new run; "
        "data files, reports and the cost ledger are kept")


@contextmanager
def open_saver(db: Path) -> Iterator[SqliteSaver]:
    """Open (creating if needed) the checkpoint database at ``db``; :class:`CheckpointDamaged` if it is not one."""
    db.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(db), check_same_thread=False)
    try:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            saver = SqliteSaver(conn)
            saver.setup()
        except sqlite3.DatabaseError as e:
            raise damaged(db, e) from None
        try:
            yield saver
        except sqlite3.DatabaseError as e:
            if isinstance(e, sqlite3.OperationalError):  # locked, disk full, read-only: not damage
                raise
            raise damaged(db, e) from None
    finally:
        conn.close()


def probe(db: Path) -> CheckpointDamaged | None:
    """Why the checkpoint database cannot be used (None when it can, or does not exist yet)."""
    if not db.exists():
        return None
    try:
        with open_saver(db) as saver:
            saver.conn.execute("SELECT count(*) FROM checkpoints").fetchone()
    except CheckpointDamaged as e:
        return e
    except sqlite3.DatabaseError as e:
        return damaged(db, e)
    return None


def move_aside(db: Path) -> Path:
    """Rename a damaged checkpoint database (and its WAL files) out of the way; the new name."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    target = db.with_name(f"{db.name}.damaged-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        part = db.with_name(db.name + suffix)
        if part.exists():
            part.replace(target.with_name(target.name + suffix))
    return target
