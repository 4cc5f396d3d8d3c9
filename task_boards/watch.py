"""`coord watch`: follow the boards with watchdog, sync after a quiet period, resume unblocked runs.

File events only mark the boards dirty; one worker thread waits until no event
arrived for ``debounce`` seconds and then runs one :func:`sync_boards`, so a
burst of saves (editors often write twice) costs one sync. While a run holds
the workspace the worker reports once which boards have edits waiting, retries
every ``retry`` seconds and applies them as soon as the run pauses or ends; it
also resumes a run that was waiting on a person when an edit lets it continue.
After reporting a sync it pre-parses the boards as rendered, so the next save
is applied faster.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from watchdog.events import (
    EVENT_TYPE_CLOSED,
    EVENT_TYPE_CREATED,
    EVENT_TYPE_DELETED,
    EVENT_TYPE_EVENTS_LOST,
    EVENT_TYPE_MODIFIED,
    EVENT_TYPE_MOVED,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

from coordinator.core.errors import CoordError
from coordinator.core.workspace import Workspace
from coordinator.engine.runner import RunOptions, resume_run
from task_boards.sync import SyncReport, sync_boards, warm_cache

log = logging.getLogger(__name__)


_CHANGES = {EVENT_TYPE_CREATED, EVENT_TYPE_MODIFIED, EVENT_TYPE_MOVED, EVENT_TYPE_DELETED, EVENT_TYPE_CLOSED}
"""Events that can change a board's content (``closed`` is a close after writing)."""


class _Handler(FileSystemEventHandler):
    def __init__(self, poke: Callable[[], None]) -> None:
        self.poke = poke

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type == EVENT_TYPE_EVENTS_LOST:  # the kernel's queue overflowed: look at everything
            self.poke()
            return
        if event.is_directory or event.event_type not in _CHANGES:
            return  # opened / closed unwritten / attributes: every sync reads the boards, and that is no edit
        for raw in (event.src_path, getattr(event, "dest_path", "")):
            name = str(raw).rsplit("/", 1)[-1]
            if name.endswith("_TASKS.md"):  # temp files of atomic writes start with "." and end in .tmp
                self.poke()
                return


@dataclass
class BoardWatcher:
    """Watches ``task_boards/`` of one workspace until :meth:`stop`."""

    ws: Workspace
    debounce: float = 0.15
    resume: bool = True
    """Resume a run that was waiting on a person once an edit lets it continue."""
    retry: float = 1.0
    """Seconds between attempts while a run holds the workspace."""
    on_report: Callable[[SyncReport], None] = lambda report: None
    on_resumed: Callable[[str, str], None] = lambda run_id, phase: None
    on_error: Callable[[str], None] = lambda message: None
    incomplete_retries: int = 5
    """Syncs retried while a board looks half-saved before the problem is reported."""
    freeze_gc: bool = False
    """At start and after each sync that applied edits, collect garbage and freeze what survives
    (:func:`gc.freeze`), so the collections during the next sync skip the imports and caches that
    live as long as the process. Process-wide: for processes that do nothing but watch (`coord watch`)."""
    _last_event: float = 0.0
    _busy_told: tuple[str, tuple[str, ...]] | None = None
    _incomplete: int = 0
    _dirty: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)
    _ready: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _observer: Any = None

    def poke(self) -> None:
        """Mark the boards dirty (called by file events; also usable by tests and callers)."""
        self._last_event = time.monotonic()
        self._dirty.set()

    def start(self) -> BoardWatcher:
        """Start watching (returns at once)."""
        self.ws.boards.mkdir(parents=True, exist_ok=True)
        self._observer = Observer()
        self._observer.schedule(_Handler(self.poke), str(self.ws.boards), recursive=False)
        self._observer.start()
        self._thread = threading.Thread(target=self._loop, name="coord-watch", daemon=True)
        self._thread.start()
        self.poke()  # edits made while nobody watched (that first sync also fills the parse cache)
        return self

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Wait until the boards are pre-parsed and the first sync has run; False on timeout."""
        return self._ready.wait(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop watching and wait for the worker to finish its current sync."""
        self._stop.set()
        self._dirty.set()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout)
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        self._tidy()
        while not self._stop.is_set():
            self._dirty.wait()
            if self._stop.is_set():
                return
            quiet = self.debounce - (time.monotonic() - self._last_event)
            if quiet > 0:
                self._stop.wait(quiet)
                continue
            self._dirty.clear()
            self._sync_once()
            self._ready.set()

    def _tidy(self) -> None:
        """Housekeeping while nobody waits: pre-parse the boards as rendered, then tidy the heap."""
        try:
            warm_cache(self.ws)
        except OSError as e:  # a board vanished while being read: the next sync will say more
            log.info("could not pre-parse boards: %s", e)
        if self.freeze_gc:
            gc.collect()
            gc.freeze()

    def _sync_once(self) -> None:
        try:
            report = sync_boards(self.ws)
        except CoordError as e:
            self.on_error(str(e))
            return
        except OSError as e:  # the system refused a file (full disk, permissions): its words, no traceback
            log.debug("board sync failed", exc_info=True)
            self.on_error(f"board sync: {e.strerror or e}" + (f": {e.filename}" if e.filename else ""))
            return
        except Exception as e:  # the watcher must outlive one bad sync; the message says what broke
            log.exception("board sync failed")
            self.on_error(f"{type(e).__name__}: {e}")
            return
        if report.busy:
            # edits wait on the board (the run's renders merge them) until the run pauses or ends;
            # say so once per run and set of boards, then retry quietly
            told = (report.active_run or report.busy, tuple(report.waiting_edits))
            if report.waiting_edits and told != self._busy_told:
                self.on_report(report)
            self._busy_told = told
            self._last_event = time.monotonic() + self.retry - self.debounce
            self._dirty.set()
            return
        self._busy_told = None
        if report.incomplete and self._incomplete < self.incomplete_retries:
            self._incomplete += 1  # most likely an editor still writing: look again after the debounce
            self.poke()
            return
        self._incomplete = 0
        if report.changed or report.problems:
            self.on_report(report)  # the edits are in the run and the boards re-rendered: say so first
        if self.resume and report.changed and report.waiting and report.can_continue and report.run_id:
            try:
                summary = resume_run(self.ws, report.run_id, RunOptions(plan=""))
            except CoordError as e:
                self.on_error(str(e))
            else:
                self.on_resumed(summary.run_id, summary.phase)
        if report.changed:
            self._tidy()
