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

With ``--git URL`` (:class:`~.git_layout.GitLayout`) the worker serves the workspace from a clone of its
own: assignments whose work lands on a branch run there and their branch is pushed (:mod:`.git_layout`);
it offers :data:`~.git_layout.WORKSPACE_FILES` — the steps and other tasks that write the workspace's
files — only with ``--shared-workspace PATH``, and runs those in PATH.
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
from coordinator.core.events import EventLog, now_iso
from coordinator.core.plan import CAPABILITY, DEFAULT_ROLES
from coordinator.core.run_store import load_run_plan, run_records
from coordinator.core.state import TaskRecord
from coordinator.core.workspace import Workspace
from coordinator.engine.accept import accept_failures
from coordinator.engine.budget import RunBudget
from coordinator.engine.pool import TaskPool
from coordinator.engine.stores import open_ledger
from coordinator.engine.task_job import TaskJob
from coordinator.engine.workers import queue, registry
from coordinator.engine.workers.git_layout import (
    WORKSPACE_FILES,
    Checkout,
    GitLayout,
    open_checkout,
    publish,
    refresh,
    travels_by_git,
)
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
    git: GitLayout | None = None
    """Work through a clone of its own instead of the workspace's path (``coord worker --git URL``)."""


Note = Callable[[str], None]


def check_options(options: WorkerOptions) -> None:
    """Refuse capability names a plan could not require, and more than the worker can listen for."""
    for cap in options.capabilities:
        if not CAPABILITY.fullmatch(cap):
            raise UsageError(f"--capabilities: {cap!r} is not a capability name (lower-case letters, digits, "
                             "'-', '_' and '.')")
    if WORKSPACE_FILES in options.capabilities:
        raise UsageError(f"--capabilities: {WORKSPACE_FILES!r} is coord's own: a worker in the workspace offers it, "
                         "a worker with --git offers it with --shared-workspace PATH")
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


@dataclass
class _Places:
    """Where this worker runs tasks: the workspace's path (``shared``), and a clone of its own with ``--git``."""

    ws: Workspace
    """Where its settings come from: the workspace, or its clone."""
    shared: _Runs | None
    clone: _Runs | None = None
    checkout: Checkout | None = None


def _places(ws: Workspace | None, options: WorkerOptions, name: str) -> tuple[_Places, WorkerSettings]:
    """The worker's places and the workspace's workers setting (a ``--git`` worker's clone made or fetched)."""
    if options.git is None:
        if ws is None:
            raise UsageError("coord worker needs the workspace (-w PATH) or a clone of it (--git URL)")
        return _Places(ws, _Runs(ws, name)), _settings(ws)
    checkout = open_checkout(options.git)
    clone = Workspace.at(checkout.root)
    settings = _settings(clone)
    if settings.git_remote is None:
        raise UsageError(f"coord worker --git: {clone.config} (as committed in {options.git.url}) does not say "
                         "`workers: {git_remote: origin}`, so its runs do not keep the tasks that need the "
                         "workspace's files from a worker with a clone of its own; set it, commit and push "
                         "(docs/workers.md)")
    shared = options.git.shared_workspace
    return _Places(clone, _Runs(Workspace.at(shared), name) if shared else None, _Runs(clone, name),
                   checkout), settings


def serve(ws: Workspace | None, options: WorkerOptions, note: Note = lambda text: None) -> None:
    """Run a worker until SIGINT/SIGTERM (blocks). ``ws`` is the workspace's path; None with ``--git``."""
    check_options(options)
    name = options.name or f"{socket.gethostname()}:{os.getpid()}"
    places, settings = _places(ws, options, name)
    db = places.ws.database
    assert db is not None
    queue.install(db)
    caps = sorted(set(options.capabilities))
    if settings.git_remote is not None and places.shared is not None:
        caps = sorted({*caps, WORKSPACE_FILES})  # it runs in the workspace's path: steps too
    worker_id = registry.register(db, name, socket.gethostname(), os.getpid(), sorted(options.roles),
                                  sorted(options.agents), caps, options.concurrency, settings.lease_s)
    app = queue.async_app(db, max_size=options.concurrency + 4)

    def run_task(context: Any, run_id: str, job: dict[str, Any]) -> None:
        _run_one(places, worker_id, name, context, run_id, TaskJob.from_json(job), note)

    app.task(name=queue.TASK_NAME, pass_context=True)(run_task)

    queues = queue.queues_for(_pairs(places.ws, options), caps)
    where = "" if places.checkout is None else (
        f", clone {places.checkout.root} of {options.git.url if options.git else '?'} on {places.checkout.branch}")
    note(f"worker {name} started: roles {', '.join(options.roles) or 'all'}, agents "
         f"{', '.join(options.agents) or 'all'}, capabilities {', '.join(caps) or 'none'}, "
         f"concurrency {options.concurrency}, lease {settings.lease_s:g}s{where}")
    try:
        asyncio.run(_main(app, places.ws, options, settings, queues, caps, worker_id, name))
    finally:
        with contextlib.suppress(Exception):  # the server may be the reason it stops
            registry.unregister(db, worker_id)
        note(f"worker {name} stopped")


async def _main(app: Any, ws: Workspace, options: WorkerOptions, settings: WorkerSettings, queues: list[str],
                caps: list[str], worker_id: int, name: str) -> None:
    async with app.open_async():
        keeper = asyncio.create_task(_keep_up(app, ws, options, settings, queues, caps, worker_id))
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
                   caps: list[str], worker_id: int) -> None:
    """Serve new runs' queues, beat coord's heartbeat, put dead workers' jobs back in the queue."""
    db = ws.database
    assert db is not None
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


def _run_one(places: _Places, worker_id: int, name: str, context: Any, run_id: str, job: TaskJob,
             note: Note) -> None:
    """Run one claimed task (a procrastinate job) and store its record."""
    db = places.ws.database
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
        record = _perform(places, run_id, job, cancel)
        if record is None:
            note(f"{what}#{job.dispatch}: stopped (the run gave up on it)")
            raise queue.procrastinate_module().exceptions.JobAborted()
        stored = registry.put_result(db, run_id, task.id, job.dispatch, record, name, context.job.id, started)
        note(f"{what}#{job.dispatch}: {record.get('status')}" + ("" if stored else " (a result was stored first)"))
    finally:
        done.set()
        registry.doing(db, worker_id, what, False)


def _perform(places: _Places, run_id: str, job: TaskJob, cancel: threading.Event) -> TaskRecord | None:
    """Run the task where its work belongs: in the clone (then push its branch) when it travels by git,
    else in the workspace's path."""
    if places.clone is not None and places.checkout is not None:
        pool = places.clone.pool(run_id)
        if travels_by_git(job.task, pool.roles[job.task.role]):
            refresh(places.checkout)
            record = pool.perform(job, cancel)
            return None if record is None else publish(places.checkout, record, socket.gethostname())
    if places.shared is None:  # routing keeps these from a --git worker; a job queued by an older coord
        return TaskRecord(status="failed", finished_at=now_iso(), attempts=job.earlier_attempts + 1, error=(
            f"task {job.task.id} writes the workspace's files (it is not an assignment whose work lands on a git "
            "branch), and this worker has only a clone of the workspace (--git) without --shared-workspace"))
    return places.shared.pool(run_id).perform(job, cancel)
