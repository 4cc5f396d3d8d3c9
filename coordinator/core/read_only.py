"""A workspace coord may only read: tell it apart, open its databases read-only, refuse writes clearly.

A workspace on a read-only mount (a CI artifact, a backup, another user's directory) can still
be looked at: ``coord status`` and ``coord costs`` read the checkpoint and the ledger without
writing. SQLite in WAL mode needs to create a shared-memory index beside a database even to read
it, which a read-only directory refuses ("unable to open database file"); such a database is
opened as immutable instead. A command that must write (``coord approve``) says the workspace is
read-only before it starts, rather than failing halfway with a database error.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path
from urllib.parse import quote

from coordinator.core.errors import UsageError


class ReadOnlyWorkspace(UsageError):
    """The workspace's ``.coord`` directory cannot be written, and the command needs to write it."""


def writable(directory: Path) -> bool:
    """True when this process may create files in ``directory`` (a missing one: in its nearest parent)."""
    path = directory
    while not path.exists() and path != path.parent:
        path = path.parent
    # access() answers EROFS for a read-only mount even to root, and honours permissions for others
    return os.access(path, os.W_OK | os.X_OK)


def require_writable(state_dir: Path, doing: str) -> None:
    """Raise :class:`ReadOnlyWorkspace` naming ``doing`` when ``state_dir`` (a workspace's ``.coord``)
    cannot be written."""
    if not writable(state_dir):
        raise ReadOnlyWorkspace(f"the workspace is read-only: {state_dir} cannot be written, so coord cannot "
                                f"{doing}; `coord status` and `coord costs` still work. Run it where the "
                                "workspace is writable (or remount it read-write)")


def connect_read_only(db: Path) -> sqlite3.Connection:
    """A connection that never writes to the SQLite database ``db`` (which must exist).

    That is ``mode=ro``, which still sees what a live writer commits, and reads a WAL left beside the
    database (a run killed mid-way leaves one) when its index file is there too. In a read-only
    directory without them SQLite cannot make the index, so the file is opened ``immutable``: with
    no WAL there is nothing else to read, and nobody can be writing it there.
    """
    uri = f"file:{quote(str(db))}?mode=ro"
    wal, shm = (db.with_name(db.name + suffix) for suffix in ("-wal", "-shm"))
    if not writable(db.parent) and not (wal.exists() and shm.exists()):
        uri += "&immutable=1"
    return sqlite3.connect(uri, uri=True)


def is_read_only_error(error: BaseException) -> bool:
    """True for the errors a write into a read-only file system or database gives."""
    if isinstance(error, OSError):
        return error.errno in (errno.EROFS, errno.EACCES, errno.EPERM)
    if isinstance(error, sqlite3.OperationalError):
        text = str(error)
        return "readonly database" in text or "read-only" in text
    return False
