"""A key → value map whose memory stops growing: a dict up to a cap, then SQLite on disk.

Steps keep per-row lookups (ids seen, content digests, base ids) that grow with the
data. :class:`SpillMap` holds them in a plain dict while small — the common case, and
as fast as a dict — and, once ``memory_items`` entries are buffered, moves them in one
batch into a SQLite table in a private temporary directory, keeping the dict as a
write buffer in front of it. Memory is then bounded by the cap, SQLite's page cache
(``CACHE_KIB``) and a Bloom filter of the spilled keys (:mod:`pipeline._bloom`, 2.5–3
bytes per key). A lookup that misses the buffer asks the filter first: a key it has never
seen (every new key, the common case when most rows are unique) is answered at once,
and only the others pay an indexed SELECT (~4 µs alone, far more while other threads
hold the GIL). The filter has no false negatives, so answers stay exact. Batches go
in sorted by key (B-tree inserts stay local) and a few hundred rows per statement:
``executemany`` would release and retake the GIL for every row, and with the audit's
signing threads running each retake can wait for a thread switch. Keys are ``bytes``,
``str`` or ``int``; values ``int``, ``str`` or ``bytes``. The directory is removed by
:meth:`SpillMap.close` (or at interpreter exit). :class:`SpillList` is the same idea for
strings looked up by position only (names for a report): the newest in memory, the rest
in a file; :class:`SpillArray` for integers read back by position only at the end.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
import weakref
from array import array
from pathlib import Path
from types import TracebackType
from typing import Generic, TypeVar

import numpy as np

from pipeline._bloom import BITS_PER_KEY, BloomFilter, key_hash

K = TypeVar("K", bytes, str, int)
V = TypeVar("V", int, str, bytes)

MEMORY_ITEMS = 1 << 14
"""Entries a map buffers in memory before it spills (~2 MB for 16-byte keys and ints)."""
CACHE_KIB = 1024
"""SQLite page cache per spilled map (the Bloom filter keeps most lookups away from it)."""
_ROWS_PER_INSERT = 1 << 9  # a prepared INSERT of 2,048 rows would hold ~0.5 MB per connection


class SpillMap(Generic[K, V]):
    """Insert-mostly map; see the module docstring. Not thread-safe."""

    def __init__(self, *, memory_items: int | None = None, directory: Path | None = None,
                 cache_kib: int = CACHE_KIB, bits_per_key: int = BITS_PER_KEY) -> None:
        self.memory_items = max(1, MEMORY_ITEMS if memory_items is None else memory_items)
        self._directory = directory
        self.cache_kib, self.bits_per_key = cache_kib, bits_per_key
        self._buffer: dict[K, V] = {}
        self._db: sqlite3.Connection | None = None
        self._dir: Path | None = None
        self._spilled = 0
        self._bloom: BloomFilter | None = None
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
        if value is not None or self._bloom is None or not self._bloom.might_contain(key_hash(key)):
            return value
        assert self._db is not None  # created together with the filter
        row = self._db.execute("SELECT v FROM m WHERE k = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def __contains__(self, key: K) -> bool:
        return self.get(key) is not None

    def put(self, key: K, value: V) -> None:
        """Set ``key`` (new keys only: a key already spilled must not be put again)."""
        if len(self._buffer) >= self.memory_items and key not in self._buffer:
            self._spill()
        self._buffer[key] = value

    def add(self, key: K, value: V) -> bool:
        """Set ``key`` unless present; True when it was new."""
        if self.get(key) is not None:
            return False
        self.put(key, value)
        return True

    def _spill(self) -> None:
        if self._db is None:
            self._dir = Path(tempfile.mkdtemp(prefix="coord-spill-", dir=self._directory))
            self._db = sqlite3.connect(self._dir / "map.sqlite", isolation_level=None)
            # a scratch table: nothing to recover after a crash, so no journal and no fsync
            for pragma in ("journal_mode = OFF", "synchronous = OFF", f"cache_size = -{self.cache_kib}",
                           "temp_store = FILE"):
                self._db.execute(f"PRAGMA {pragma}")
            self._db.execute("CREATE TABLE m (k PRIMARY KEY, v) WITHOUT ROWID")
            self._bloom = BloomFilter(self._dir / "bloom.u64", bits_per_key=self.bits_per_key)
            self._cleanup = weakref.finalize(self, _remove, self._db, self._bloom, self._dir)
        assert self._bloom is not None
        self._bloom.add_many([key_hash(k) for k in self._buffer])
        items = sorted(self._buffer.items())
        per = min(_ROWS_PER_INSERT, self._db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // 2)
        with self._db:  # one transaction (usually one statement) per batch
            for i in range(0, len(items), per):
                chunk = items[i:i + per]
                self._db.execute("INSERT INTO m VALUES " + ",".join(["(?,?)"] * len(chunk)),
                                 [x for kv in chunk for x in kv])
        self._spilled += len(self._buffer)
        self._buffer.clear()

    def close(self) -> None:
        """Drop everything and remove the spill directory."""
        self._buffer.clear()
        if self._cleanup is not None:
            self._cleanup()
        self._db = self._bloom = None

    def __enter__(self) -> SpillMap[K, V]:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _remove(db: sqlite3.Connection, bloom: BloomFilter, directory: Path) -> None:
    db.close()
    bloom.close()
    shutil.rmtree(directory, ignore_errors=True)


class SpillList:
    """Append-only list of strings: the newest in memory up to a cap, the rest in a file.

    For values only ever looked up by position, and rarely (names shown in a report):
    memory stays bounded by the cap, and nothing is kept per item once written out.
    """

    def __init__(self, *, memory_items: int | None = None, directory: Path | None = None) -> None:
        self.memory_items = max(1, MEMORY_ITEMS if memory_items is None else memory_items)
        self._directory = directory
        self._buffer: list[str] = []
        self._written = 0
        self._dir: Path | None = None
        self._end = 0  # bytes in the data file
        self._cleanup: weakref.finalize | None = None

    def __len__(self) -> int:
        return self._written + len(self._buffer)

    def append(self, value: str) -> None:
        """Add ``value`` at index ``len(self)``."""
        if len(self._buffer) >= self.memory_items:
            self._flush()
        self._buffer.append(value)

    def get(self, index: int) -> str:
        """The value at ``index`` (0 ≤ index < len)."""
        if not 0 <= index < len(self):
            raise IndexError(index)
        if index >= self._written:
            return self._buffer[index - self._written]
        assert self._dir is not None
        with (self._dir / "offsets.u64").open("rb") as fh:  # where each value starts
            fh.seek(8 * index)
            bounds = np.frombuffer(fh.read(16), dtype=np.uint64).tolist()
        start, end = bounds[0], bounds[1] if len(bounds) > 1 else self._end
        with (self._dir / "data.bin").open("rb") as fh:
            fh.seek(start)
            return fh.read(end - start).decode("utf-8", "surrogatepass")

    def _flush(self) -> None:
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="coord-list-", dir=self._directory))
            self._cleanup = weakref.finalize(self, shutil.rmtree, self._dir, True)
        encoded = [v.encode("utf-8", "surrogatepass") for v in self._buffer]
        sizes = np.array([len(e) for e in encoded], dtype=np.uint64)
        starts = np.cumsum(sizes, dtype=np.uint64) - sizes + np.uint64(self._end)
        with (self._dir / "data.bin").open("ab") as fh:
            fh.write(b"".join(encoded))
        with (self._dir / "offsets.u64").open("ab") as fh:
            fh.write(starts.tobytes())
        self._end += int(sizes.sum())
        self._written += len(self._buffer)
        self._buffer.clear()

    def close(self) -> None:
        """Drop everything and remove the file."""
        self._buffer.clear()
        if self._cleanup is not None:
            self._cleanup()


class SpillArray:
    """Append-only array of 64-bit integers: the newest in memory up to a cap, the rest in a file.

    For values read back only by position and in bulk (:meth:`take`), such as one value per
    distinct text needed again for a few pairs at the end: memory stays bounded by the cap.
    """

    def __init__(self, *, memory_items: int | None = None, directory: Path | None = None) -> None:
        self.memory_items = max(1, MEMORY_ITEMS if memory_items is None else memory_items)
        self._directory = directory
        self._buffer = array("q")
        self._written = 0
        self._path: Path | None = None
        self._cleanup: weakref.finalize | None = None

    def __len__(self) -> int:
        return self._written + len(self._buffer)

    def append(self, value: int) -> None:
        """Add ``value`` at index ``len(self)``."""
        if len(self._buffer) >= self.memory_items:
            self._flush()
        self._buffer.append(value)

    def _flush(self) -> None:
        if self._path is None:
            directory = Path(tempfile.mkdtemp(prefix="coord-array-", dir=self._directory))
            self._cleanup = weakref.finalize(self, shutil.rmtree, directory, True)
            self._path = directory / "values.i64"
        with self._path.open("ab") as fh:
            self._buffer.tofile(fh)
        self._written += len(self._buffer)
        self._buffer = array("q")

    def take(self, indices: np.ndarray) -> np.ndarray:
        """The values at ``indices`` (any order, repeats allowed), as int64."""
        idx = np.asarray(indices, dtype=np.int64)
        if len(idx) and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError("index out of range")
        out = np.empty(len(idx), dtype=np.int64)
        tail = idx >= self._written
        out[tail] = np.frombuffer(self._buffer, dtype=np.int64)[idx[tail] - self._written] \
            if len(self._buffer) else 0
        if self._path is not None and not tail.all():
            want = np.flatnonzero(~tail)
            order = want[np.argsort(idx[want], kind="stable")]
            with self._path.open("rb") as fh:  # one pass, a chunk at a time
                start, k = 0, 0
                while k < len(order) and len(chunk := np.fromfile(fh, dtype=np.int64,
                                                                  count=_TAKE_CHUNK)):
                    end = start + len(chunk)
                    stop = k + int(np.searchsorted(idx[order[k:]], end))
                    out[order[k:stop]] = chunk[idx[order[k:stop]] - start]
                    start, k = end, stop
        return out

    def close(self) -> None:
        """Drop everything and remove the file."""
        self._buffer = array("q")
        if self._cleanup is not None:
            self._cleanup()


_TAKE_CHUNK = 1 << 15  # values read per step by SpillArray.take (256 kB)
