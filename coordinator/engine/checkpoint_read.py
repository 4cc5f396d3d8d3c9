"""Read a run's latest state straight from the checkpoint database, without loading LangGraph.

``coord status`` and the other read-only commands need the state a run's graph would show:
the latest checkpoint's channel values, the record maps made whole (they are stored as deltas,
see :mod:`coordinator.engine.checkpoint`), and the writes of the steps that finished after that
checkpoint was taken (a run killed mid-step has them) applied with the state's own reducers —
which is what ``graph.get_state`` returns. Anything this reader does not understand (another
serialization, an extension type) raises :class:`Unreadable`, and the caller asks LangGraph.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ormsgpack

from coordinator.core.errors import CoordError
from coordinator.core.read_only import connect_read_only
from coordinator.core.state import merge_records

DELTA = "__coord_delta__"
DELTA_CHANNELS = ("tasks", "gates", "deferred")
"""State channels that are id → record maps (merged by ``merge_records``, stored as deltas)."""
LoadRow = Callable[[str], tuple[str, bytes] | None]
"""Checkpoint id → its (serialization type, blob), or None when it is missing."""


class CheckpointDamaged(CoordError):
    """The checkpoint database cannot be read: runs in it cannot be resumed or shown."""


def damaged(db: Path, error: BaseException) -> CheckpointDamaged:
    """The error to show for a checkpoint database SQLite refuses, with what to do."""
    return CheckpointDamaged(
        f"the checkpoint database {db} is damaged ({error}); its runs cannot be resumed or shown. "
        "`coord run PLAN --fresh` moves it aside (to state.sqlite.damaged-<time>) and starts a new run; "
        "data files, reports and the cost ledger are kept")


_NOT_DAMAGE = ("locked", "busy", "full", "readonly", "read-only", "unable to open", "disk i/o", "out of memory")


def is_damage(error: sqlite3.DatabaseError) -> bool:
    """Whether SQLite refused because the file is damaged, not because it is in use, the disk is full or
    the workspace is read-only (those leave the database as it was)."""
    if isinstance(error, sqlite3.OperationalError):
        text = str(error).lower()
        return not any(reason in text for reason in _NOT_DAMAGE)
    return True


def probe(db: Path) -> CheckpointDamaged | None:
    """Why the checkpoint database cannot be used (None when it can, or does not exist yet); asked
    before a run starts, without loading LangGraph."""
    if not db.exists():
        return None
    try:
        conn = sqlite3.connect(str(db))
    except sqlite3.DatabaseError as e:
        return damaged(db, e)
    try:
        conn.execute("PRAGMA journal_mode=WAL")  # reads the header: a file that is not a database fails here
        found = conn.execute("PRAGMA quick_check(1)").fetchone()  # every page's structure (milliseconds here:
        if found is not None and found[0] != "ok":  # finished runs keep one checkpoint)
            return damaged(db, sqlite3.DatabaseError(str(found[0])))
    except sqlite3.DatabaseError as e:
        return damaged(db, e) if is_damage(e) else None  # in use, disk full, read-only: the run says so itself
    finally:
        conn.close()
    return None


def move_aside(db: Path) -> Path:
    """Rename a damaged checkpoint database (and its WAL files) out of the way; the new name."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    target = db.with_name(f"{db.name}.damaged-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        part = db.with_name(db.name + suffix)
        if part.exists():
            part.replace(target.with_name(target.name + suffix))
    return target


class Unreadable(Exception):
    """The checkpoint uses something only LangGraph's own reader understands."""


def is_delta(value: Any) -> bool:
    """True for a record map stored as changes to its parent checkpoint's."""
    return isinstance(value, dict) and value.get(DELTA) == 1 and "base" in value


def resolve(delta: dict[str, Any], channel: str, load: Callable[[str], dict[str, Any]],
            known: tuple[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The whole map ``delta`` stands for: walk back (``load``: checkpoint id → its channel values)
    to a whole copy, or to ``known`` (a checkpoint id and its whole map, held in memory)."""
    chain = [delta]
    while True:
        parent = chain[-1]["base"]
        if known is not None and known[0] == parent:
            base = known[1]
            break
        value: Any = load(parent).get(channel)
        if not is_delta(value):
            base = dict(value or {})
            break
        chain.append(value)
    out = dict(base)
    for d in reversed(chain):
        for k in d["del"]:
            out.pop(k, None)
        out.update(d["set"])
    return out


def _no_ext(code: int, data: bytes) -> Any:
    raise Unreadable(f"extension type {code}")


def decode(kind: str, blob: bytes) -> Any:
    """A blob LangGraph's serializer wrote, when it holds plain data only."""
    if kind == "null":
        return None
    if kind != "msgpack":
        raise Unreadable(f"serialization {kind!r}")
    try:
        return ormsgpack.unpackb(blob, ext_hook=_no_ext, option=ormsgpack.OPT_NON_STR_KEYS)
    except ValueError as e:  # the hook's refusal arrives wrapped
        raise Unreadable(str(e)) from None


def _internal(channel: str) -> bool:
    """LangGraph's own bookkeeping channels (interrupts, errors, branch triggers), not state."""
    return channel.startswith("__") or ":" in channel


def latest_state(db: Path, thread_id: str) -> tuple[dict[str, Any], str] | None:
    """The state ``graph.get_state`` would return for ``thread_id`` and its checkpoint id; None
    when the thread has no checkpoint. Raises :class:`Unreadable` (ask LangGraph then) and
    ``sqlite3.DatabaseError`` (a damaged database)."""
    if not db.exists():
        return None
    conn = connect_read_only(db)
    try:
        row = conn.execute("SELECT checkpoint_id, type, checkpoint FROM checkpoints WHERE thread_id = ? AND "
                           "checkpoint_ns = '' ORDER BY checkpoint_id DESC LIMIT 1", (thread_id,)).fetchone()
        if row is None:
            return None
        checkpoint_id, kind, blob = row

        def load(cid: str) -> dict[str, Any]:
            found = conn.execute("SELECT type, checkpoint FROM checkpoints WHERE thread_id = ? AND "
                                 "checkpoint_ns = '' AND checkpoint_id = ?", (thread_id, cid)).fetchone()
            if found is None:
                raise sqlite3.DatabaseError(f"checkpoint {cid} of run {thread_id} is missing, and a later "
                                            "checkpoint is stored as changes to it")
            values: dict[str, Any] = decode(found[0], found[1])["channel_values"]
            return values

        values: dict[str, Any] = {k: v for k, v in decode(kind, blob)["channel_values"].items()
                                  if not _internal(k)}
        for channel in DELTA_CHANNELS:
            if is_delta(values.get(channel)):
                values[channel] = resolve(values[channel], channel, load)
        writes = conn.execute("SELECT task_id, channel, type, value FROM writes WHERE thread_id = ? AND "
                              "checkpoint_ns = '' AND checkpoint_id = ? ORDER BY task_id, idx",
                              (thread_id, checkpoint_id)).fetchall()
    finally:
        conn.close()
    return with_writes(values, writes), checkpoint_id


def with_writes(values: dict[str, Any], writes: list[tuple[str, str, str, bytes]]) -> dict[str, Any]:
    """``values`` with the pending writes (task, channel, type, blob) of the steps that finished after
    the checkpoint applied by the state's reducers (a failed step's writes are not)."""
    failed = {task for task, channel, _, _ in writes if channel == "__error__"}
    for task, channel, wkind, wblob in writes:
        if task in failed or _internal(channel):
            continue
        value = decode(wkind, wblob)
        values[channel] = merge_records(values.get(channel), value) if channel in DELTA_CHANNELS else value
    return values


def whole_maps(values: dict[str, Any], load: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    """``values`` (a checkpoint's, LangGraph's bookkeeping dropped) with its record maps made whole."""
    out = {k: v for k, v in values.items() if not _internal(k)}
    for channel in DELTA_CHANNELS:
        if is_delta(out.get(channel)):
            out[channel] = resolve(out[channel], channel, load)
    return out
