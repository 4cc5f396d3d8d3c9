"""The workspace: where coord keeps state, boards, reviews, data and reports."""

from __future__ import annotations

import _thread
import fcntl
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import IO

from coordinator.core.database import Database, database_for, settings_for
from coordinator.core.db_lock import (
    LockKeeper,
    database_lock_holder,
    parse_holder,
    take_database_lock,
)
from coordinator.core.errors import WorkspaceBusyError

log = logging.getLogger(__name__)

STATE_DIR = ".coord"


@dataclass(frozen=True)
class Workspace:
    """Paths of one workspace."""

    root: Path

    @classmethod
    def at(cls, root: Path | str) -> Workspace:
        """The workspace rooted at ``root`` (resolved)."""
        return cls(Path(root).resolve())

    @cached_property
    def database(self) -> Database | None:
        """The Postgres database holding this workspace's state, or None for the embedded default
        (SQLite and files in ``.coord/``); see :mod:`coordinator.core.database`."""
        settings = settings_for(self.root)
        return None if settings is None else database_for(settings)

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

    @property
    def db(self) -> Path:
        """The LangGraph SQLite checkpoint database."""
        return self.state_dir / "state.sqlite"

    @property
    def events(self) -> Path:
        return self.state_dir / "events.jsonl"

    @property
    def boards(self) -> Path:
        return self.root / "task_boards"

    @property
    def reviews(self) -> Path:
        return self.root / "reviews"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def team_file(self) -> Path:
        return self.root / "TEAM_COORDINATION.md"

    @property
    def config(self) -> Path:
        """Per-workspace settings (role bindings, concurrency)."""
        return self.root / "coord.yaml"

    @property
    def status_file(self) -> Path:
        """JSON snapshot of the latest run, rewritten on every render."""
        return self.state_dir / "status.json"

    def run_dir(self, run_id: str) -> Path:
        return self.state_dir / "runs" / run_id

    def remove_stale_temp_files(self) -> list[Path]:
        """Delete temp files a killed writer left behind (call only while holding the lock)."""
        removed = []
        for top in ("data", "reports", "reviews", "task_boards", STATE_DIR):
            base = self.root / top
            if not base.exists():
                continue
            for path in base.rglob(".*.tmp"):
                if path.is_file():
                    path.unlink()
                    removed.append(path)
        if self.team_file.parent.exists():
            for path in self.root.glob(".TEAM_COORDINATION.md.*.tmp"):
                path.unlink()
                removed.append(path)
        return removed

    def ensure(self) -> None:
        """Create the directories coord writes into."""
        for d in (self.state_dir, self.boards):
            d.mkdir(parents=True, exist_ok=True)


PROBE_WAIT_S = 2.0
"""How long taking the lock waits out shared holds: ``lock_holder`` probes (``coord status``), each brief."""
PROBE_RETRY_S = 0.005


def _held_exclusively(fh: IO[str]) -> bool:
    """True when another open file holds ``fh``'s lock exclusively (a run), not just shared (a probe)."""
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    return False


class WorkspaceLock:
    """An exclusive advisory lock so two runs never drive one workspace at once.

    The lock file names its holder (``pid 123``, plus ``run <id>`` once a run
    says which one it drives), so whoever is refused can tell the user.

    On Postgres the lock is a session lock, which a server restart ends silently: a
    :class:`~coordinator.core.db_lock.LockKeeper` takes it again, and when another process took it
    meanwhile, interrupts the main thread that holds it (the run stops as on Ctrl-C) and leaving the
    ``with`` block raises :class:`WorkspaceBusyError` naming who has it now.
    """

    def __init__(self, ws: Workspace) -> None:
        self.path = ws.state_dir / "lock"
        self._fh: IO[str] | None = None
        self._db = ws.database
        self._keeper: LockKeeper | None = None

    def __enter__(self) -> WorkspaceLock:
        if self._db is not None:
            holder = f"pid {os.getpid()} on {socket.gethostname()}"
            conn = take_database_lock(self._db, holder)
            self._keeper = LockKeeper(self._db, conn, holder,
                                      on_lost=_stop_holder(threading.current_thread())).start()
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = self.path.open("a+")
        deadline = time.monotonic() + PROBE_WAIT_S
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                # flock has no test-without-taking: lock_holder() probes with a brief shared lock.
                # Only a shared hold (a probe) lets a shared lock in; wait that out, briefly.
                if _held_exclusively(fh) or time.monotonic() >= deadline:
                    fh.seek(0)
                    holder = fh.read().strip()
                    fh.close()
                    raise WorkspaceBusyError(f"workspace {self.path.parent.parent} is in use by "
                                             f"{holder or 'another process'}; wait for it to finish or stop it",
                                             holder=holder, run_id=_parse_holder(holder)[1]) from None
                time.sleep(PROBE_RETRY_S)
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}")
        fh.flush()
        self._fh = fh
        return self


    def __exit__(self, *exc: object) -> None:
        if self._keeper is not None:
            keeper, self._keeper = self._keeper, None
            keeper.close()
            if keeper.lost is not None:
                raise WorkspaceBusyError(
                    f"stopped: this run lost the lock on workspace {self._db.settings.schema if self._db else ''} "
                    f"when its database session ended (a server restart?), and {keeper.lost} took it meanwhile; "
                    "two processes must not drive one workspace — let that one finish, then `coord resume`",
                    holder=keeper.lost, run_id=parse_holder(keeper.lost)[1])
        if self._fh is not None:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None

    def claim(self, run_id: str) -> None:
        """Say in the lock file which run this process drives (``coord status`` reads it)."""
        if self._keeper is not None:
            self._keeper.set_holder(f"pid {os.getpid()} on {socket.gethostname()} running run {run_id}")
            return
        if self._fh is None:
            raise RuntimeError("claim() needs the lock held")
        self._fh.seek(0)
        self._fh.truncate()
        self._fh.write(f"pid {os.getpid()} running run {run_id}")
        self._fh.flush()


def _stop_holder(thread: threading.Thread) -> Callable[[str], None]:
    """What to do when another process took a lost lock: interrupt ``thread`` if it is the main one (a run
    stops as on Ctrl-C); another thread finds out when it leaves the lock's block."""
    def lost(who: str) -> None:
        log.error("the workspace lock was lost when its database session ended, and %s took it meanwhile", who)
        if thread is threading.main_thread():
            _thread.interrupt_main()
    return lost


@dataclass(frozen=True)
class LockHolder:
    """The live process holding a workspace's lock, as its lock file describes it."""

    text: str
    pid: int | None
    run_id: str | None
    """The run it drives (None for a short command such as ``coord board sync``)."""


def lock_holder(ws: Workspace) -> LockHolder | None:
    """Who holds the workspace lock right now, or None when nobody does; takes nothing away."""
    if ws.database is not None:
        text = database_lock_holder(ws.database)
        if text is None:
            return None
        pid, run_id = _parse_holder(text)
        return LockHolder(text, pid, run_id)
    path = ws.state_dir / "lock"
    try:
        fh = path.open("r")
    except FileNotFoundError:
        return None
    with fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = fh.read().strip()
            pid, run_id = _parse_holder(text)
            return LockHolder(text or "another process", pid, run_id)
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        return None


_parse_holder = parse_holder
