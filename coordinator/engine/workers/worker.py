"""``coord worker``: claim a workspace's queued tasks, run them as the task pool would, store the results.

A worker serves some roles and agents (all, unless it is told which) and offers capabilities; it
listens to the queues of every (role, agent) pair of the default roles (as ``coord.yaml`` binds
them) and of the workspace's unfinished runs (looked up again every few seconds, so runs started
later are served too; a queue that appears later is polled, not LISTENed to) crossed with every subset of its
capabilities (:func:`coordinator.engine.workers.queue.queues_for`). procrastinate claims each job
atomically and keeps the worker's heartbeat; this module adds the run side:

- a task is run by :meth:`coordinator.engine.pool.TaskPool.perform` of a pool built for its run, the
  very function the coordinator's threads run it with: same events, record file, accept checks,
  retries, budget and ledger;
- before running, the worker looks for a record stored under the task's key (an earlier worker
  finished it, then died before its job was marked done): it is not run twice;
- the record is stored in ``coord_task_results`` (first one stands), where the coordinator takes it;
- every lease/3 seconds the worker beats its heartbeat and puts the jobs of workers silent for a lease
  back in the queue (``get_stalled_jobs`` + ``retry_job``: the same job, the same key);
- SIGINT / SIGTERM: no new task is claimed, the tasks in hand are finished, the worker says it stopped.
  A second signal stops it at once; its tasks go back to the queue after the lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from coordinator.core.errors import UsageError
from coordinator.core.events import EventLog
from coordinator.core.plan import CAPABILITY, DEFAULT_ROLES
from coordinator.core.run_store import load_run_plan, run_records
from coordinator.core.workspace import Workspace
from coordinator.engine.accept import accept_failures
from coordinator.engine.budget import RunBudget
from coordinator.engine.pool import TaskPool
from coordinator.engine.stores import open_ledger
from coordinator.engine.task_job import TaskJob
from coordinator.engine.workers import queue, registry
from coordinator.engine.workers.settings import WorkerSettings, workers_settings
from roles.definitions import load_workspace_roles, resolve_roles, roles_for

log = logging.getLogger(__name__)

FETCH_POLL_S = 0.25
"""How often an idle worker looks for jobs besides being woken by NOTIFY (a queue it began to serve later
has no LISTEN yet)."""
REFRESH_S = 2.0
"""How often the worker looks for runs (role and agent pairs) it has not served yet."""
ABORT_POLL_S = 0.5
UNFINISHED = ("running", "waiting")


@dataclass(frozen=True)
class WorkerOptions:
    """What a worker serves and offers."""

    roles: tuple[str, ...] = ()
    """Roles it takes tasks of (empty: every role)."""
    agents: tuple[str, ...] = ()
    """Agents whose tasks it takes (empty: every agent)."""
    capabilities: tuple[str, ...] = ()
    """What it offers to tasks that ``requires`` something (``gpu``, ``claude-cli``)."""
    concurrency: int = 1
    """Tasks it runs at once."""
    name: str | None = None
    """How it is listed and named in events (default ``host:pid``)."""


Note = Callable[[str], None]


def check_options(options: WorkerOptions) -> None:
    """Refuse capability names a plan could not require, and more than the worker can listen for."""
    for cap in options.capabilities:
        if not CAPABILITY.fullmatch(cap):
            raise UsageError(f"--capabilities: {cap!r} is not a capability name (lower-case letters, digits, "
                             "'-', '_' and '.')")
    if len(set(options.capabilities)) > queue.MAX_CAPABILITIES:
        raise UsageError(f"--capabilities: at most {queue.MAX_CAPABILITIES} (a worker listens to every subset)")
    if options.concurrency < 1:
        raise UsageError("--concurrency must be at least 1")


def _settings(ws: Workspace) -> WorkerSettings:
    if ws.database is None:
        raise UsageError("coord worker needs the workspace's state in a Postgres database: set `database:` in "
                         "coord.yaml, COORD_DATABASE_URL or --db (docs/workers.md)")
    settings = workers_settings(ws.root)
    if settings is None:
        raise UsageError(f"workers are off in this workspace: add `workers: true` to {ws.config} so that runs "
                         "dispatch their tasks to workers (docs/workers.md)")
    return settings


class _Runs:
    """A task pool per run (its plan's roles, event log and budget), built on first use."""

    def __init__(self, ws: Workspace, name: str) -> None:
        self.ws, self.name = ws, name
        self._pools: dict[str, TaskPool] = {}
        self._lock = threading.Lock()

    def pool(self, run_id: str) -> TaskPool:
        with self._lock:
            found = self._pools.get(run_id)
            if found is None:
                plan = load_run_plan(self.ws, run_id)
                roles = roles_for(self.ws, plan)
                budget = RunBudget(open_ledger(self.ws), run_id, plan.budget, roles)
                found = self._pools[run_id] = TaskPool(
                    workspace=self.ws.root, run_id=run_id, events=EventLog.of(self.ws, run_id), roles=roles,
                    accept=functools.partial(accept_failures, self.ws.root), spend_for=budget.for_task,
                    tags={"worker": self.name}, use_workers=False)
            return found


def _pairs(ws: Workspace, options: WorkerOptions) -> set[tuple[str, str]]:
    """(role, agent) of the default roles as ``coord.yaml`` binds them and of every unfinished run's roles,
    those this worker serves."""
    found = resolve_roles(DEFAULT_ROLES, load_workspace_roles(ws.config), str(ws.config))
    out = {(r.name, r.agent) for r in found.values()}
    for record in run_records(ws):
        if record.get("phase") not in UNFINISHED:
            continue
        try:
            roles = roles_for(ws, load_run_plan(ws, record["run_id"]))
        except UsageError as e:  # a run whose plan cannot be read is not served; say why once
            log.warning("run %s is not served: %s", record["run_id"], e)
            continue
        out |= {(r.name, r.agent) for r in roles.values()}
    return {(role, agent) for role, agent in out
            if (not options.roles or role in options.roles) and (not options.agents or agent in options.agents)}


def serve(ws: Workspace, options: WorkerOptions, note: Note = lambda text: None) -> None:
    """Run a worker until SIGINT/SIGTERM (blocks)."""
    check_options(options)
    settings = _settings(ws)
    db = ws.database
    assert db is not None
    queue.install(db)
    name = options.name or f"{socket.gethostname()}:{os.getpid()}"
    caps = sorted(set(options.capabilities))
    worker_id = registry.register(db, name, socket.gethostname(), os.getpid(), sorted(options.roles),
                                  sorted(options.agents), caps, options.concurrency, settings.lease_s)
    runs = _Runs(ws, name)
    app = queue.async_app(db, max_size=options.concurrency + 4)

    def run_task(context: Any, run_id: str, job: dict[str, Any]) -> None:
        _run_one(ws, runs, worker_id, name, context, run_id, TaskJob.from_json(job), note)

    app.task(name=queue.TASK_NAME, pass_context=True)(run_task)

    queues = queue.queues_for(_pairs(ws, options), caps)
    note(f"worker {name} started: roles {', '.join(options.roles) or 'all'}, agents "
         f"{', '.join(options.agents) or 'all'}, capabilities {', '.join(caps) or 'none'}, "
         f"concurrency {options.concurrency}, lease {settings.lease_s:g}s")
    try:
        asyncio.run(_main(app, ws, options, settings, queues, worker_id, name))
    finally:
        with contextlib.suppress(Exception):  # the server may be the reason it stops
            registry.unregister(db, worker_id)
        note(f"worker {name} stopped")


async def _main(app: Any, ws: Workspace, options: WorkerOptions, settings: WorkerSettings, queues: list[str],
                worker_id: int, name: str) -> None:
    async with app.open_async():
        keeper = asyncio.create_task(_keep_up(app, ws, options, settings, queues, worker_id))
        try:
            await app.run_worker_async(
                queues=queues, name=name, concurrency=options.concurrency, wait=True,
                update_heartbeat_interval=settings.heartbeat_s, stalled_worker_timeout=settings.lease_s,
                fetch_job_polling_interval=FETCH_POLL_S, abort_job_polling_interval=ABORT_POLL_S,
                listen_notify=True, install_signal_handlers=True)
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper


async def _keep_up(app: Any, ws: Workspace, options: WorkerOptions, settings: WorkerSettings, queues: list[str],
                   worker_id: int) -> None:
    """Serve new runs' queues, beat coord's heartbeat, put dead workers' jobs back in the queue."""
    db = ws.database
    assert db is not None
    caps = sorted(set(options.capabilities))
    last_beat = 0.0
    while True:
        try:
            pairs = await asyncio.to_thread(_pairs, ws, options)
            queues[:] = queue.queues_for(pairs, caps)  # the list procrastinate fetches with (same object)
            if time.monotonic() - last_beat >= settings.heartbeat_s:
                last_beat = time.monotonic()
                await asyncio.to_thread(registry.heartbeat, db, worker_id)
                await _requeue_stalled(app, settings)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the server away for a moment: try again at the next round
            log.warning("worker upkeep failed (%s); retrying", e)
        await asyncio.sleep(min(REFRESH_S, settings.heartbeat_s))


async def _requeue_stalled(app: Any, settings: WorkerSettings) -> None:
    """Jobs of workers whose heartbeat stopped a lease ago go back to the queue as they are (same key)."""
    stalled = await app.job_manager.get_stalled_jobs(task_name=queue.TASK_NAME,
                                                     seconds_since_heartbeat=settings.lease_s)
    for job in stalled:
        try:
            await app.job_manager.retry_job(job)
        except Exception as e:  # another worker put it back first
            log.debug("job %s was not retried: %s", job.id, e)
            continue
        log.warning("job %s (%s) of a silent worker is back in the queue", job.id, job.queueing_lock)


def _run_one(ws: Workspace, runs: _Runs, worker_id: int, name: str, context: Any, run_id: str, job: TaskJob,
             note: Note) -> None:
    """Run one claimed task (a procrastinate job) and store its record."""
    db = ws.database
    assert db is not None
    task = job.task
    if registry.result(db, run_id, task.id, job.dispatch) is not None:
        note(f"{run_id}/{task.id}#{job.dispatch}: already finished by another worker; not run again")
        return
    what = f"{run_id}/{task.id}"
    registry.doing(db, worker_id, what, True)
    cancel, done = threading.Event(), threading.Event()

    def watch_abort() -> None:  # the coordinator gave up on it (the task's timeout): stop the driver
        while not done.wait(ABORT_POLL_S):
            if context.should_abort():
                cancel.set()
                return

    threading.Thread(target=watch_abort, name="coord-abort-watch", daemon=True).start()
    started = time.time()
    note(f"{what}#{job.dispatch}: started")
    try:
        record = runs.pool(run_id).perform(job, cancel)
        if record is None:
            note(f"{what}#{job.dispatch}: stopped (the run gave up on it)")
            raise queue.procrastinate_module().exceptions.JobAborted()
        stored = registry.put_result(db, run_id, task.id, job.dispatch, record, name, context.job.id, started)
        note(f"{what}#{job.dispatch}: {record.get('status')}" + ("" if stored else " (a result was stored first)"))
    finally:
        done.set()
        registry.doing(db, worker_id, what, False)
