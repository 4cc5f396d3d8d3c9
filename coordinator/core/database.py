"""Where a workspace keeps its shared state: its own files (SQLite, the default) or a Postgres database.

One setting chooses: ``--db URL`` on the command line, else ``COORD_DATABASE_URL``, else
``database:`` in the workspace's ``coord.yaml``. Unset, coord keeps everything in ``.coord/``
as it always has. A ``postgresql://`` URL moves the checkpoints, the cost ledger, the event log
(``events.jsonl`` stays as a local mirror), run records, queued decisions, board bases and notices
and the workspace lock into that database.

Several workspaces share one database, each in its own schema ``coord_<workspace id>``: every
table (LangGraph's checkpoint tables too) is created there and every connection sets its
``search_path`` to it, so nothing can read another workspace's rows. The workspace id is
``workspace_id:`` in ``coord.yaml`` (the same on every machine that drives the workspace), else
``COORD_WORKSPACE_ID``, else the directory's name and a hash of its path.

The schema is versioned (table ``coord_schema``): coord creates it, migrates an older one forward,
and refuses one written by a newer coord instead of guessing at it. psycopg is imported only
when a database is configured (``pip install 'coord[postgres]'``).
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from coordinator.core.errors import EXIT_FAILED, ConfigError, CoordError, UsageError
from coordinator.core.version import VERSION
from coordinator.core.yaml_io import load_file

log = logging.getLogger(__name__)
# the driver's own warnings while a server is away (pool retries, a broken pipeline): coord says it once
logging.getLogger("psycopg").setLevel(logging.ERROR)

DATABASE_ENV = "COORD_DATABASE_URL"
WORKSPACE_ID_ENV = "COORD_WORKSPACE_ID"
SCHEMA_VERSION = 1
"""The layout of coord's own tables that this coord writes (see :data:`MIGRATIONS`)."""
INSTALL_HINT = "pip install 'coord[postgres]'"
CONNECT_TIMEOUT_S = 10
SHORT_WAIT_S = 1.0
"""How long the pool waits for a connection once it could not get one (until it gets one again)."""
POOL_MAX = 12
"""Connections a process keeps at most: the graph, the task pool's threads (ledger, events), readers."""

MIGRATIONS: tuple[str, ...] = (
    # 1: documents (run records, plans, queued decisions, board bases and notices), events, the cost
    #    ledger, the workspace lock's holder
    """
    CREATE TABLE documents (path TEXT PRIMARY KEY, body BYTEA NOT NULL,
                            updated_at TIMESTAMPTZ NOT NULL DEFAULT now());
    CREATE TABLE events (id BIGSERIAL PRIMARY KEY, run_id TEXT NOT NULL, kind TEXT NOT NULL, once TEXT,
                         body JSON NOT NULL);
    CREATE INDEX events_run ON events (run_id, id);
    CREATE UNIQUE INDEX events_once ON events (run_id, once) WHERE once IS NOT NULL;
    CREATE TABLE calls (
        id BIGSERIAL PRIMARY KEY,
        run_id TEXT NOT NULL, task_id TEXT, role TEXT, agent TEXT,
        kind TEXT NOT NULL, provider TEXT NOT NULL, model TEXT NOT NULL,
        tokens_in BIGINT NOT NULL DEFAULT 0, tokens_out BIGINT NOT NULL DEFAULT 0,
        tokens_cached BIGINT NOT NULL DEFAULT 0, tokens_cache_write BIGINT NOT NULL DEFAULT 0,
        usd DOUBLE PRECISION, cost_flag TEXT, duration_s DOUBLE PRECISION NOT NULL DEFAULT 0,
        ok INTEGER NOT NULL DEFAULT 1, error TEXT, ref TEXT, at TEXT NOT NULL, detail TEXT,
        pending INTEGER NOT NULL DEFAULT 0,
        UNIQUE (run_id, kind, ref)
    );
    CREATE INDEX calls_run ON calls (run_id);
    CREATE TABLE budget_changes (
        id BIGSERIAL PRIMARY KEY, run_id TEXT NOT NULL, scope TEXT NOT NULL, kind TEXT NOT NULL,
        usd DOUBLE PRECISION, note TEXT, at TEXT NOT NULL
    );
    CREATE TABLE locks (name TEXT PRIMARY KEY, holder TEXT NOT NULL, since TIMESTAMPTZ NOT NULL DEFAULT now());
    """,
)


class DatabaseError(CoordError):
    """The configured database cannot be used (refused, down, no permission); exit 1."""

    exit_code = EXIT_FAILED


class DatabaseConfigError(UsageError):
    """The database setting is wrong (not a Postgres URL, unknown database, bad password); exit 2."""


class SchemaTooNew(UsageError):
    """The database was set up by a newer coord; this one refuses to touch it."""


@dataclass(frozen=True)
class DatabaseSettings:
    """Which database a workspace's state lives in."""

    url: str
    """The ``postgresql://`` URL (may hold a password: show :attr:`safe_url`, never this)."""
    source: str
    """Where the URL was set: ``--db``, ``COORD_DATABASE_URL`` or ``coord.yaml:<line>``."""
    workspace_id: str
    """Key of the workspace in a database shared by several (its schema's name)."""

    @property
    def schema(self) -> str:
        """The Postgres schema holding this workspace's tables."""
        return f"coord_{self.workspace_id}"

    @property
    def safe_url(self) -> str:
        """The URL with its password replaced by ``***``."""
        return redact_url(self.url)


def redact_url(url: str) -> str:
    """``url`` without its password."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9_]+", "_", text.lower()).strip("_")


def default_workspace_id(root: Path) -> str:
    """The directory's name and a hash of its path (set ``workspace_id:`` for machines that share one)."""
    digest = hashlib.sha256(str(root).encode("utf-8")).hexdigest()[:8]
    return f"{_slug(root.name)[:40] or 'ws'}_{digest}"


def _check_id(value: Any, where: str) -> str:
    text = str(value)
    if not re.fullmatch(r"[a-z0-9_]{1,50}", text):
        raise ConfigError(f"workspace_id {text!r} must be 1–50 of a-z, 0-9 and _ (it names a Postgres schema)",
                          file=where)
    return text


def _check_url(url: str, source: str) -> str:
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in ("postgresql", "postgres"):
        raise DatabaseConfigError(f"{source}: the database must be a postgresql:// URL, got {redact_url(url)!r} "
                                  "(leave it unset to keep the state in the workspace's SQLite files)")
    return url


_settings_cache: dict[tuple[str, str | None, str | None, int | None], DatabaseSettings | None] = {}


def settings_for(root: Path) -> DatabaseSettings | None:
    """The database a workspace's state lives in; None for the embedded default (SQLite files)."""
    config = root / "coord.yaml"
    try:
        mtime: int | None = config.stat().st_mtime_ns
    except OSError:
        mtime = None
    key = (str(root), os.environ.get(DATABASE_ENV), os.environ.get(WORKSPACE_ID_ENV), mtime)
    if key not in _settings_cache:
        _settings_cache[key] = _read_settings(root, config if mtime is not None else None)
    return _settings_cache[key]


def _read_settings(root: Path, config: Path | None) -> DatabaseSettings | None:
    data: dict[str, Any] = {}
    where = "coord.yaml"
    if config is not None:
        located = load_file(config)
        data = located.data if isinstance(located.data, dict) else {}
        line = located.line_of(("database",))
        where = f"{config}:{line}" if line else str(config)
    url, source = os.environ.get(DATABASE_ENV) or None, os.environ.get("COORD_DATABASE_SOURCE") or DATABASE_ENV
    if url is None and data.get("database"):
        url, source = str(data["database"]), where
    if url is None:
        return None
    ws_id = data.get("workspace_id") or os.environ.get(WORKSPACE_ID_ENV) or default_workspace_id(root)
    return DatabaseSettings(_check_url(url, source), source, _check_id(ws_id, where))


def use_url(url: str) -> None:
    """``--db URL``: this process (and the agents and steps it starts) use ``url``."""
    os.environ[DATABASE_ENV] = url
    os.environ["COORD_DATABASE_SOURCE"] = "--db"


def _psycopg() -> Any:
    try:
        import psycopg  # optional driver: only a configured database needs it
    except ImportError:
        raise DatabaseConfigError(f"a Postgres database is configured but its driver is not installed: "
                                  f"{INSTALL_HINT}") from None
    return psycopg


def describe(error: BaseException, settings: DatabaseSettings) -> CoordError:
    """One line for a driver error, with what to do; the password never appears."""
    psycopg = _psycopg()
    text = " ".join(str(error).replace(settings.url, settings.safe_url).split()) or type(error).__name__
    where = f"the database {settings.safe_url} (set by {settings.source})"
    if isinstance(error, psycopg.errors.InsufficientPrivilege):
        return DatabaseError(f"{where} refused: {text}; the user needs CREATE on the database (or an existing "
                             f"schema {settings.schema} it owns)")
    if isinstance(error, psycopg.ProgrammingError) and not isinstance(error, psycopg.errors.DatabaseError):
        return DatabaseConfigError(f"{where} is not a valid connection string: {text}")
    low = text.lower()
    if "password authentication failed" in low or "no password supplied" in low or \
            ("database" in low and "does not exist" in low) or ("role" in low and "does not exist" in low):
        return DatabaseConfigError(f"cannot log in to {where}: {text}")
    if isinstance(error, psycopg.OperationalError | psycopg.InterfaceError) or \
            type(error).__module__.startswith("psycopg_pool"):
        return DatabaseError(f"cannot reach {where}: {text}. Nothing was lost: what the run finished is in "
                             "the database; `coord resume` continues once the server is back")
    return DatabaseError(f"{where} failed: {text}")


def as_coord_error(error: BaseException) -> CoordError | None:
    """A database driver's error as coord's error (for the CLI's one error printer); None for others."""
    module = type(error).__module__
    if not (module.startswith("psycopg") or module.startswith("psycopg_pool")):
        return None
    settings = next(iter(_databases.values())).settings if _databases else None
    if settings is None:
        return DatabaseError(f"database error: {' '.join(str(error).split())}")
    return describe(error, settings)


class Database:
    """A workspace's Postgres database: its schema (created and migrated on first use) and a connection pool."""

    def __init__(self, settings: DatabaseSettings) -> None:
        self.settings = settings
        self._pool: Any = None
        self._lock = threading.Lock()

    def connect_kwargs(self) -> dict[str, Any]:
        """Connection options every connection of this workspace uses."""
        return {"autocommit": True, "connect_timeout": CONNECT_TIMEOUT_S,
                "options": f"-c search_path={self.settings.schema}"}

    def connect(self) -> Any:
        """A new connection of its own (for the workspace lock, held as long as the lock)."""
        psycopg = _psycopg()
        try:
            return psycopg.Connection.connect(self.settings.url, **self.connect_kwargs())
        except psycopg.Error as e:
            raise describe(e, self.settings) from None

    def open(self) -> None:
        """Connect, create or migrate the schema and start the pool; a clear error when any of it fails."""
        with self._lock:
            if self._pool is not None:
                return
            psycopg = _psycopg()
            from psycopg_pool import ConnectionPool  # optional driver, as psycopg

            try:
                with psycopg.Connection.connect(self.settings.url, autocommit=True,
                                                connect_timeout=CONNECT_TIMEOUT_S) as conn:
                    migrate(conn, self.settings.schema)
            except psycopg.Error as e:
                raise describe(e, self.settings) from None
            # every connection is tested as it is handed out (a round trip, ~0.3 ms): a server restarted
            # between two queries is reconnected to, and the run goes on
            self._pool = ConnectionPool(self.settings.url, kwargs=self.connect_kwargs(), min_size=1,
                                        max_size=POOL_MAX, open=True, timeout=CONNECT_TIMEOUT_S,
                                        check=ConnectionPool.check_connection, name=self.settings.schema)

    @property
    def pool(self) -> Any:
        """The process's connection pool (psycopg_pool.ConnectionPool), opened on first use."""
        if self._pool is None:
            self.open()
        return self._pool

    @contextmanager
    def connection(self) -> Iterator[Any]:
        """A pooled connection (autocommit; ``search_path`` on the workspace's schema).

        Waits up to :data:`CONNECT_TIMEOUT_S` for one (a server restarting); once that failed, every
        later wait of the pool (the checkpointer's too) is :data:`SHORT_WAIT_S` until a connection is
        had again, so a run stops soon after the server went away, not once per query.
        """
        pool = self.pool  # first: says which extra to install when the driver is missing
        from psycopg_pool import PoolTimeout  # optional driver, as psycopg

        try:
            with pool.connection() as conn:
                pool.timeout = CONNECT_TIMEOUT_S
                yield conn
        except PoolTimeout:
            pool.timeout = SHORT_WAIT_S
            raise

    def close(self) -> None:
        """Close the pool (its connections)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()


def migrate(conn: Any, schema: str) -> int:
    """Create ``schema`` and bring coord's tables in it to :data:`SCHEMA_VERSION`; the version found before.

    One transaction under an advisory lock, so two processes starting at once migrate once. A schema
    written by a newer coord is refused (:class:`SchemaTooNew`) and left as it is.
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"coord-migrate:{schema}",))
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        conn.execute(f'CREATE TABLE IF NOT EXISTS "{schema}".coord_schema (version INTEGER PRIMARY KEY, '
                     "coord_version TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
        row = conn.execute(f'SELECT max(version) FROM "{schema}".coord_schema').fetchone()
        found = int(row[0] or 0)
        if found > SCHEMA_VERSION:
            raise SchemaTooNew(f"the database schema {schema} is at version {found}, written by a newer coord; "
                               f"this coord knows versions up to {SCHEMA_VERSION} and leaves it untouched — "
                               "upgrade coord on this machine")
        conn.execute(f'SET LOCAL search_path TO "{schema}"')
        for version in range(found + 1, SCHEMA_VERSION + 1):
            conn.execute(MIGRATIONS[version - 1])
            conn.execute("INSERT INTO coord_schema (version, coord_version) VALUES (%s, %s)", (version, VERSION))
            log.info("database schema %s migrated to version %d", schema, version)
    return found


_databases: dict[DatabaseSettings, Database] = {}
_databases_lock = threading.Lock()


def database_for(settings: DatabaseSettings) -> Database:
    """The process's :class:`Database` for ``settings`` (one pool per database and workspace)."""
    with _databases_lock:
        db = _databases.get(settings)
        if db is None:
            db = _databases[settings] = Database(settings)
        return db


def close_all() -> None:
    """Close every pool this process opened (at exit, and between tests)."""
    with _databases_lock:
        dbs = list(_databases.values())
        _databases.clear()
    _settings_cache.clear()
    for db in dbs:
        db.close()


atexit.register(close_all)
