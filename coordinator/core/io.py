"""Streaming JSONL and atomic file writes shared by every step.

Readers yield one parsed line at a time and send bad lines to a rejects sink,
so memory stays flat whatever the file size and nothing is dropped silently.
Writers stream into a temporary file beside the target and rename it into
place only when the block exits cleanly, hashing the bytes on the way.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson

from coordinator.core.errors import InputError

FAULT_AT_WRITE = "COORD_FAULT_AT_WRITE"
"""Crash tests: ``N`` makes the process die (exit 137, as from SIGKILL) right after its N-th write."""
TRACE_WRITES = "COORD_TRACE_WRITES"
"""Crash tests: a file that gets one line, ``N kind target``, per write the process makes."""
_FAULT_AT = int(os.environ[FAULT_AT_WRITE]) if os.environ.get(FAULT_AT_WRITE, "").isdigit() else None
_TRACE = os.environ.get(TRACE_WRITES) or None
_writes = 0
_writes_lock = threading.Lock()


def wrote(kind: str, target: object) -> None:
    """Count one write of coord's state or outputs (an atomic file, an event, a board, a checkpoint).

    Only crash tests listen (:data:`FAULT_AT_WRITE`, :data:`TRACE_WRITES`, read when the process
    starts); otherwise this returns at once.
    """
    if _FAULT_AT is None and _TRACE is None:
        return
    global _writes
    with _writes_lock:
        _writes += 1
        n = _writes
        if _TRACE is not None:
            with open(_TRACE, "a", encoding="utf-8") as fh:
                fh.write(f"{n} {kind} {target}\n")
    if n == _FAULT_AT:
        os._exit(137)


_DUMP_OPTS = orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS
_UMASK = os.umask(0o022)
os.umask(_UMASK)
_FILE_MODE = 0o666 & ~_UMASK
"""mkstemp creates 0600 files; outputs get the mode a normal open() would give them."""


def dumps_line(obj: Any) -> bytes:
    """Serialize one JSONL line (with its trailing newline)."""
    return orjson.dumps(obj, option=_DUMP_OPTS)


def atomic_write_bytes(path: Path, data: bytes, *, durable: bool = True, private_tmp: bool = False) -> None:
    """Write ``data`` to ``path`` so a crash leaves either the old file or the new one.

    ``durable``: also flush it to the disk before it replaces the old file, so that a power loss
    cannot leave an empty file (a killed process cannot either way). ``private_tmp``: only this
    caller ever writes ``path`` (a task's result record), so a fixed temporary name beside it
    will do, and the directory is known to exist.
    """
    if private_tmp:
        tmp = str(path.with_name(f".{path.name}.tmp"))
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, _FILE_MODE)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if not private_tmp:
            os.fchmod(fd, _FILE_MODE)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as e:
        _unlink_quietly(Path(tmp))
        if e.filename is None:  # name the file a full disk or a read-only mount refused
            raise OSError(e.errno, e.strerror, str(path)) from e
        raise
    except BaseException:
        _unlink_quietly(Path(tmp))
        raise
    wrote("file", path)


def atomic_write_text(path: Path, text: str) -> None:
    """Atomically write UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


def json_bytes(obj: Any) -> bytes:
    """Pretty, key-sorted JSON with a final newline: stable bytes for stable input."""
    return orjson.dumps(obj, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE
                        | orjson.OPT_NON_STR_KEYS)


def atomic_write_json(path: Path, obj: Any) -> None:
    """Atomically write pretty, key-sorted JSON (stable bytes for stable input)."""
    atomic_write_bytes(path, json_bytes(obj))


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        return


class AppendFile:
    """A log written only by appending whole lines, each with one ``write`` on a kept-open ``O_APPEND``
    descriptor, so lines of concurrent threads and processes never interleave (opening the file for
    every line cost more than a no-op task).

    A process killed in the middle of a write leaves a torn last line; the next writer ends it with a
    newline before its own line, so only the torn line is lost, never the one after it. The caller
    serializes its own threads' calls.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._torn = False  # the file does not end with a newline: end it before the next line

    def descriptor(self) -> int:
        """The open descriptor (read/write, appending); opened again if the file was removed."""
        if self._fd is not None:
            try:
                if os.fstat(self._fd).st_nlink > 0:
                    return self._fd
            except OSError:
                pass
            self.close()
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        self._torn = self._ends_torn(self._fd)
        return self._fd

    @staticmethod
    def _ends_torn(fd: int, looks: int = 4, pause: float = 0.002) -> bool:
        """Whether the file ends without a newline and stays so: a line another process is writing at
        this moment lacks its newline too, until its ``write`` is through (a few microseconds), and must
        not be taken for a torn one (ending it would leave a blank line)."""
        size = os.fstat(fd).st_size
        for look in range(looks):
            if not size or os.pread(fd, 1, size - 1) == b"\n":
                return False
            if look < looks - 1:
                time.sleep(pause)
                size = os.fstat(fd).st_size
        return True

    def append(self, line: bytes) -> None:
        """Append one line (ending with a newline); a full disk raises ``OSError`` naming the file."""
        fd = self.descriptor()
        data = b"\n" + line if self._torn else line
        try:
            written = self._write(fd, data)
        except OSError as e:
            self._torn = True  # it may have written part of the line
            raise OSError(e.errno, e.strerror, str(self.path)) from e
        if written != len(data):  # a short write: only a full disk does that to a regular file
            self._torn = True
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path))
        self._torn = False

    def _write(self, fd: int, data: bytes) -> int:
        return os.write(fd, data)

    def close(self) -> None:
        """Close the descriptor (the next line opens the file again)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def __del__(self) -> None:
        self.close()


class AtomicWriter:
    """Binary file written to a temp sibling and renamed into place on success.

    Tracks the byte count and sha256 of everything written.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.bytes = 0
        self._hash = hashlib.sha256()
        self._fh: Any = None
        self._tmp: Path | None = None

    def __enter__(self) -> AtomicWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        os.fchmod(fd, _FILE_MODE)
        self._tmp = Path(tmp)
        self._fh = os.fdopen(fd, "wb", buffering=1 << 20)
        return self

    def write(self, data: bytes) -> None:
        """Append raw bytes."""
        self._fh.write(data)
        self._hash.update(data)
        self.bytes += len(data)

    @property
    def sha256(self) -> str:
        """Hex sha256 of the bytes written so far."""
        return self._hash.hexdigest()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        assert self._fh is not None and self._tmp is not None
        if exc_type is not None:
            self._fh.close()
            _unlink_quietly(self._tmp)
            return
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        os.replace(self._tmp, self.path)
        wrote("file", self.path)


class JsonlWriter(AtomicWriter):
    """Atomic JSONL writer: one object per line, counted and hashed."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.count = 0

    def __enter__(self) -> JsonlWriter:
        super().__enter__()
        return self

    def write_obj(self, obj: Any) -> None:
        """Serialize and append one record."""
        self.write(dumps_line(obj))
        self.count += 1

    def write_line(self, line: bytes) -> None:
        """Append one record already serialized as :func:`dumps_line` would (newline included)."""
        self._fh.write(line)  # AtomicWriter.write, inlined: steps call this for every row
        self._hash.update(line)
        self.bytes += len(line)
        self.count += 1


class Rejects:
    """Collects bad input lines into ``<output>.rejects.jsonl`` with line number and reason.

    The file is written only when something was rejected; a stale rejects file
    from an earlier run is removed so the directory always tells the truth.
    """

    def __init__(self, output: Path) -> None:
        self.path = rejects_path(output)
        self.count = 0
        self._writer: JsonlWriter | None = None
        self.samples: list[dict[str, Any]] = []

    def add(self, *, source: Path | str, line: int, reason: str, raw: str | bytes | None = None,
            field: str | None = None) -> None:
        """Record one rejected line."""
        if self._writer is None:
            self._writer = JsonlWriter(self.path).__enter__()
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8", errors="replace")
        rec = {"source": str(source), "line": line, "field": field, "reason": reason, "raw": raw}
        self._writer.write_obj(rec)
        self.count += 1
        if len(self.samples) < 5:
            self.samples.append(rec)

    def close(self) -> None:
        """Finish the rejects file (or remove a stale one when nothing was rejected)."""
        if self._writer is not None:
            self._writer.__exit__(None, None, None)
            self._writer = None
        elif self.path.exists():
            self.path.unlink()

    def __enter__(self) -> Rejects:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is not None and self._writer is not None:
            self._writer.__exit__(exc_type, exc, tb)
            self._writer = None
            return
        self.close()


def rejects_path(output: Path) -> Path:
    """Where the rejects of ``output`` live."""
    output = Path(output)
    return output.with_name(f"{output.name}.rejects.jsonl")


def is_sidecar(path: Path) -> bool:
    """True for files coord writes beside data files (rejects, manifests, temp files)."""
    name = Path(path).name
    return name.endswith((".rejects.jsonl", ".manifest.json", ".tmp")) or name.startswith(".")


def data_files(directory: Path, pattern: str = "*.jsonl") -> list[Path]:
    """Data files of a directory in a stable order, sidecars excluded."""
    return sorted(p for p in Path(directory).glob(pattern) if p.is_file() and not is_sidecar(p))


def iter_jsonl(path: Path, rejects: Rejects | None = None) -> Iterator[tuple[int, Any]]:
    """Yield ``(line_number, object)`` for every parseable line of ``path``.

    Blank lines are skipped. Lines that are not JSON go to ``rejects`` with the
    parser's reason; without a sink they raise :class:`InputError` naming file and line.
    """
    for lineno, _, obj in iter_jsonl_lines(path, rejects):
        yield lineno, obj


def iter_jsonl_lines(path: Path, rejects: Rejects | None = None) -> Iterator[tuple[int, bytes, Any]]:
    """:func:`iter_jsonl` that also yields each line's bytes as read (newline included)."""
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", path=path)
    loads, error = orjson.loads, orjson.JSONDecodeError
    with path.open("rb", buffering=1 << 20) as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                obj = loads(raw)  # skips the newline and blanks around the value: no stripped copy
            except error:
                # blank, or whitespace orjson does not skip (form feed…), or not JSON: judge it stripped
                stripped = raw.strip()
                if not stripped:
                    continue
                try:
                    obj = loads(stripped)
                except error as e:
                    if rejects is None:
                        raise InputError(f"invalid JSON: {e}", path=path, line=lineno) from e
                    rejects.add(source=path, line=lineno, reason=f"invalid JSON: {e}", raw=stripped)
                    continue
            yield lineno, raw, obj


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, streamed."""
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
