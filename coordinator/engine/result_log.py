"""The durable records of a run's finished task dispatches: one append-only log per run.

A worker appends a task's final record to ``.coord/runs/<run>/results.jsonl`` *before* it
reports the task (see :mod:`coordinator.engine.pool`). If the process dies after that write
but before a checkpoint holds the result, the resumed run finds the record here and takes it
instead of running the task again.

One line per record, ``{"task": …, "dispatch": …, "record": {…}}``, written with a single
``write`` on an ``O_APPEND`` descriptor, so records of concurrent threads and processes never
interleave. A process killed in the middle of a write leaves a torn last line: readers skip
it (that dispatch runs again, as if the write had not begun), and the next writer ends it
with a newline before appending. Not fsynced, like the checkpoint it stands in for between
two steps (SQLite WAL, ``synchronous=NORMAL``): a killed process loses nothing; a power
loss can lose the last records, and their tasks run again.

One file instead of a file per dispatch: creating, renaming and listing thousands of small
files cost more than a no-op task, and worker threads contended for the directory's lock.
Runs written by earlier versions kept ``results/<task>.<dispatch>.json`` files; they are
still read.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import Any

import orjson

from coordinator.core.io import AppendFile, wrote
from coordinator.core.state import TaskRecord

LOG_NAME = "results.jsonl"
LEGACY_DIR = "results"


class ResultLog:
    """Append and look up the records of one run's task dispatches; safe across threads and processes."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / LOG_NAME
        self._legacy = run_dir / LEGACY_DIR
        self._lock = threading.Lock()
        self._file = AppendFile(self.path)
        self._index: dict[tuple[str, int], TaskRecord] = {}
        self._offset = 0  # bytes of the log already indexed
        self._exists = False  # the log is known to exist
        self._has_legacy: bool | None = None  # an earlier version's results/ directory is there

    def get(self, task_id: str, dispatch: int) -> TaskRecord | None:
        """The record of ``task_id``'s ``dispatch``, if one was written (by any process); None: none."""
        key = (task_id, dispatch)
        with self._lock:
            if key not in self._index:
                self._catch_up()
            rec = self._index.get(key)
        if rec is None:
            rec = self._legacy_record(task_id, dispatch)
        return None if rec is None else dict(rec)  # type: ignore[return-value]

    def append(self, task_id: str, dispatch: int, record: TaskRecord) -> None:
        """Write one record durably enough to survive a kill of this process (one line, one write).

        An ``OSError`` (a full disk) names the log file; a torn partial line is ended before the next one.
        """
        line = orjson.dumps({"task": task_id, "dispatch": dispatch, "record": record},
                            option=orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS)
        with self._lock:
            if not self._exists:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._exists = True
            self._file.append(line)
            self._index[(task_id, dispatch)] = record
        wrote("result", self.path)  # crash tests: may die here

    def close(self) -> None:
        """Close the log's descriptor (the next append opens it again)."""
        self._file.close()

    def _catch_up(self) -> None:
        """Index the lines written since the last look (by this process or another)."""
        if not self._exists:
            if not self.path.exists():
                return
            self._exists = True
        fd = self._file.descriptor()
        size = os.fstat(fd).st_size
        if size <= self._offset:
            return
        data = os.pread(fd, size - self._offset, self._offset)
        end = data.rfind(b"\n") + 1  # a last line without its newline is being written, or torn
        for raw in data[:end].splitlines():
            entry = _parse(raw)
            if entry is not None:
                self._index[entry[0]] = entry[1]
        self._offset += end

    def _legacy_record(self, task_id: str, dispatch: int) -> TaskRecord | None:
        if self._has_legacy is None:
            self._has_legacy = self._legacy.is_dir()  # earlier versions only: it never appears later
        if not self._has_legacy:
            return None
        path = self._legacy / f"{_legacy_stem(task_id)}.{dispatch}.json"
        try:
            rec = orjson.loads(path.read_bytes())
        except (FileNotFoundError, orjson.JSONDecodeError):
            return None
        return rec if isinstance(rec, dict) else None  # type: ignore[return-value]


def _parse(raw: bytes) -> tuple[tuple[str, int], TaskRecord] | None:
    """(task, dispatch) and the record of one line; None for a garbled line (a torn write)."""
    try:
        entry: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(entry, dict):
        return None
    task, dispatch, record = entry.get("task"), entry.get("dispatch"), entry.get("record")
    if not isinstance(task, str) or not isinstance(dispatch, int) or not isinstance(record, dict):
        return None
    return (task, dispatch), record  # type: ignore[return-value]


def _legacy_stem(task_id: str) -> str:
    """The file name earlier versions gave a task's record under ``results/``."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in task_id)


def dispatch_stem(task_id: str, dispatch: int) -> str:
    """``<task>.<dispatch>`` with the task id made safe for a file name (its log file).

    A ``foreach`` copy ``pack[s0]`` is ``pack@s0`` (a plain id has no ``@``, so no copy meets one); an
    item with characters a file name cannot hold has them replaced and gets a short hash of itself, so
    ``a[x y]`` and ``a[x/y]`` log apart."""
    base, bracket, item = task_id.partition("[")
    if bracket and item.endswith("]"):
        item = item[:-1]
        safe = _legacy_stem(item)
        if safe != item:
            safe += "-" + hashlib.blake2b(item.encode(), digest_size=3).hexdigest()
        return f"{_legacy_stem(base)}@{safe}.{dispatch}"
    return f"{_legacy_stem(task_id)}.{dispatch}"


def recorded(run_dir: Path) -> dict[tuple[str, int], TaskRecord]:
    """Every record in a run's log, by (task, dispatch); torn lines left out."""
    log = ResultLog(run_dir)
    with log._lock:
        log._catch_up()
        return dict(log._index)
