"""The checkpointer factory: LangGraph's SqliteSaver in the workspace."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.types import Durability

DURABILITY: Durability = "sync"
"""Persist every superstep's checkpoint before the next one starts.

"async" may lose the latest checkpoint on SIGKILL and "exit" keeps nothing until
the run ends; with "sync" a finished task is on disk before anything depends on it.
"""


@contextmanager
def open_saver(db: Path) -> Iterator[SqliteSaver]:
    """Open (creating if needed) the checkpoint database at ``db``."""
    db.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(db), check_same_thread=False)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        saver = SqliteSaver(conn)
        saver.setup()
        yield saver
    finally:
        conn.close()
