"""The task queue: procrastinate on the workspace's Postgres schema, and coord's tables beside it.

Why procrastinate (and not pgqueuer): the coordinator is synchronous, and procrastinate defers jobs
from synchronous code on the psycopg pool coord already has (``SyncPsycopgConnector`` opened on
:attr:`coordinator.core.database.Database.pool`); its worker runs synchronous task functions in
threads, so a worker runs the pool's own code unchanged. It claims a job atomically (``FOR UPDATE
SKIP LOCKED`` in ``procrastinate_fetch_job_v2``), wakes workers by LISTEN/NOTIFY per queue with
polling as a fallback, keeps a heartbeat per worker and finds the jobs of workers whose heartbeat
stopped (``get_stalled_jobs``), which ``retry_job`` puts back *as the same job* — so a task taken
over after a crash keeps its key. A job's ``lock`` keeps two jobs of one key from running at once
and its ``queueing_lock`` keeps a key from being queued twice.

Routing: a job goes to the queue named by (role, agent, required capabilities); a worker listens to
every queue whose role and agent it serves and whose requirements it offers (:func:`queues_for`).
Queue names are hashed because Postgres caps a NOTIFY channel's name at 63 bytes.

Schema: versioned in ``coord_workers_schema`` like the workspace's own schema
(:mod:`coordinator.core.database`), in the same Postgres schema. Version 1: procrastinate's tables as
the installed procrastinate ships them, the worker table, dispatches (key → job) and results (key →
record).
"""

from __future__ import annotations

import hashlib
import itertools
import logging
from collections.abc import Iterable
from typing import Any

from coordinator.core.database import Database, describe
from coordinator.core.errors import UsageError
from coordinator.core.version import VERSION

log = logging.getLogger(__name__)

TASK_NAME = "coord.run_task"
"""The one procrastinate task: run a coord task (its job's arguments are a :class:`TaskJob` and its run)."""
SCHEMA_VERSION = 1
MAX_CAPABILITIES = 8
"""A worker listens to every subset of its capabilities: 2⁸ queues per role at most."""
INSTALL_HINT = "pip install 'coord[postgres]'"

_TABLES = """
CREATE TABLE coord_workers (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL, host TEXT NOT NULL, pid INTEGER NOT NULL,
    roles TEXT[] NOT NULL, agents TEXT[] NOT NULL, capabilities TEXT[] NOT NULL,
    concurrency INTEGER NOT NULL, lease_s DOUBLE PRECISION NOT NULL,
    current TEXT[] NOT NULL DEFAULT '{}',
    started_at TIMESTAMPTZ NOT NULL DEFAULT now(), last_heartbeat TIMESTAMPTZ NOT NULL DEFAULT now(),
    stopped_at TIMESTAMPTZ
);
CREATE TABLE coord_dispatches (
    run_id TEXT NOT NULL, task TEXT NOT NULL, dispatch INTEGER NOT NULL,
    job_id BIGINT NOT NULL, role TEXT NOT NULL, agent TEXT NOT NULL, requires TEXT[] NOT NULL,
    dispatched_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (run_id, task, dispatch)
);
CREATE TABLE coord_task_results (
    run_id TEXT NOT NULL, task TEXT NOT NULL, dispatch INTEGER NOT NULL,
    record JSONB NOT NULL, worker TEXT NOT NULL, job_id BIGINT,
    started_at TIMESTAMPTZ, finished_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (run_id, task, dispatch)
);
"""

_installed: set[str] = set()


def procrastinate_module() -> Any:
    """The procrastinate package; a clear error naming the extra to install when it is missing."""
    try:
        import procrastinate  # optional: the queue exists only with a database and workers configured
    except ImportError:
        raise UsageError(f"workers are configured but the queue library is not installed: {INSTALL_HINT}") from None
    return procrastinate


def install(db: Database) -> None:
    """Create (or check) the queue's tables in the workspace's schema, once per process."""
    if db.settings.schema in _installed:
        return
    procrastinate = procrastinate_module()
    db.open()
    try:
        with db.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"coord-workers:{db.settings.schema}",))
            conn.execute("CREATE TABLE IF NOT EXISTS coord_workers_schema (version INTEGER PRIMARY KEY, "
                         "coord_version TEXT NOT NULL, procrastinate_version TEXT NOT NULL, "
                         "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
            row = conn.execute("SELECT max(version) FROM coord_workers_schema").fetchone()
            found = int(row[0] or 0)
            if found > SCHEMA_VERSION:
                raise UsageError(f"the workers' tables in schema {db.settings.schema} are at version {found}, "
                                 f"written by a newer coord; this coord knows up to {SCHEMA_VERSION} — upgrade coord "
                                 "on this machine")
            for version in range(found + 1, SCHEMA_VERSION + 1):
                if version == 1:
                    have = conn.execute("SELECT to_regclass('procrastinate_jobs')").fetchone()[0]
                    if have is None:
                        conn.execute(procrastinate.schema.SchemaManager.get_schema())
                    conn.execute(_TABLES)
                conn.execute("INSERT INTO coord_workers_schema (version, coord_version, procrastinate_version) "
                             "VALUES (%s, %s, %s)", (version, VERSION, procrastinate.__version__))
                log.info("workers' tables in %s migrated to version %d", db.settings.schema, version)
    except Exception as e:
        if type(e).__module__.startswith("psycopg"):
            raise describe(e, db.settings) from None
        raise
    _installed.add(db.settings.schema)


def queue_name(role: str, agent: str, requires: Iterable[str]) -> str:
    """The queue of tasks of ``role`` played by ``agent`` that need ``requires``."""
    text = "\x1f".join([role, agent, *sorted(set(requires))])
    return "coord_" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


def queues_for(pairs: Iterable[tuple[str, str]], capabilities: Iterable[str]) -> list[str]:
    """Every queue a worker serving the (role, agent) ``pairs`` and offering ``capabilities`` listens to."""
    caps = sorted(set(capabilities))
    subsets = [c for n in range(len(caps) + 1) for c in itertools.combinations(caps, n)]
    return sorted({queue_name(role, agent, sub) for role, agent in pairs for sub in subsets})


def job_key(run_id: str, task_id: str, dispatch: int) -> str:
    """The idempotency key of a task's dispatch: its job's lock and queueing lock."""
    return f"{run_id}/{task_id}/{dispatch}"


def sync_app(db: Database) -> Any:
    """A procrastinate app on the workspace's own connection pool, for deferring from synchronous code."""
    procrastinate = procrastinate_module()
    app = procrastinate.App(connector=procrastinate.SyncPsycopgConnector())
    app.open(db.pool)
    return app


def async_app(db: Database, max_size: int) -> Any:
    """A procrastinate app with an async pool of its own (``coord worker``'s event loop)."""
    procrastinate = procrastinate_module()
    kwargs = {k: v for k, v in db.connect_kwargs().items() if k != "autocommit"}  # procrastinate sets it
    return procrastinate.App(connector=procrastinate.PsycopgConnector(
        conninfo=db.settings.url, kwargs=kwargs, min_size=1, max_size=max_size, timeout=30))
