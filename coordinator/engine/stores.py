"""The engine's state stores for a workspace: SQLite files in ``.coord/`` or its Postgres database.

Everything in the engine that opens a checkpointer or the cost ledger asks here, with the
workspace; which store answers is the workspace's setting (:mod:`coordinator.core.database`).
The Postgres modules load only when a database is configured.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from coordinator.core.database import Database, describe
from coordinator.core.workspace import Workspace
from coordinator.engine.checkpoint_read import CheckpointDamaged, probe
from coordinator.engine.ledger import Ledger

if TYPE_CHECKING:
    from langgraph.checkpoint.base import BaseCheckpointSaver

_set_up: set[str] = set()
_set_up_lock = threading.Lock()


@contextmanager
def open_checkpointer(ws: Workspace) -> Iterator[BaseCheckpointSaver[Any]]:
    """The run checkpointer of ``ws`` (created on first use), storing record maps as deltas."""
    db = ws.database
    if db is None:
        # start-up: LangGraph loads when the graph needs its checkpointer (a new run's first tasks start before)
        from coordinator.engine import checkpoint

        with checkpoint.open_saver(ws.db) as saver:
            yield saver
        return
    from coordinator.engine.pg.checkpoints import PgDeltaSaver  # optional driver: Postgres only

    db.open()
    pg_saver = PgDeltaSaver(db.pool)
    _setup_once(db, pg_saver)
    yield pg_saver


def _setup_once(db: Database, saver: Any) -> None:
    """LangGraph's own migrations of its checkpoint tables, once per process and schema."""
    with _set_up_lock:
        if db.settings.schema in _set_up:
            return
        try:
            saver.setup()
        except Exception as e:
            if type(e).__module__.startswith("psycopg"):
                raise describe(e, db.settings) from None
            raise
        _set_up.add(db.settings.schema)


def prune_run(saver: BaseCheckpointSaver[Any], run_id: str, keep: int) -> int:
    """Drop a finished graph's earlier checkpoints (see :func:`coordinator.engine.checkpoint.prune`)."""
    from coordinator.engine import checkpoint  # start-up: loaded with the graph already

    if isinstance(saver, checkpoint.DeltaSaver):
        return checkpoint.prune(saver, run_id, keep)
    from coordinator.engine.pg import checkpoints  # optional driver: Postgres only

    assert isinstance(saver, checkpoints.PgDeltaSaver)
    return checkpoints.prune(saver, run_id, keep)


def probe_checkpoints(ws: Workspace) -> CheckpointDamaged | None:
    """Why the workspace's checkpoints cannot be used (a damaged SQLite file); None on Postgres, whose
    server reports its own faults as they happen."""
    return probe(ws.db) if ws.database is None else None


def checkpoints_where(ws: Workspace) -> str:
    """Where the checkpoints are, for messages: the SQLite file or the database and schema."""
    db = ws.database
    return str(ws.db) if db is None else f"schema {db.settings.schema} of {db.settings.safe_url}"


def open_ledger(ws: Workspace) -> Ledger:
    """The cost ledger of ``ws``."""
    db = ws.database
    if db is None:
        return Ledger.of(ws.state_dir)
    from coordinator.engine.pg.ledger import PgLedger  # optional driver: Postgres only

    return PgLedger(db)

