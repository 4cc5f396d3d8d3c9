"""A key → value map whose memory stops growing: a dict up to a cap, then SQLite on disk.

Steps keep per-row lookups (ids seen, content digests, base names) that grow with the
data. :class:`SpillMap` holds them in a plain dict while small — the common case, and
as fast as a dict — and, once ``memory_items`` entries are buffered, moves them in one
batch into a SQLite table in a private temporary directory, keeping the dict as a
write buffer in front of it. Memory is then bounded by the cap plus SQLite's page
cache (``CACHE_KIB``); a lookup that misses the buffer costs one indexed SELECT
(~4 µs here). Keys are ``bytes``, ``str`` or ``int``; values ``int`` or ``str``.
The directory is removed by :meth:`SpillMap.close` (or at interpreter exit).
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
import weakref
from pathlib import Path
from types import TracebackType
from typing import Generic, TypeVar

K = TypeVar("K", bytes, str, int)
V = TypeVar("V", int, str)

MEMORY_ITEMS = 1 << 14
"""Entries a map buffers in memory before it spills (~2 MB for 16-byte keys and ints)."""
CACHE_KIB = 4096
"""SQLite page cache per spilled map."""


class SpillMap(Generic[K, V]):
    """Insert-mostly map; see the module docstring. Not thread-safe."""

    def __init__(self, *, memory_items: int | None = None, directory: Path | None = None) -> None:
        self.memory_items = max(1, MEMORY_ITEMS if memory_items is None else memory_items)
        self._directory = directory
        self._buffer: dict[K, V] = {}
        self._db: sqlite3.Connection | None = None
        self._dir: Path | None = None
        self._spilled = 0
        self._cleanup: weakref.finalize | None = None

    def __len__(self) -> int:
        return self._spilled + len(self._buffer)

    @property
    def spilled(self) -> bool:
        """True once entries live on disk."""
        return self._db is not None

    def get(self, key: K) -> V | None:
        """The value of ``key``, or None."""
        value = self._buffer.get(key)
        if value is not None or self._db is None:
            return value
        row = self._db.execute("SELECT v FROM m WHERE k = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def __contains__(self, key: K) -> bool:
        return self.get(key) is not None

    def put(self, key: K, value: V) -> None:
        """Set ``key`` (new keys only: a key already spilled must not be put again)."""
        if key not in self._buffer:
            self._spilled_guard()
        self._buffer[key] = value

    def add(self, key: K, value: V) -> bool:
        """Set ``key`` unless present; True when it was new."""
        if self.get(key) is not None:
            return False
        self.put(key, value)
        return True

    def _spilled_guard(self) -> None:
        if len(self._buffer) >= self.memory_items:
            self._spill()

    def _spill(self) -> None:
        if self._db is None:
            self._dir = Path(tempfile.mkdtemp(prefix="coord-spill-", dir=self._directory))
            self._db = sqlite3.connect(self._dir / "map.sqlite", isolation_level=None)
            # a scratch table: nothing to recover after a crash, so no journal and no fsync
            for pragma in ("journal_mode = OFF", "synchronous = OFF", f"cache_size = -{CACHE_KIB}",
                           "temp_store = FILE"):
                self._db.execute(f"PRAGMA {pragma}")
            self._db.execute("CREATE TABLE m (k PRIMARY KEY, v) WITHOUT ROWID")
            self._cleanup = weakref.finalize(self, _remove, self._db, self._dir)
        self._db.execute("BEGIN")
        self._db.executemany("INSERT INTO m VALUES (?, ?)", self._buffer.items())
        self._db.execute("COMMIT")
        self._spilled += len(self._buffer)
        self._buffer.clear()

    def close(self) -> None:
        """Drop everything and remove the spill directory."""
        self._buffer.clear()
        if self._cleanup is not None:
            self._cleanup()
        self._db = None

    def __enter__(self) -> SpillMap[K, V]:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _remove(db: sqlite3.Connection, directory: Path) -> None:
    db.close()
    shutil.rmtree(directory, ignore_errors=True)
