"""The small state documents under ``.coord/``, wherever the workspace keeps its state.

Run records, stored plans, queued decisions, a board sync's journal, board bases, notices and
problems are each one small document named by its path in the workspace. With the embedded
default they are the files they always were (written atomically); with a Postgres database
(:mod:`coordinator.core.database`) they are rows of its ``documents`` table, keyed by the same
workspace-relative path, so every machine that drives the workspace sees the same ones.
Each reader and writer of these documents calls this module, never the file system directly.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any

from coordinator.core.io import atomic_write_bytes, json_bytes, wrote
from coordinator.core.workspace import Workspace

_UMASK = os.umask(0o022)
os.umask(_UMASK)
_FILE_MODE = 0o666 & ~_UMASK
"""The mode a plain open() would give a new file (mkstemp's is 0600)."""


def _key(ws: Workspace, path: Path) -> str:
    return path.relative_to(ws.root).as_posix()


def read_bytes(ws: Workspace, path: Path) -> bytes | None:
    """The document at ``path``, or None when there is none."""
    db = ws.database
    if db is None:
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None
    with db.connection() as conn:
        row = conn.execute("SELECT body FROM documents WHERE path = %s", (_key(ws, path),)).fetchone()
    return None if row is None else bytes(row[0])


def exists(ws: Workspace, path: Path) -> bool:
    """Whether a document is stored at ``path``."""
    db = ws.database
    if db is None:
        return path.exists()
    with db.connection() as conn:
        return conn.execute("SELECT 1 FROM documents WHERE path = %s", (_key(ws, path),)).fetchone() is not None


def write_bytes(ws: Workspace, path: Path, data: bytes, *, durable: bool = True) -> None:
    """Replace the document at ``path`` (atomically: readers see the old one or the new one)."""
    db = ws.database
    if db is None:
        atomic_write_bytes(path, data, durable=durable)
        return
    with db.connection() as conn:
        conn.execute("INSERT INTO documents (path, body) VALUES (%s, %s) ON CONFLICT (path) DO UPDATE SET "
                     "body = excluded.body, updated_at = now()", (_key(ws, path), data))
    wrote("document", path)


def write_json(ws: Workspace, path: Path, obj: Any) -> None:
    """Replace the document at ``path`` with pretty, key-sorted JSON."""
    write_bytes(ws, path, json_bytes(obj))


def create(ws: Workspace, path: Path, data: bytes) -> bool:
    """Store ``data`` at ``path`` only if nothing is there yet; False (and nothing written) otherwise.

    Two processes creating the same document at once: exactly one succeeds.
    """
    db = ws.database
    if db is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            os.fchmod(fd, _FILE_MODE)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.link(tmp, path)  # fails when the name exists: the file system decides who was first
        except FileExistsError:
            return False
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        wrote("file", path)
        return True
    with db.connection() as conn:
        cur = conn.execute("INSERT INTO documents (path, body) VALUES (%s, %s) ON CONFLICT (path) DO NOTHING",
                           (_key(ws, path), data))
        created = bool(cur.rowcount == 1)
    if created:
        wrote("document", path)
    return created


def delete(ws: Workspace, path: Path, *, if_body: bytes | None = None) -> bool:
    """Remove the document at ``path`` (only while it is still ``if_body``, when given); True if removed."""
    db = ws.database
    if db is None:
        try:
            if if_body is not None and path.read_bytes() != if_body:
                return False
            path.unlink()
        except FileNotFoundError:
            return False
        return True
    sql = "DELETE FROM documents WHERE path = %s"
    args: list[Any] = [_key(ws, path)]
    if if_body is not None:
        sql += " AND body = %s"
        args.append(if_body)
    with db.connection() as conn:
        return bool(conn.execute(sql, args).rowcount == 1)


def read_all(ws: Workspace, directory: Path, pattern: str) -> list[tuple[Path, bytes]]:
    """Every document matching ``directory``/``pattern`` (one ``*`` per path part), in path order."""
    db = ws.database
    if db is None:
        if not directory.is_dir():
            return []
        out = []
        for path in sorted(directory.glob(pattern)):
            with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                out.append((path, path.read_bytes()))
        return out
    prefix = _key(ws, directory) + "/"
    like = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + \
        pattern.replace("%", "\\%").replace("_", "\\_").replace("*", "%")
    depth = prefix.count("/") + pattern.count("/")
    with db.connection() as conn:
        rows = conn.execute("SELECT path, body FROM documents WHERE path LIKE %s ORDER BY path", (like,)).fetchall()
    return [(ws.root / p, bytes(b)) for p, b in rows if p.count("/") == depth]  # '*' stays within one part
