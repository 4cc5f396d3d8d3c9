"""The workspace: where coord keeps state, boards, reviews, data and reports."""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from coordinator.errors import WorkspaceBusyError

STATE_DIR = ".coord"


@dataclass(frozen=True)
class Workspace:
    """Paths of one workspace."""

    root: Path

    @classmethod
    def at(cls, root: Path | str) -> Workspace:
        """The workspace rooted at ``root`` (resolved)."""
        return cls(Path(root).resolve())

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

    def result_file(self, run_id: str, task_id: str, dispatch: int) -> Path:
        """Durable record of a finished task attempt, written before the graph hears of it."""
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in task_id)
        return self.run_dir(run_id) / "results" / f"{safe}.{dispatch}.json"

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


class WorkspaceLock:
    """An exclusive advisory lock so two runs never drive one workspace at once.

    The lock file names its holder (``pid 123``, plus ``run <id>`` once a run
    says which one it drives), so whoever is refused can tell the user.
    """

    def __init__(self, ws: Workspace) -> None:
        self.path = ws.state_dir / "lock"
        self._fh: IO[str] | None = None

    def __enter__(self) -> WorkspaceLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = self.path.open("a+")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip()
            fh.close()
            run_id = holder.split(" run ", 1)[1].strip() if " run " in holder else None
            raise WorkspaceBusyError(f"workspace {self.path.parent.parent} is in use by "
                                     f"{holder or 'another process'}; wait for it to finish or stop it",
                                     holder=holder, run_id=run_id) from None
        self._fh = fh
        self.describe()
        return self

    def describe(self, run_id: str | None = None) -> None:
        """Record the holder in the lock file: this process, and the run it drives if any."""
        if self._fh is None:
            return
        self._fh.seek(0)
        self._fh.truncate()
        self._fh.write(f"pid {os.getpid()}" + (f" run {run_id}" if run_id else ""))
        self._fh.flush()

    def __exit__(self, *exc: object) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None
