"""The cost ledger: every LLM call, CLI run and fine-tuning job, in ``.coord/ledger.sqlite``.

One row per call: run, task, role, agent, provider, model, tokens in/out/cached, USD
(NULL when the price is unknown, with the reason in ``cost_flag``), duration, time.
Budget changes (``coord budget raise`` / ``approve``) live in a second table, so the
run's effective limit is the plan's budget plus every recorded change.

It is a separate database from the LangGraph checkpoints: workers write to it from
their threads while the graph holds its own connection. Rows never contain keys; error
texts are redacted before they are stored.
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

from coordinator.core.events import now_iso
from coordinator.core.llm import CallRecord
from roles.providers.secrets import redact

LEDGER_SCHEMA_VERSION = 2
"""1: the first layout; 2: ``calls.detail`` (JSON: a CLI's version and exit code, a price's source)."""
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
    """Sum of known costs."""
    unknown: int
    """Calls whose cost is unknown (not in the price table) and so not in ``usd``."""
    tokens_cache_write: int = 0
    """Input tokens written to a prompt cache."""


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
    conn.execute("INSERT INTO meta VALUES ('schema_version', ?) ON CONFLICT(key) DO UPDATE SET value = "
                 "excluded.value WHERE CAST(meta.value AS INTEGER) < CAST(excluded.value AS INTEGER)",
                 (str(LEDGER_SCHEMA_VERSION),))


class Ledger:
    """Thread-safe access to ``.coord/ledger.sqlite`` (one short connection per operation)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._init_lock = threading.Lock()
        self._ready = False

    @classmethod
    def of(cls, state_dir: Path) -> Ledger:
        """The ledger of a workspace's ``.coord`` directory."""
        return cls(state_dir / "ledger.sqlite")

    @contextmanager
    def _conn(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=30)
        try:
            if not self._ready:
                with self._init_lock:
                    if not self._ready:  # another thread may have set the schema up while we waited
                        conn.execute("PRAGMA journal_mode=WAL")
                        conn.executescript(_SCHEMA)
                        _migrate(conn)
                        conn.commit()
                        self._ready = True
            yield conn
            conn.commit()
        finally:
            conn.close()

    def record(self, call: CallRecord, *, run_id: str, task_id: str | None, role: str | None,
               agent: str | None) -> bool:
        """Store one call; False when a call with the same ``ref`` was already stored for this run."""
        u = call.usage
        with self._conn() as c:
            cur = c.execute(
                "INSERT OR IGNORE INTO calls (run_id, task_id, role, agent, kind, provider, model, tokens_in, "
                "tokens_out, tokens_cached, tokens_cache_write, usd, cost_flag, duration_s, ok, error, ref, at, "
                "detail) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (run_id, task_id, role, agent, call.kind, redact(call.provider), redact(call.model), u.input_tokens,
                 u.output_tokens, u.cached_tokens, u.cache_write_tokens, call.cost.usd,
                 call.cost.flag, round(call.duration_s, 3), int(call.ok),
                 redact(call.error) if call.error else None, call.ref, now_iso(),
                 redact(json.dumps(call.detail, sort_keys=True)) if call.detail else None))
            return cur.rowcount == 1

    def spent(self, run_id: str, role: str | None = None) -> tuple[float, int]:
        """Known USD spent in a run (optionally by one role) and the number of calls of unknown cost."""
        where, args = "run_id = ?", [run_id]
        if role is not None:
            where += " AND role = ?"
            args.append(role)
        with self._conn() as c:
            usd, unknown = c.execute(f"SELECT COALESCE(SUM(usd), 0), SUM(usd IS NULL) FROM calls WHERE {where}",
                                     args).fetchone()
        return float(usd), int(unknown or 0)

    def totals(self, run_id: str | None, by: GroupBy) -> list[Total]:
        """Spend grouped by ``by`` for one run (or every run), largest first."""
        column = {"role": "role", "agent": "agent", "task": "task_id", "provider": "provider",
                  "model": "model"}[by]
        where, args = ("WHERE run_id = ?", [run_id]) if run_id else ("", [])
        sql = (f"SELECT COALESCE({column}, '—'), COUNT(*), SUM(tokens_in), SUM(tokens_out), SUM(tokens_cached), "
               f"COALESCE(SUM(usd), 0), SUM(usd IS NULL), SUM(tokens_cache_write) FROM calls {where} "
               "GROUP BY 1 ORDER BY 6 DESC, 1")
        with self._conn() as c:
            rows = c.execute(sql, args).fetchall()
        return [Total(str(k), int(n), int(i or 0), int(o or 0), int(ca or 0), float(usd), int(unk or 0),
                      int(cw or 0)) for k, n, i, o, ca, usd, unk, cw in rows]

    def calls(self, run_id: str) -> list[dict[str, Any]]:
        """Every call of a run, oldest first."""
        with self._conn() as c:
            c.row_factory = sqlite3.Row
            return [dict(r) for r in c.execute("SELECT * FROM calls WHERE run_id = ? ORDER BY id", (run_id,))]

    def flags(self, run_id: str) -> list[str]:
        """Distinct reasons why some costs of a run are unknown."""
        with self._conn() as c:
            return [r[0] for r in c.execute("SELECT DISTINCT cost_flag FROM calls WHERE run_id = ? AND usd IS NULL "
                                            "AND cost_flag IS NOT NULL ORDER BY 1", (run_id,))]

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
