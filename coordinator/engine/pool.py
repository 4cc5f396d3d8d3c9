"""Run tasks on worker threads and hand finished ones back to the graph.

The graph dispatches ready tasks here and then waits for the *first* to
finish, so a short task's dependents start without waiting for a long
sibling (no superstep barrier between unrelated tasks).

Exactly-once effects: a worker appends the task's final record to the run's
results log (``.coord/runs/<run>/results.jsonl``, :mod:`coordinator.engine.result_log`)
*before* reporting it. If the process dies after that write but before the
checkpoint holds the result, the resumed run finds the record and takes it
instead of running the task again.

With workers configured (``workers:`` in ``coord.yaml``, :mod:`coordinator.engine.workers`) a
task is not run here: the pool thread hands its :class:`TaskJob` to the queue and waits for the
record a ``coord worker`` wrote. The worker runs the task with :meth:`TaskPool.perform`, the
very function the pool runs it with when there are no workers.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import queue
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from coordinator.core import refs
from coordinator.core.events import EventKind, EventLog, now_iso
from coordinator.core.feedback import Feedback
from coordinator.core.llm import SpendGuard
from coordinator.core.plan import CompiledTask
from coordinator.core.ports import DRIVERS, DriverContext, TaskOutcome, driver_of
from coordinator.core.roles import RoleDefinition
from coordinator.core.state import FeedbackRecord, TaskRecord
from coordinator.core.step_run import fingerprint
from coordinator.engine.result_log import ResultLog, dispatch_stem
from coordinator.engine.session_driver import driving
from coordinator.engine.task_job import TaskJob
from coordinator.engine.workers.settings import Dispatcher, dispatcher_for
from roles.providers.secrets import redact

log = logging.getLogger(__name__)

AcceptFn = Callable[[CompiledTask, TaskOutcome], list[str]]
"""Runs a task's accept checks after its driver finished; returns failure messages."""


STOP_GRACE_S = 15.0
"""What ending an attempt's process group may take, beyond the attempt's timeout."""


@dataclass
class _Inflight:
    job: TaskJob
    started: float
    cancel: threading.Event
    deadline: float | None

    @property
    def task(self) -> CompiledTask:
        return self.job.task

    @property
    def dispatch(self) -> int:
        return self.job.dispatch


@dataclass
class TaskPool:
    """Worker threads for one process; lives in the run context, never in state."""

    workspace: Path
    run_id: str
    events: EventLog
    roles: dict[str, RoleDefinition]
    accept: AcceptFn
    progress: Callable[[str, str, float | None], None] = lambda task, msg, frac: None
    spend_for: Callable[[str, str, str], SpendGuard] | None = None
    """(task, role, agent) → the task's ledger recorder and budget check (coordinator/budget.py)."""
    tags: dict[str, Any] = field(default_factory=dict)
    """Extra fields of the task_started/finished events (a worker names itself)."""
    use_workers: bool = True
    """Hand tasks to the workspace's workers when it has them configured (a worker's own pool: False)."""
    _remote: Dispatcher | None = None
    _done: queue.Queue[tuple[str, TaskRecord]] = field(default_factory=queue.Queue)
    _inflight: dict[str, _Inflight] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _uncollected: set[str] = field(default_factory=set)
    _workers: _Workers = field(default_factory=lambda: _Workers())
    results: ResultLog = field(init=False)

    def __post_init__(self) -> None:
        self.results = ResultLog(self.workspace / ".coord" / "runs" / self.run_id)
        self._remote = dispatcher_for(self.workspace, self.run_id, self.roles) if self.use_workers else None

    def running(self) -> set[str]:
        """Ids of tasks whose workers have not reported yet."""
        with self._lock:
            return set(self._inflight)

    def known(self) -> set[str]:
        """Running tasks plus finished ones :meth:`wait_any` has not handed over yet."""
        with self._lock:
            return set(self._inflight) | set(self._uncollected)

    def busy(self) -> bool:
        """True while a task runs or a finished one has not been collected by :meth:`wait_any`."""
        with self._lock:
            return bool(self._inflight) or not self._done.empty()

    def submit(self, task: CompiledTask, dispatch: int, feedback: list[str] | None = None,
               earlier_attempts: int = 0, review: FeedbackRecord | None = None,
               upstream: dict[str, Any] | None = None, inputs: tuple[str, ...] = (),
               digests: tuple[tuple[str, str, str], ...] = (), earlier_cost: float = 0.0) -> None:
        """Start a task (or take its durable record if an earlier process finished it).

        ``feedback``/``review``: why a gate (or a person) sent the task back, as text and as data;
        the driver gets both as one :class:`~coordinator.core.feedback.Feedback`.
        ``earlier_attempts``: attempts of earlier dispatches, so the attempt count covers every run.
        ``upstream``: metrics of the upstream tasks its ``${task.metric}`` references name;
        ``inputs``: the artifacts of the tasks it needs.
        """
        deadline = time.monotonic() + self._time_allowed(task) if task.timeout else None
        job = TaskJob(task, dispatch, tuple(feedback or ()), earlier_attempts, review, dict(upstream or {}),
                      tuple(inputs), earlier_cost, tuple(digests))
        entry = _Inflight(job, time.monotonic(), threading.Event(), deadline)
        with self._lock:
            if task.id in self._inflight:
                return
            self._inflight[task.id] = entry
        self._workers.run(functools.partial(self._work, entry))

    def wait_any(self, poll: float = 0.5, *, deadline: float | None = None,
                 wake: Callable[[], bool] | None = None) -> dict[str, TaskRecord]:
        """Block until at least one task finished (or timed out); return every finished record.

        Returns early (possibly with nothing) at the monotonic ``deadline`` or when ``wake()`` is true.
        """
        results: dict[str, TaskRecord] = {}
        if deadline is not None or wake is not None:
            poll = min(poll, 0.2)
        while not results:
            with self._lock:
                if not self._inflight:
                    break
            if (deadline is not None and time.monotonic() >= deadline) or (wake is not None and wake()):
                break
            try:
                tid, rec = self._done.get(timeout=poll)
                results[tid] = rec
            except queue.Empty:
                results.update(self._expire())
        # Completions already queued share one checkpointed step; waiting a few milliseconds for more
        # (to group a burst of short tasks) made a 1,000-task plan 1.6x slower on an idle machine.
        while True:
            try:
                tid, rec = self._done.get_nowait()
            except queue.Empty:
                break
            results[tid] = rec
        with self._lock:
            self._uncollected.difference_update(results)
        return results

    def _stops_itself(self, task: CompiledTask) -> bool:
        """Whether the task's driver ends each attempt at the timeout itself (a process group it kills)."""
        try:
            return bool(DRIVERS.get(driver_of(task, self.roles[task.role])).traits.stops_on_timeout)
        except (KeyError, LookupError, AttributeError):
            return False

    def _time_allowed(self, task: CompiledTask) -> float:
        """Seconds the pool lets a dispatch run. A driver that stops its own attempts gets the timeout for
        each of them, the backoffs between them and a grace for ending a process group; this deadline only
        catches one that did not. Work in this process gets the timeout once: it cannot be stopped, so a
        retry would run beside it."""
        assert task.timeout is not None
        if not self._stops_itself(task):
            return task.timeout
        attempts = task.retries + 1
        backoffs = sum(float(task.retry_backoff) * 2.0 ** k for k in range(task.retries))
        return float(task.timeout) * attempts + backoffs + STOP_GRACE_S * attempts

    def _expire(self) -> dict[str, TaskRecord]:
        now = time.monotonic()
        out: dict[str, TaskRecord] = {}
        with self._lock:
            late = [e for e in self._inflight.values() if e.deadline is not None and now > e.deadline]
            for entry in late:
                entry.cancel.set()
                del self._inflight[entry.task.id]
        for entry in late:
            if not self._stops_itself(entry.task):
                where = "the worker's process" if self._remote is not None else "coord's process"
                msg = (f"timed out after {entry.task.timeout:g}s; a step running in {where} cannot be stopped: "
                       "it was left running until that process exits and may still write its outputs (its "
                       "result is ignored; the task is not retried)")
            else:
                msg = (f"ran past the time its attempts were given ({round(now - entry.started)}s for "
                       f"{entry.task.retries + 1} attempt(s) of {entry.task.timeout:g}s) and was stopped; its log "
                       f"is under .coord/logs/{self.run_id}/")
            self.events.emit("task_timed_out", task=entry.task.id, dispatch=entry.dispatch, error=msg)
            out[entry.task.id] = TaskRecord(status="failed", error=msg, finished_at=now_iso(),
                                            duration_s=round(now - entry.started, 3))
        return out

    def _work(self, entry: _Inflight) -> None:
        try:
            self._run_entry(entry)
        except BaseException as e:  # the run must hear of it: a dead worker would leave it waiting forever
            where = self._keep_traceback(entry.task.id, entry.dispatch)
            log.error("task %s: coord failed while handling it (traceback in %s)", entry.task.id, where)
            record = TaskRecord(status="failed", error=f"{_worker_error(e)} (traceback in {where})",
                                finished_at=now_iso(),
                                duration_s=round(time.monotonic() - entry.started, 3))
            with self._lock:
                if self._inflight.get(entry.task.id) is not entry:
                    return
                del self._inflight[entry.task.id]
                self._uncollected.add(entry.task.id)
                self._done.put((entry.task.id, record))
            with contextlib.suppress(Exception):  # the display hears of it too (the event log may be what failed)
                self.events.emit("task_failed", task=entry.task.id, dispatch=entry.dispatch, error=record.get("error"))

    def _keep_traceback(self, task_id: str, dispatch: int) -> str:
        """Append the exception being handled to the task's log (the console gets one line); the log's
        path relative to the workspace, or the reason it could not be written."""
        path = self.workspace / ".coord" / "logs" / self.run_id / f"{dispatch_stem(task_id, dispatch)}.log"
        log.debug("task %s", task_id, exc_info=True)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as fh:
                fh.write(traceback.format_exc())
        except OSError as e:
            return f"(not kept: {e.strerror or e})"
        return path.relative_to(self.workspace).as_posix()

    def _run_entry(self, entry: _Inflight) -> None:
        task = entry.task
        if self._remote is not None:  # a worker does it; this thread waits for its record
            record = self._remote.run(entry.job, entry.cancel, functools.partial(self.progress, task.id))
            if record is not None:  # the worker logged how it ended; this run's display and notify: hear it too
                kind = "task_held" if record.get("held_by") else \
                    "task_finished" if record.get("status") == "done" else "task_failed"
                self.events.tell({"ts": now_iso(), "run": self.run_id, "task": task.id, "dispatch": entry.dispatch,
                                  "kind": kind, "error": record.get("error"), "attempts": record.get("attempts"),
                                  "held_by": record.get("held_by"), "reason": record.get("reason"),
                                  "duration_s": record.get("duration_s"), "by_worker": True})
        else:
            record = self.perform(entry.job, entry.cancel, entry.started)
        if record is None:
            return  # timed out: the graph already recorded the failure
        with self._lock:  # leave the in-flight set and queue the result atomically
            if self._inflight.get(task.id) is not entry:
                return
            del self._inflight[task.id]
            self._uncollected.add(task.id)
            self._done.put((task.id, record))

    def perform(self, job: TaskJob, cancel: threading.Event | None = None,
                started: float | None = None) -> TaskRecord | None:
        """Do a task here and write its record (or take the record an earlier process wrote); None when
        ``cancel`` was set meanwhile (it timed out). The pool's threads and ``coord worker`` both call this."""
        entry = _Inflight(job, time.monotonic() if started is None else started, cancel or threading.Event(), None)
        task = job.task
        record = self.results.get(task.id, job.dispatch)
        if record is not None and record.get("environment_fault"):  # the disk was full: run it again
            log.info("task %s failed on the machine's refusal before (%s); running it again", task.id,
                     record.get("error"))
            record = None
        if record is not None:
            record["recovered"] = True
            self.events.emit("task_recovered", task=task.id, dispatch=entry.dispatch,
                             status=record.get("status"), **self.tags)
        else:
            record = self._execute(entry)
            if entry.cancel.is_set():
                return None
            self.results.append(task.id, job.dispatch, record)
            kind: EventKind = "task_finished" if record["status"] == "done" else "task_failed"
            if record.get("held_by"):  # refused to start past the budget: held, not failed
                self.events.emit("task_held", task=task.id, dispatch=entry.dispatch, reason=record.get("reason"),
                                 held_by=record.get("held_by"))
            else:
                self.events.emit(kind, task=task.id, dispatch=entry.dispatch, attempts=record.get("attempts"),
                                 duration_s=record.get("duration_s"), error=record.get("error"),
                                 skipped_run=record.get("skipped_run", False), **self.tags)
        return record

    def _execute(self, entry: _Inflight) -> TaskRecord:
        role = self.roles[entry.task.role]
        job = entry.job
        task, missing = with_upstream(entry.task, job.upstream)
        if missing:
            return TaskRecord(status="failed", attempts=job.earlier_attempts + 1, started_at=now_iso(),
                              finished_at=now_iso(), driver=driver_of(task, role), agent=role.agent,
                              error="; ".join(missing))
        driver_name = driver_of(task, role)
        changed = _changed_inputs(self.workspace, job.digests)
        if changed:
            return TaskRecord(status="failed", attempts=job.earlier_attempts, started_at=now_iso(),
                              finished_at=now_iso(), driver=driver_name, agent=role.agent, error=changed)
        driver = DRIVERS.get(driver_name)()
        started_iso = now_iso()
        outcome = TaskOutcome(status="failed", error="not run")
        attempt = 0
        spent = 0.0  # what every attempt recorded, not only the last one
        while True:
            attempt += 1
            self.events.emit("task_started", task=task.id, dispatch=entry.dispatch, attempt=attempt,
                             role=task.role, agent=role.agent, driver=driver_name, **self.tags)
            ctx = DriverContext(
                workspace=self.workspace, run_id=self.run_id, role=role, attempt=job.earlier_attempts + attempt,
                feedback=Feedback.of(list(job.feedback), job.review, job.earlier_attempts + attempt),
                upstream=job.upstream, inputs=job.inputs,
                cancel=entry.cancel,
                progress=functools.partial(self.progress, task.id),
                spend=self.spend_for(task.id, task.role, role.agent) if self.spend_for else None,
                log_file=self.workspace / ".coord" / "logs" / self.run_id / f"{dispatch_stem(task.id, entry.dispatch)}.log")
            try:
                with driving(self.workspace, self.run_id, task, driver) as doer:  # or a session's claim
                    outcome = doer.run(task, ctx)
            except Exception as e:  # a driver bug fails the task, never the coordinator
                where = self._keep_traceback(task.id, entry.dispatch)
                log.error("driver %s crashed on %s (traceback in %s)", driver_name, task.id, where)
                outcome = TaskOutcome(status="failed", error=f"{type(e).__name__}: {e} (traceback in {where})")
            spent += outcome.cost_usd or 0.0
            for path in outcome.replaced:  # a person's edit was overwritten: say so, once
                self.events.emit("output_replaced", once=f"output_replaced:{task.id}:{entry.dispatch}:{path}",
                                 task=task.id, dispatch=entry.dispatch, attempt=attempt, path=path)
            if outcome.status == "done" and not outcome.accept_checked:
                failures = self.accept(task, outcome)
                if failures:
                    outcome = TaskOutcome(status="failed", metrics=outcome.metrics,
                                          artifacts=outcome.artifacts, notes=outcome.notes,
                                          error="accept checks failed: " + "; ".join(failures))
            if outcome.status != "failed" or attempt > task.retries or entry.cancel.is_set():
                break
            delay = task.retry_backoff * (2 ** (attempt - 1))
            self.events.emit("task_retried", task=task.id, dispatch=entry.dispatch, attempt=attempt,
                             error=outcome.error, delay_s=delay)
            if entry.cancel.wait(delay):
                break
        # what a driver or step reports can quote a key (a model echoing it): state, boards and
        # status files get it masked
        return TaskRecord(
            status="done" if outcome.status == "done" else ("waiting" if outcome.status == "waiting" else "failed"),
            attempts=job.earlier_attempts + attempt, started_at=started_iso, finished_at=now_iso(),
            duration_s=round(time.monotonic() - entry.started, 3), driver=driver_name, agent=role.agent,
            metrics=_masked(_jsonable(outcome.metrics)), artifacts=outcome.artifacts,  # type: ignore[typeddict-item]
            notes=[redact(str(n)) for n in outcome.notes], error=redact(outcome.error) if outcome.error else None,
            cost_usd=round(job.earlier_cost + spent, 6),
            skipped_run=outcome.skipped_run, recovered=False,
            **({"environment_fault": True} if outcome.environment_fault else {}),
            **({"held_by": outcome.held_by, "reason": outcome.error} if outcome.held_by else {}))


class _Workers:
    """Daemon worker threads, reused from task to task (starting a thread per task costs more than
    a no-op task). A worker idle for :data:`IDLE_S` exits; daemon threads never hold up the exit of
    a process whose run was interrupted with a task still running."""

    IDLE_S = 30.0

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0

    def run(self, job: Callable[[], None]) -> None:
        with self._lock:
            start = self._idle == 0
            if not start:
                self._idle -= 1  # this job is taken by a waiting worker
        self._jobs.put(job)
        if start:
            threading.Thread(target=self._loop, name="coord-task", daemon=True).start()

    def _loop(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=self.IDLE_S)
            except queue.Empty:
                with self._lock:
                    if self._idle > 0 and self._jobs.empty():
                        self._idle -= 1
                        return
                continue
            job()
            with self._lock:
                self._idle += 1


def with_upstream(task: CompiledTask, upstream: dict[str, Any]) -> tuple[CompiledTask, list[str]]:
    """``task`` with its ``${task.metric}`` references filled in from ``upstream`` (and ``$${`` turned into
    ``${``); the references nothing answers, each with why."""

    def lookup(ref: str) -> Any:
        name, _, metric = ref.partition(".")
        if not metric or name not in upstream:
            return refs.MISSING
        found = upstream[name]
        if isinstance(found, list):
            values = [m.get(metric, refs.MISSING) for m in found]
            return refs.MISSING if any(v is refs.MISSING for v in values) else values
        return found.get(metric, refs.MISSING)

    update: dict[str, Any] = {"params": refs.fill(task.params, lookup)}
    if task.instructions is not None:
        update["instructions"] = refs.fill(task.instructions, lookup)
    if task.command is not None:
        update["command"] = refs.fill_command(task.command, lookup)
    missing = []
    for ref in dict.fromkeys(r for v in update.values() for r in refs.references(v)):
        name, _, metric = ref.partition(".")
        if name not in upstream:
            missing.append(f"${{{ref}}}: task {name!r} has not reported (it must be done before this task)")
        else:
            got = upstream[name]
            have = sorted({k for m in (got if isinstance(got, list) else [got]) for k in m})
            missing.append(f"${{{ref}}}: task {name!r} reported no metric {metric!r} "
                           f"(it reported: {', '.join(have) or 'none'})")
    final = {k: refs.fill(v, lookup, final=True) for k, v in update.items()}  # $${…} → ${…}, last of all
    return task.model_copy(update=final), missing


def _masked(value: Any) -> Any:
    """Every string in ``value`` with configured secrets masked."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return value


def _changed_inputs(root: Path, digests: tuple[tuple[str, str, str], ...]) -> str | None:
    """Why the task may not read its inputs: one changed after the task that wrote it finished (a
    person's edit, a damaged disk, another program). None when each still has the digest it was
    recorded with (a manifest's digest is reused while the file's size and mtime are unchanged).
    A missing input is left to the task, which names what it could not read."""
    for path, sha256, writer in digests:
        file = root / path
        if not file.is_file():
            continue
        try:
            now = fingerprint(file)
        except OSError:
            continue
        if now != sha256:
            return (f"input {path} changed after {writer} wrote it (sha256 {sha256[:12]}…, now {now[:12]}…); coord "
                    f"does not feed a task data its upstream did not produce: run {writer} again (`coord run PLAN "
                    "--fresh` reruns what changed and reuses the rest), or restore the file")
    return None


def _worker_error(e: BaseException) -> str:
    """What failed in a worker, in words; a full disk says which file and what to do."""
    if isinstance(e, OSError) and e.errno == errno.ENOSPC:
        where = f" while writing {e.filename}" if e.filename else ""
        return (f"no space left on the device{where}: free some space, then `coord resume` "
                "(the task runs again; nothing it finished before is lost)")
    return f"coord failed while handling this task: {type(e).__name__}: {e}"


def _jsonable(metrics: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = orjson.loads(orjson.dumps(metrics, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY))
    return out
