"""coord's own rows beside the queue: live workers, dispatches (key → job) and results (key → record).

A result is stored once per key (run, task, dispatch): the first worker to finish writes it, a second
one (a worker that was taken for dead but was not) finds it there and writes nothing. The coordinator
takes a task's result from here; the record file under ``.coord/runs/<run>/results/`` is written too,
as without workers, so a restarted coordinator recovers it exactly as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from coordinator.core.database import Database
from coordinator.core.state import TaskRecord
from coordinator.engine.workers.git_layout import WORKSPACE_FILES


@dataclass(frozen=True)
class WorkerRow:
    """A worker as ``coord workers`` lists it."""

    id: int
    name: str
    host: str
    pid: int
    roles: list[str]
    """Roles it serves (empty: every role)."""
    agents: list[str]
    """Agents it serves (empty: every agent)."""
    capabilities: list[str]
    concurrency: int
    current: list[str]
    """``run/task`` of each task it is doing now."""
    started_at: datetime
    last_heartbeat: datetime
    seconds_since_heartbeat: float
    lease_s: float

    @property
    def live(self) -> bool:
        """Its last heartbeat is within its lease."""
        return self.seconds_since_heartbeat < self.lease_s

    def serves(self, role: str, agent: str, requires: list[str]) -> bool:
        """Whether it may be handed a task of ``role`` played by ``agent`` that needs ``requires``."""
        return (not self.roles or role in self.roles) and (not self.agents or agent in self.agents) \
            and set(requires) <= set(self.capabilities)


def register(db: Database, name: str, host: str, pid: int, roles: list[str], agents: list[str],
             capabilities: list[str], concurrency: int, lease_s: float) -> int:
    """Add a starting worker; its id."""
    with db.connection() as conn:
        row = conn.execute("INSERT INTO coord_workers (name, host, pid, roles, agents, capabilities, concurrency, "
                           "lease_s) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                           (name, host, pid, roles, agents, capabilities, concurrency, lease_s)).fetchone()
    return int(row[0])


def heartbeat(db: Database, worker_id: int) -> None:
    """The worker is alive."""
    with db.connection() as conn:
        conn.execute("UPDATE coord_workers SET last_heartbeat = now() WHERE id = %s", (worker_id,))


def doing(db: Database, worker_id: int, what: str, started: bool) -> None:
    """The worker started (or ended) ``what`` (``run/task``)."""
    sql = ("UPDATE coord_workers SET current = array_append(current, %s), last_heartbeat = now() WHERE id = %s"
           if started else "UPDATE coord_workers SET current = array_remove(current, %s) WHERE id = %s")
    with db.connection() as conn:
        conn.execute(sql, (what, worker_id))


def unregister(db: Database, worker_id: int) -> None:
    """The worker stopped cleanly."""
    with db.connection() as conn:
        conn.execute("UPDATE coord_workers SET stopped_at = now(), current = '{}' WHERE id = %s", (worker_id,))


def workers(db: Database, *, include_silent: bool = True) -> list[WorkerRow]:
    """Workers that have not stopped, oldest first (silent ones too: killed, or cut off)."""
    with db.connection() as conn:
        rows = conn.execute("SELECT id, name, host, pid, roles, agents, capabilities, concurrency, current, "
                            "started_at, last_heartbeat, EXTRACT(EPOCH FROM now() - last_heartbeat), lease_s "
                            "FROM coord_workers WHERE stopped_at IS NULL ORDER BY id").fetchall()
    out = [WorkerRow(int(r[0]), r[1], r[2], int(r[3]), list(r[4]), list(r[5]), list(r[6]), int(r[7]), list(r[8]),
                     r[9], r[10], float(r[11]), float(r[12])) for r in rows]
    return out if include_silent else [w for w in out if w.live]


def record_dispatch(db: Database, run_id: str, task: str, dispatch: int, job_id: int, role: str, agent: str,
                    requires: list[str]) -> None:
    """Which job carries a task's dispatch (kept from the first time it was queued)."""
    with db.connection() as conn:
        conn.execute("INSERT INTO coord_dispatches (run_id, task, dispatch, job_id, role, agent, requires) "
                     "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                     (run_id, task, dispatch, job_id, role, agent, requires))


def job_statuses(db: Database, job_ids: list[int]) -> dict[int, str]:
    """The status of each job."""
    with db.connection() as conn:
        rows = conn.execute("SELECT id, status FROM procrastinate_jobs WHERE id = ANY(%s)", (job_ids,)).fetchall()
    return {int(i): str(s) for i, s in rows}


def put_result(db: Database, run_id: str, task: str, dispatch: int, record: TaskRecord, worker: str,
               job_id: int | None, started_at: float) -> bool:
    """Store a finished task's record; False when one was stored already (the first one stands)."""
    with db.connection() as conn:
        cur = conn.execute("INSERT INTO coord_task_results (run_id, task, dispatch, record, worker, job_id, "
                           "started_at) VALUES (%s, %s, %s, %s, %s, %s, to_timestamp(%s)) ON CONFLICT DO NOTHING",
                           (run_id, task, dispatch, orjson.dumps(record).decode(), worker, job_id, started_at))
        return bool(cur.rowcount)


def result(db: Database, run_id: str, task: str, dispatch: int) -> TaskRecord | None:
    """The stored record of a task's dispatch, if a worker finished it."""
    with db.connection() as conn:
        row = conn.execute("SELECT record FROM coord_task_results WHERE run_id = %s AND task = %s AND dispatch = %s",
                           (run_id, task, dispatch)).fetchone()
    if row is None:
        return None
    record: TaskRecord = orjson.loads(row[0]) if isinstance(row[0], str | bytes) else row[0]
    return record


def waiting(db: Database, run_id: str) -> dict[str, dict[str, Any]]:
    """Each dispatched task of a run no worker has finished: its job's status, what it needs, and who does it."""
    with db.connection() as conn:
        rows = conn.execute(
            "SELECT DISTINCT ON (d.task) d.task, d.role, d.agent, d.requires, j.status, "
            "EXTRACT(EPOCH FROM clock_timestamp() - d.dispatched_at) "
            "FROM coord_dispatches d JOIN procrastinate_jobs j ON j.id = d.job_id "
            "WHERE d.run_id = %s AND NOT EXISTS (SELECT 1 FROM coord_task_results r WHERE r.run_id = d.run_id AND "
            "r.task = d.task AND r.dispatch = d.dispatch) ORDER BY d.task, d.dispatch DESC", (run_id,)).fetchall()
    live = workers(db, include_silent=False)
    out: dict[str, dict[str, Any]] = {}
    for task, role, agent, requires, status, age in rows:
        doers = [w.name for w in live if f"{run_id}/{task}" in w.current]
        able = [w for w in live if w.serves(role, agent, list(requires))]
        out[task] = {"job": status, "role": role, "agent": agent, "requires": list(requires),
                     "worker": doers[0] if doers else None, "able_workers": len(able), "waited_s": float(age)}
    return out


def reason(entry: dict[str, Any]) -> str:
    """Why a dispatched task has not finished, in words (``coord status``)."""
    if entry["worker"]:
        return f"running on worker {entry['worker']}"
    needs = f" with {', '.join(entry['requires'])}" if entry["requires"] else ""
    if entry["able_workers"] == 0:
        why = f"waits for a worker{needs}: none running serves {entry['role']}/{entry['agent']}{needs}"
        if WORKSPACE_FILES in entry["requires"]:
            why += (" (its work is written into the workspace's files, not onto a git branch: only a worker "
                    "in the workspace's path takes it — `coord worker`, or `coord worker --git URL "
                    "--shared-workspace PATH`)")
        return why
    return f"queued for a worker{needs} ({entry['able_workers']} live can take it; waited {entry['waited_s']:.0f}s)"
