"""The cost ledger: every LLM call, CLI run and fine-tuning job, in ``.coord/ledger.sqlite``.

One row per call: run, task, role, agent, provider, model, tokens in/out/cached, USD
(NULL when the price is unknown, with the reason in ``cost_flag``), duration, time.
An LLM call is stored *before* it is sent, as a **pending** row at its worst-case cost,
and settled with what it really used once it ends: a process killed mid-call leaves the
pending row, which ``coord costs`` shows as such and budgets count at its estimate.
Budget changes (``coord budget raise`` / ``approve``) live in a second table, so the
run's effective limit is the plan's budget plus every recorded change.

It is a separate database from the LangGraph checkpoints: workers write to it from
their threads while the graph holds its own connection. Each thread keeps one
connection per :class:`Ledger`. Rows never contain keys; error texts are redacted
before they are stored.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from coordinator.core.errors import CoordError
from coordinator.core.events import now_iso
from coordinator.core.llm import CallRecord
from coordinator.core.read_only import connect_read_only, writable
from coordinator.engine.checkpoint_read import is_damage
from roles.providers.secrets import redact

LEDGER_SCHEMA_VERSION = 3
"""1: the first layout; 2: ``calls.detail`` (JSON: a CLI's version and exit code, a price's source);
3: ``calls.pending`` (1 while a call is in flight; its ``usd`` is then the worst-case estimate)."""
GroupBy = Literal["role", "agent", "task", "provider", "model"]
BudgetChangeKind = Literal["raise", "set", "approve"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL, task_id TEXT, role TEXT, agent TEXT,
    kind TEXT NOT NULL, provider TEXT NOT NULL, model TEXT NOT NULL,
    tokens_in INTEGER NOT NULL DEFAULT 0, tokens_out INTEGER NOT NULL DEFAULT 0,
    tokens_cached INTEGER NOT NULL DEFAULT 0, tokens_cache_write INTEGER NOT NULL DEFAULT 0,
    usd REAL, cost_flag TEXT, duration_s REAL NOT NULL DEFAULT 0,
    ok INTEGER NOT NULL DEFAULT 1, error TEXT, ref TEXT, at TEXT NOT NULL, detail TEXT,
    pending INTEGER NOT NULL DEFAULT 0,
    UNIQUE (run_id, kind, ref)
);
CREATE INDEX IF NOT EXISTS calls_run ON calls (run_id);
CREATE TABLE IF NOT EXISTS budget_changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL, scope TEXT NOT NULL, kind TEXT NOT NULL, usd REAL,
    note TEXT, at TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class Total:
    """Spend of one group (a role, agent, task, provider or model)."""

    key: str
    calls: int
    tokens_in: int
    tokens_out: int
    tokens_cached: int
    usd: float
    """Sum of known costs of settled calls."""
    unknown: int
    """Calls whose cost is unknown (not in the price table) and so not in ``usd``."""
    tokens_cache_write: int = 0
    """Input tokens written to a prompt cache."""
    pending: int = 0
    """Calls stored before they were sent and never settled (in flight, or cut off by a kill)."""
    pending_usd: float = 0.0
    """The worst-case estimate of the pending calls (not in ``usd``)."""


@dataclass(frozen=True)
class Spend:
    """What a run (or one role of it) spent, as budgets count it."""

    usd: float
    """Known USD of settled calls."""
    unknown: int
    """Settled calls of unknown cost."""
    pending_usd: float = 0.0
    """Worst-case USD of calls not settled (in flight, or cut off by a kill)."""
    pending: int = 0
    """Calls not settled."""


@dataclass(frozen=True)
class BudgetChange:
    """A person's change to a run's budget."""

    scope: str
    """``run`` or ``role:<name>``."""
    kind: BudgetChangeKind
    usd: float | None
    note: str | None
    at: str


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring a ledger written by an older coord up to :data:`LEDGER_SCHEMA_VERSION` (columns are
    only ever added, so an older coord still reads a newer ledger)."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(calls)")}
    if "detail" not in columns:
        conn.execute("ALTER TABLE calls ADD COLUMN detail TEXT")
    if "pending" not in columns:
        conn.execute("ALTER TABLE calls ADD COLUMN pending INTEGER NOT NULL DEFAULT 0")
    conn.execute("INSERT INTO meta VALUES ('schema_version', ?) ON CONFLICT(key) DO UPDATE SET value = "
                 "excluded.value WHERE CAST(meta.value AS INTEGER) < CAST(excluded.value AS INTEGER)",
                 (str(LEDGER_SCHEMA_VERSION),))


def _settled_values(call: CallRecord) -> tuple[Any, ...]:
    """The columns a call's outcome fills, in the order of :data:`_OUTCOME_COLUMNS`."""
    u = call.usage
    return (redact(call.provider), redact(call.model), u.input_tokens, u.output_tokens, u.cached_tokens,
            u.cache_write_tokens, call.cost.usd, redact(call.cost.flag) if call.cost.flag else None,
            round(call.duration_s, 3), int(call.ok), redact(call.error) if call.error else None,
            redact(json.dumps(call.detail, sort_keys=True)) if call.detail else None)


_OUTCOME_COLUMNS = ("provider", "model", "tokens_in", "tokens_out", "tokens_cached", "tokens_cache_write", "usd",
                    "cost_flag", "duration_s", "ok", "error", "detail")


class LedgerDamaged(CoordError):
    """The cost ledger's database cannot be read."""


class Ledger:
    """Thread-safe access to ``.coord/ledger.sqlite``: one connection per thread, opened on first use."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._init_lock = threading.Lock()
        self._ready = False
        self._local = threading.local()

    @classmethod
    def of(cls, state_dir: Path) -> Ledger:
        """The ledger of a workspace's ``.coord`` directory."""
        return cls(state_dir / "ledger.sqlite")

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        if not writable(self.path.parent):  # a read-only workspace: costs can be read, nothing written
            self._local.conn = conn = self._read_only()
            return conn
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # autocommit: every statement is its own transaction, so a read always sees what other
        # threads and processes (`coord budget raise`) committed, and no write is left open
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        if not self._ready:
            with self._init_lock:
                if not self._ready:  # another thread may have set the schema up while we waited
                    try:
                        conn.execute("PRAGMA journal_mode=WAL")
                        conn.executescript(_SCHEMA)
                        _migrate(conn)
                    except sqlite3.DatabaseError as e:
                        conn.close()
                        if is_damage(e):
                            raise LedgerDamaged(
                                f"the cost ledger {self.path} is damaged ({e}). Move it aside (with its -wal and "
                                "-shm files) to start an empty one: the costs recorded in it are lost, runs, "
                                "checkpoints and data are not affected") from None
                        raise
                    self._ready = True
        self._local.conn = conn  # closed with the thread's locals when the thread ends
        return conn

    def _read_only(self) -> sqlite3.Connection:
        """The ledger of a read-only workspace (an empty one when it has none yet)."""
        if self.path.exists():
            return connect_read_only(self.path)
        conn = sqlite3.connect(":memory:", isolation_level=None)
        conn.executescript(_SCHEMA)
        return conn

    @contextmanager
    def _conn(self) -> Iterator[sqlite3.Connection]:
        yield self._connection()

    def record(self, call: CallRecord, *, run_id: str, task_id: str | None, role: str | None,
               agent: str | None) -> bool:
        """Store one call; False when a call with the same ``ref`` was already stored for this run."""
        columns = ("run_id", "task_id", "role", "agent", "kind", *_OUTCOME_COLUMNS, "ref", "at")
        with self._conn() as c:
            cur = c.execute(f"INSERT OR IGNORE INTO calls ({', '.join(columns)}) VALUES "
                            f"({', '.join('?' * len(columns))})",
                            (run_id, task_id, role, agent, call.kind, *_settled_values(call), call.ref, now_iso()))
            return cur.rowcount == 1

    def record_pending(self, call: CallRecord, *, run_id: str, task_id: str | None, role: str | None,
                       agent: str | None) -> int:
        """Store a call about to be sent, at its worst-case cost (``call.cost``); the row's id for :meth:`settle`."""
        columns = ("run_id", "task_id", "role", "agent", "kind", *_OUTCOME_COLUMNS, "ref", "at", "pending")
        with self._conn() as c:
            cur = c.execute(f"INSERT INTO calls ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                            (run_id, task_id, role, agent, call.kind, *_settled_values(call), call.ref, now_iso(), 1))
            assert cur.lastrowid is not None
            return cur.lastrowid

    def settle(self, row_id: int, call: CallRecord) -> None:
        """Replace a pending row with what the call really used (or how it failed)."""
        with self._conn() as c:
            c.execute(f"UPDATE calls SET {', '.join(f'{k} = ?' for k in _OUTCOME_COLUMNS)}, pending = 0 "
                      "WHERE id = ?", (*_settled_values(call), row_id))

    def spent(self, run_id: str, role: str | None = None) -> Spend:
        """What a run (optionally one role) spent: settled USD, calls of unknown cost, and pending calls."""
        where, args = "run_id = ?", [run_id]
        if role is not None:
            where += " AND role = ?"
            args.append(role)
        with self._conn() as c:
            usd, unknown, pending_usd, pending = c.execute(
                "SELECT COALESCE(SUM(CASE WHEN pending = 0 THEN usd END), 0), SUM(pending = 0 AND usd IS NULL), "
                "COALESCE(SUM(CASE WHEN pending = 1 THEN usd END), 0), SUM(pending = 1) "
                f"FROM calls WHERE {where}", args).fetchone()
        return Spend(float(usd), int(unknown or 0), float(pending_usd), int(pending or 0))

    def totals(self, run_id: str | None, by: GroupBy) -> list[Total]:
        """Spend grouped by ``by`` for one run (or every run), largest first."""
        column = {"role": "role", "agent": "agent", "task": "task_id", "provider": "provider",
                  "model": "model"}[by]
        where, args = ("WHERE run_id = ?", [run_id]) if run_id else ("", [])
        sql = (f"SELECT COALESCE({column}, '—'), COUNT(*), SUM(tokens_in), SUM(tokens_out), SUM(tokens_cached), "
               "COALESCE(SUM(CASE WHEN pending = 0 THEN usd END), 0), SUM(pending = 0 AND usd IS NULL), "
               "SUM(tokens_cache_write), SUM(pending), COALESCE(SUM(CASE WHEN pending = 1 THEN usd END), 0) "
               f"FROM calls {where} GROUP BY 1 ORDER BY 6 DESC, 1")
        with self._conn() as c:
            rows = c.execute(sql, args).fetchall()
        return [Total(str(k), int(n), int(i or 0), int(o or 0), int(ca or 0), float(usd), int(unk or 0),
                      int(cw or 0), int(p or 0), float(pu or 0)) for k, n, i, o, ca, usd, unk, cw, p, pu in rows]

    def calls(self, run_id: str) -> list[dict[str, Any]]:
        """Every call of a run, oldest first."""
        with self._conn() as c:
            cur = c.execute("SELECT * FROM calls WHERE run_id = ? ORDER BY id", (run_id,))
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def flags(self, run_id: str) -> list[str]:
        """Distinct reasons why some costs of a run are unknown."""
        with self._conn() as c:
            return [r[0] for r in c.execute("SELECT DISTINCT cost_flag FROM calls WHERE run_id = ? AND usd IS NULL "
                                            "AND pending = 0 AND cost_flag IS NOT NULL ORDER BY 1", (run_id,))]

    def change_budget(self, run_id: str, scope: str, kind: BudgetChangeKind, usd: float | None,
                      note: str | None = None) -> None:
        """Record a person's budget change for a run."""
        with self._conn() as c:
            c.execute("INSERT INTO budget_changes (run_id, scope, kind, usd, note, at) VALUES (?,?,?,?,?,?)",
                      (run_id, scope, kind, usd, note, now_iso()))

    def budget_changes(self, run_id: str) -> list[BudgetChange]:
        """A run's budget changes, oldest first."""
        with self._conn() as c:
            rows = c.execute("SELECT scope, kind, usd, note, at FROM budget_changes WHERE run_id = ? ORDER BY id",
                             (run_id,)).fetchall()
        return [BudgetChange(s, k, u, n, a) for s, k, u, n, a in rows]
