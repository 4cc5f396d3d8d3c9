"""Per-file advisory locks (fcntl) shared by the coordinator, `coord board sync` and `coord watch`.

Each board has a lock file under ``.coord/locks/``; whoever reads a board to
merge or absorb it holds the lock until its write is in place, so two coord
writers never interleave on one file. Editors do not take these locks; a
person's save racing a write is caught by re-reading just before the rename.
"""

from __future__ import annotations

import fcntl
from pathlib import Path
from types import TracebackType
from typing import IO

from coordinator.core.errors import CoordError
from coordinator.core.workspace import Workspace


def board_rel(ws: Workspace, path: Path) -> str:
    """``path`` (a board or another file coord writes) relative to the workspace, following links;
    :class:`CoordError` naming it when it leads outside (a link to a file elsewhere is not written)."""
    resolved = path.resolve()
    try:
        return resolved.relative_to(ws.root).as_posix()
    except ValueError:
        shown = path.relative_to(ws.root).as_posix() if path.is_relative_to(ws.root) else str(path)
        raise CoordError(f"{shown} is a link to {resolved}, outside the workspace; coord writes its boards only "
                         "inside it: remove the link (coord renders the file again)") from None


def lock_path(ws: Workspace, path: Path) -> Path:
    """The lock file guarding ``path`` (a file inside the workspace)."""
    rel = board_rel(ws, path)
    return ws.state_dir / "locks" / (rel.replace("/", "__") + ".lock")


class FileLock:
    """An exclusive, blocking flock on one lock file (re-entrant within one object only)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: IO[str] | None = None

    def __enter__(self) -> FileLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = self.path.open("a+")
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        self._fh = fh
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


def board_lock(ws: Workspace, path: Path) -> FileLock:
    """The lock for one board file."""
    return FileLock(lock_path(ws, path))
