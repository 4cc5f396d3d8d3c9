"""The cost ledger on Postgres: :class:`coordinator.engine.ledger.Ledger`'s queries, spoken in Postgres' SQL.

The ledger's logic and its SQL stay in one place; :class:`_Dialect` rewrites the few SQLite
idioms those queries use (``?`` parameters, ``INSERT OR IGNORE``, summing a comparison,
``lastrowid``). The tables are created by the workspace schema's migrations
(:mod:`coordinator.core.database`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from coordinator.core.database import Database
from coordinator.engine.ledger import Ledger

_BOOL_SUM = re.compile(r"SUM\((?!CASE)([^()]*?(?:=| IS )[^()]*)\)")


class _Cursor:
    """What the ledger reads of a cursor: rows, ``rowcount``, ``lastrowid``, ``description``."""

    def __init__(self, cur: Any, lastrowid: int | None = None) -> None:
        self._cur = cur
        self.rowcount: int = cur.rowcount
        self.lastrowid = lastrowid
        self.description = cur.description

    def fetchone(self) -> Any:
        return self._cur.fetchone()

    def fetchall(self) -> list[Any]:
        return list(self._cur.fetchall())

    def __iter__(self) -> Iterator[Any]:
        return iter(self._cur.fetchall())


class _Dialect:
    """A psycopg connection that takes the ledger's SQLite-flavoured SQL."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def execute(self, sql: str, args: Sequence[Any] = ()) -> _Cursor:
        sql = _BOOL_SUM.sub(r"SUM(CASE WHEN \1 THEN 1 ELSE 0 END)", sql.replace("?", "%s"))
        if sql.startswith("INSERT OR IGNORE INTO"):
            return _Cursor(self._conn.execute("INSERT INTO" + sql[len("INSERT OR IGNORE INTO"):]
                                              + " ON CONFLICT DO NOTHING", args))
        if sql.startswith("INSERT INTO calls"):
            cur = self._conn.execute(sql + " RETURNING id", args)
            return _Cursor(cur, int(cur.fetchone()[0]))
        return _Cursor(self._conn.execute(sql, args))


class PgLedger(Ledger):
    """The cost ledger in the workspace's Postgres schema (thread-safe: a pooled connection per query)."""

    def __init__(self, db: Database) -> None:
        super().__init__(Path(f"postgres:{db.settings.schema}"))
        self.db = db

    @contextmanager
    def _conn(self) -> Iterator[Any]:
        with self.db.connection() as conn:
            yield _Dialect(conn)
