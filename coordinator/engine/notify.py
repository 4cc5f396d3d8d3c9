"""Notifications: webhooks and the desktop, told when a run needs a person or ends.

A :class:`Notifier` listens to a run's event stream (it is chained before the progress display
as the :class:`~coordinator.core.events.EventLog` listener) and turns five moments into notices
for the targets ``coord.yaml`` names (:mod:`coordinator.engine.notify_config`): a gate waiting
for a person, a budget alert, paid work held by the budget, the run finished or failed, a task
failing its accept checks. Listening only queues: a daemon thread per target delivers (so a target
that hangs holds up no other), with a bounded queue, a timeout per attempt, and retries with
exponential backoff (bounded). A slow, failing or hanging
target never slows or fails the run; when the run ends it waits at most ``grace_s`` for what is
still under way and logs the rest as dropped. Every attempt is an event (``notify_attempt``:
target, attempt number, ok, HTTP status, error), and so is every notice given up
(``notify_dropped``).
"""

from __future__ import annotations

import logging
import queue
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import orjson

from coordinator.core.errors import UsageError
from coordinator.core.events import EventLog
from coordinator.core.llm import format_usd
from coordinator.core.version import VERSION
from coordinator.core.workspace import Workspace
from coordinator.engine.notify_config import NoticeKind, NotifyConfig, Target, load_notify
from roles.providers.secrets import redact

log = logging.getLogger(__name__)

Listener = Callable[[dict[str, Any]], None]
QUEUE_SIZE = 200
"""Notices waiting for delivery to one target at most; past that a new one is dropped (and logged as such)."""
BACKOFF_S = 0.5
"""The wait before the first retry; it doubles with each retry."""
MAX_BACKOFF_S = 8.0
IDLE_S = 1.0
"""A delivery thread with nothing to do for this long exits (the next notice starts another)."""
DESKTOP_TIMEOUT_S = 5.0
TEXT_CHARS = 600
"""A notice's text at most (an error can be long; the event log has it whole)."""
_OWN = ("notify_attempt", "notify_dropped")
_ENDS = ("run_finished", "run_paused")


@dataclass
class Notice:
    """One notification for one target."""

    target: Target
    about: NoticeKind
    text: str
    body: bytes
    """What a webhook is sent (already redacted)."""
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    cancelled: threading.Event = field(default_factory=threading.Event)


def notice_text(event: Mapping[str, Any], plan: str, budget_holds: set[str]) -> tuple[NoticeKind, str] | None:
    """The kind of notice an event makes and its one-line text (None: the event is not one to tell)."""
    kind, run = event.get("kind"), event.get("run")
    if kind == "gate_decided" and event.get("status") == "waiting":
        gate = event.get("gate")
        score = f", score {event['score']:.2f}/10" if isinstance(event.get("score"), int | float) else ""
        if event.get("policy") == "auto_then_human":
            return "gate_waiting", (f"gate {gate} of run {run}: {event.get('verdict')} (grade {event.get('grade')}"
                                    f"{score}) unless a person overrides it: `coord override {gate} --grade G "
                                    "--note WHY`")
        return "gate_waiting", (f"gate {gate} of run {run} waits for a person (grade {event.get('grade')}{score}): "
                                f"`coord approve {gate}`, `coord reject {gate} --note WHY` or tick approve on "
                                "its board")
    if kind == "budget_alert":
        spent, limit = (_usd(event.get(k)) for k in ("spent_usd", "limit_usd"))
        return "budget_alert", (f"budget alert: run {run} crossed {100 * float(event.get('threshold') or 0):.0f}% "
                                f"of its budget ({spent} spent of {limit})")
    if kind == "task_held" and event.get("held_by") == "budget":
        reason = str(event.get("reason") or "the budget is used up")
        if reason in budget_holds:
            return None  # one notice per reason and run, not one per held task
        budget_holds.add(reason)
        return "budget_hold", f"run {run} holds paid work: {reason} (`coord budget raise USD` continues it)"
    if kind == "run_finished" and event.get("phase") == "finished":
        return "run_finished", f"run {run} of plan {plan} finished: every task done"
    if kind == "run_finished":
        problems = "; ".join(str(p) for p in (event.get("problems") or [])[:3])
        return "run_failed", f"run {run} of plan {plan} ended {event.get('phase')}" + (f": {problems}" if problems else "")
    if kind == "task_failed" and str(event.get("error") or "").startswith("accept checks failed"):
        return "accept_failed", f"task {event.get('task')} of run {run} failed its accept checks: " + \
            str(event.get("error")).removeprefix("accept checks failed: ")
    return None


def _usd(value: Any) -> str:
    return format_usd(float(value)) if isinstance(value, int | float) and not isinstance(value, bool) else "unknown"


def _body(target: Target, about: NoticeKind, text: str, event: Mapping[str, Any], ws: Workspace, plan: str) -> bytes:
    """What a webhook is sent: coord's JSON document or a Slack incoming-webhook message."""
    if target.format == "slack":
        shown = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        doc: dict[str, Any] = {"text": f"coord: {shown}",
                               "blocks": [{"type": "section", "text": {"type": "mrkdwn",
                                                                       "text": f"*coord · {about}*\n{shown}"}}]}
    else:
        doc = {"source": "coord", "schema_version": 1, "kind": about, "text": text, "run_id": event.get("run"),
               "plan": plan, "workspace": str(ws.root), "at": event.get("ts"),
               "event": {k: v for k, v in event.items() if k not in ("ts", "once")}}
    return redact(orjson.dumps(doc, option=orjson.OPT_NON_STR_KEYS).decode()).encode()


class Notifier:
    """Turns a run's events into notices and delivers them in the background."""

    def __init__(self, config: NotifyConfig, ws: Workspace, plan: str) -> None:
        self.config = config
        self.ws = ws
        self.plan = plan
        self.events: EventLog | None = None
        self._queues: dict[str, queue.Queue[Notice]] = {t.name: queue.Queue(QUEUE_SIZE) for t in config.targets}
        self._lock = threading.Condition()
        self._pending: list[Notice] = []
        self._workers: dict[str, threading.Thread] = {}
        self._budget_holds: set[str] = set()

    def chained(self, listener: Listener | None) -> Listener:
        """The listener for the run's event log: this notifier, then ``listener`` (the progress display).

        A display whose output is gone (``| head`` exited) stops, as the event log would stop it; the
        notifications go on."""
        downstream = [listener] if listener is not None else []

        def both(event: dict[str, Any]) -> None:
            self.on_event(event)
            for display in list(downstream):
                try:
                    display(event)
                except (OSError, SystemExit) as e:
                    downstream.clear()
                    log.warning("progress display stopped: %s: %s", type(e).__name__, e)
        return both

    def on_event(self, event: dict[str, Any]) -> None:
        """Queue the notices an event makes (never blocks, never raises); at the run's end, wait a little."""
        if event.get("kind") in _OWN:
            return
        try:
            found = notice_text(event, self.plan, self._budget_holds)
            if found is not None:
                about, text = found
                text = redact(" ".join(text.split()))[:TEXT_CHARS]
                for target in self.config.targets:
                    if about in target.when:
                        self._put(Notice(target, about, text, _body(target, about, text, event, self.ws, self.plan)))
            if event.get("kind") in _ENDS:
                self.finish()
        except Exception:  # a notification must never stop the run it reports on
            log.exception("notify: could not queue a notice for event %s", event.get("kind"))

    def _put(self, notice: Notice) -> None:
        name = notice.target.name
        with self._lock:
            try:
                self._queues[name].put_nowait(notice)
            except queue.Full:
                full = True
            else:
                full = False
                self._pending.append(notice)
                worker = self._workers.get(name)
                if worker is None or not worker.is_alive():
                    self._workers[name] = threading.Thread(target=self._work, args=(name,), daemon=True,
                                                           name=f"coord-notify-{name}")
                    self._workers[name].start()
        if full:
            self._log_dropped(notice, f"more than {QUEUE_SIZE} notices waiting")

    def finish(self) -> None:
        """Wait up to ``grace_s`` for the notices still under way; log the others as dropped."""
        deadline = time.monotonic() + self.config.grace_s
        with self._lock:
            while self._pending and (left := deadline - time.monotonic()) > 0:
                self._lock.wait(left)
            late = list(self._pending)
        for notice in late:
            notice.cancelled.set()
            self._log_dropped(notice, f"the run ended; not delivered within the {self.config.grace_s:g}s grace period")

    def _work(self, name: str) -> None:
        """Deliver one target's notices in order; exit once it has had nothing to do for a while."""
        lane = self._queues[name]
        while True:
            try:
                notice = lane.get(timeout=IDLE_S)
            except queue.Empty:
                with self._lock:
                    if lane.empty():
                        self._workers.pop(name, None)
                        return
                continue
            try:
                if not notice.cancelled.is_set():
                    self._deliver(notice)
            except Exception:  # a bug here must not kill the thread with notices still queued
                log.exception("notify: delivering %s to %s failed", notice.about, notice.target.name)
            finally:
                with self._lock:
                    if notice in self._pending:
                        self._pending.remove(notice)
                    self._lock.notify_all()

    def _deliver(self, notice: Notice) -> None:
        target = notice.target
        attempts = 1 + target.retries
        for attempt in range(1, attempts + 1):
            started = time.monotonic()
            ok, status, error, retry_after = (_post(target, notice.body) if target.kind == "webhook"
                                              else _desktop(notice))
            self._emit("notify_attempt", notice, attempt=attempt, ok=ok, status=status,
                       error=redact(error) if error else None, duration_s=round(time.monotonic() - started, 3))
            if ok:
                return
            if retry_after is None or attempt == attempts:
                break
            if notice.cancelled.wait(min(MAX_BACKOFF_S, max(retry_after, BACKOFF_S * 2 ** (attempt - 1)))):
                return  # the run ended meanwhile: already logged as dropped
        if not notice.cancelled.is_set():
            self._log_dropped(notice, f"gave up after {attempt} attempt(s)")

    def _log_dropped(self, notice: Notice, reason: str) -> None:
        self._emit("notify_dropped", notice, reason=reason)

    def _emit(self, kind: Literal["notify_attempt", "notify_dropped"], notice: Notice, **fields: Any) -> None:
        if self.events is not None:
            self.events.emit(kind, notice=notice.id, about=notice.about, target=notice.target.name, **fields)


def _post(target: Target, body: bytes) -> tuple[bool, int | None, str | None, float | None]:
    """One webhook attempt: (ok, HTTP status, error, seconds to wait before a retry — None: do not retry)."""
    assert target.url is not None
    headers = {"Content-Type": "application/json", "User-Agent": f"coord/{VERSION}", **target.headers}
    try:
        response = httpx.post(target.url, content=body, headers=headers, timeout=target.timeout_s)
    except httpx.HTTPError as e:  # refused, reset, timed out: worth another try
        return False, None, f"{type(e).__name__}: {e}", 0.0
    if 200 <= response.status_code < 300:
        return True, response.status_code, None, None
    retry = response.status_code >= 500 or response.status_code in (408, 429)
    return False, response.status_code, f"HTTP {response.status_code}", _retry_after(response) if retry else None


def _retry_after(response: httpx.Response) -> float:
    """Seconds a 429 or 503 asks for (bounded by the backoff cap; 0 when absent or unreadable)."""
    try:
        return min(MAX_BACKOFF_S, max(0.0, float(response.headers.get("retry-after", 0))))
    except ValueError:
        return 0.0


def _desktop(notice: Notice) -> tuple[bool, int | None, str | None, float | None]:
    """A desktop notification through ``notify-send`` when it is on PATH, else the terminal bell."""
    title = f"coord: {notice.about.replace('_', ' ')}"
    exe = shutil.which("notify-send")
    if exe is None:
        sys.stderr.write(f"\a{title}: {notice.text}\n")
        sys.stderr.flush()
        return True, None, None, None
    try:
        done = subprocess.run([exe, "--app-name=coord", title, notice.text], capture_output=True, text=True,
                              timeout=DESKTOP_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, None, f"notify-send: {e}", None
    if done.returncode != 0:
        return False, None, f"notify-send exited {done.returncode}: {done.stderr.strip()[:200]}", None
    return True, None, None, None


def notifying_event_log(ws: Workspace, run_id: str, plan: str, listener: Listener | None) -> EventLog:
    """The run's event log, with the workspace's notification targets listening (when it names any).

    `coord run` refuses a broken ``notify:`` before it starts; a command that resumes a run (``approve``,
    ``resume``, ``budget raise``) goes on without notifications and says why in the log."""
    try:
        config = load_notify(ws)
    except UsageError as e:
        log.warning("notifications are off for run %s: %s", run_id, e)
        config = None
    if config is None:
        return EventLog.of(ws, run_id, listener)
    notifier = Notifier(config, ws, plan)
    events = EventLog.of(ws, run_id, notifier.chained(listener))
    notifier.events = events
    return events
