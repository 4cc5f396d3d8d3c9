"""The coordinator's side: hand a task to the queue and wait for the record a worker stored.

A dispatch is keyed by (run, task, dispatch). Before queueing, the dispatcher looks for a record a
worker already stored under that key (a coordinator restarted after the worker finished) and for a
job of that key still queued or running (restarted while a worker had it): it takes the one and
waits for the other instead of queueing the task twice. One thread per process watches the jobs
the pool's threads wait for (one query for all of them); when a job ends, its thread takes the
stored record — exactly once, as the pool hands each in-flight task's record to the graph once.

With ``workers: {git_remote: …}`` some workers work through git: a task whose work cannot travel that way
is queued as needing :data:`~coordinator.engine.workers.git_layout.WORKSPACE_FILES`, and a record that says
its branch was pushed (``metrics.pushed``) has the branch fetched into the workspace's repository before
the record is handed on, so gates and the merge after them find it as they find a local worktree's branch.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from coordinator.core.events import now_iso
from coordinator.core.roles import RoleDefinition
from coordinator.core.state import TaskRecord
from coordinator.core.workspace import Workspace
from coordinator.engine.task_job import TaskJob
from coordinator.engine.workers import queue, registry
from coordinator.engine.workers.git_layout import implicit_requires, take_pushed_branch

log = logging.getLogger(__name__)

POLL_S = 0.05
"""How often the watcher reads the status of the jobs being waited for."""
ENDED = frozenset({"succeeded", "failed", "cancelled", "aborted"})
"""Job statuses after which no worker is doing the job."""


class QueueDispatcher:
    """Dispatches a run's tasks to the workspace's workers (one per task pool)."""

    def __init__(self, root: Path, run_id: str, roles: dict[str, RoleDefinition], git_remote: str | None) -> None:
        db = Workspace(root).database
        assert db is not None  # workers_settings refused workers without a database
        self.db, self.run_id, self.roles = db, run_id, roles
        self.root, self.git_remote = root, git_remote
        queue.install(db)
        self.app = queue.sync_app(db)
        self._cond = threading.Condition()
        self._watched: dict[int, str] = {}
        self._watcher: threading.Thread | None = None

    def run(self, job: TaskJob, cancel: threading.Event,
            progress: Callable[[str, float | None], None]) -> TaskRecord | None:
        """Queue ``job`` (unless its key is queued or finished already) and return the record a worker stored;
        None when ``cancel`` is set first (the job is then asked to abort)."""
        task = job.task
        stored = registry.result(self.db, self.run_id, task.id, job.dispatch)
        if stored is not None:  # finished by a worker before this process took over the run
            return self._taken(stored)
        job_id = self._queue(job)
        requires = self._requires(job)
        needs = f" with {', '.join(requires)}" if requires else ""
        progress(f"queued for a worker{needs} (job {job_id})", None)
        status = self._wait(job_id, cancel)
        if status is None:
            self.app.job_manager.cancel_job_by_id(job_id, abort=True)
            return None
        stored = registry.result(self.db, self.run_id, task.id, job.dispatch)
        if stored is not None:
            return self._taken(stored)
        return TaskRecord(status="failed", finished_at=now_iso(), attempts=job.earlier_attempts + 1,
                          error=f"the worker's job {job_id} ended {status} without a result (see the worker's log); "
                                "`coord resume` dispatches the task again")

    def _requires(self, job: TaskJob) -> list[str]:
        """The task's ``requires:`` and what its files' way into the workspace adds (its queue's key)."""
        task = job.task
        extra = implicit_requires(self.git_remote, task, self.roles[task.role])
        return list(dict.fromkeys([*task.requires, *extra]))

    def _taken(self, record: TaskRecord) -> TaskRecord:
        """A worker's record, its pushed branch (if any) fetched into the workspace's repository."""
        if self.git_remote is None:
            return record
        return take_pushed_branch(self.root, self.git_remote, record)

    def _queue(self, job: TaskJob) -> int:
        """The id of the job carrying ``job``: one already queued or running under its key, else a new one."""
        task = job.task
        key = queue.job_key(self.run_id, task.id, job.dispatch)
        role = self.roles[task.role]
        with self.db.connection() as conn:
            row = conn.execute("SELECT id FROM procrastinate_jobs WHERE lock = %s AND status IN ('todo', 'doing') "
                               "ORDER BY id DESC LIMIT 1", (key,)).fetchone()
        if row is not None:
            job_id = int(row[0])
        else:
            deferrer = self.app.configure_task(queue.TASK_NAME, queue=queue.queue_name(task.role, role.agent,
                                                                                        self._requires(job)),
                                               lock=key, queueing_lock=key)
            try:
                job_id = int(deferrer.defer(run_id=self.run_id, job=job.to_json()))
            except queue.procrastinate_module().exceptions.AlreadyEnqueued:  # queued meanwhile: take that one
                return self._queue(job)
        registry.record_dispatch(self.db, self.run_id, task.id, job.dispatch, job_id, task.role, role.agent,
                                 self._requires(job))
        return job_id

    def _wait(self, job_id: int, cancel: threading.Event) -> str | None:
        """Block until the job ended (its status) or ``cancel`` is set (None)."""
        with self._cond:
            self._watched[job_id] = "todo"
            if self._watcher is None:
                self._watcher = threading.Thread(target=self._watch, name="coord-queue-watch", daemon=True)
                self._watcher.start()
            try:
                while self._watched[job_id] not in ENDED:
                    if cancel.is_set():
                        return None
                    self._cond.wait(0.2)
                return self._watched[job_id]
            finally:
                del self._watched[job_id]

    def _watch(self) -> None:
        """Read the status of every watched job, wake the threads whose job ended; stop when none is left."""
        while True:
            with self._cond:
                ids = list(self._watched)
                if not ids:
                    self._watcher = None
                    return
            try:
                statuses = registry.job_statuses(self.db, ids)
            except Exception as e:  # the server is away for a moment: the pool's reconnecting check retries
                log.warning("reading the queue failed (%s); retrying", e)
                statuses = {}
            with self._cond:
                changed = False
                for job_id, status in statuses.items():
                    if job_id in self._watched and self._watched[job_id] != status:
                        self._watched[job_id] = status
                        changed = changed or status in ENDED
                if changed:
                    self._cond.notify_all()
            threading.Event().wait(POLL_S)
