"""The checkpointer: LangGraph's SqliteSaver in the workspace, storing the record maps as deltas.

A checkpoint holds the whole state; most of it is the ``tasks``, ``gates`` and ``deferred``
maps, of which one step changes a few records. :class:`DeltaSaver` stores those maps as the
records that changed since the parent checkpoint (and the ids removed), with a whole copy
(a keyframe) whenever the deltas since the last one add up to more records than a copy holds,
or the chain reaches :data:`MAX_CHAIN`. Storage grows with what changed, not with
tasks × steps, and reading a checkpoint reads at most one keyframe and the deltas after it.
Everything else — pending writes, versions, metadata, interrupts — is LangGraph's own
format, untouched, and a database written before deltas existed reads as it always did.

:func:`prune` keeps a thread's last checkpoints (rewritten whole) and drops the rest.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.types import Durability

from coordinator.core.state import RecordMap, touched_since
from coordinator.engine.checkpoint_read import DELTA, DELTA_CHANNELS, is_damage, is_delta, resolve
from coordinator.engine.checkpoint_read import CheckpointDamaged as CheckpointDamaged
from coordinator.engine.checkpoint_read import damaged as damaged

DURABILITY: Durability = "sync"
"""Persist every superstep's checkpoint before the next one starts.

"async" may lose the latest checkpoint on SIGKILL and "exit" keeps nothing until
the run ends; with "sync" a finished task is on disk before anything depends on it.
"""
MAX_CHAIN = 256
"""Most deltas between two keyframes (bounds the rows one read needs)."""
_MISSING = object()

Key = tuple[str, str]
"""(thread id, checkpoint namespace)."""


def _diff(before: dict[str, Any] | None, after: dict[str, Any]) -> dict[str, Any] | None:
    """The records of ``after`` that differ from ``before`` and the ids it dropped (None: no base).

    Records the state's reducer did not touch are the same objects as before, so the usual
    comparison is by identity; only records that are new objects are compared by value.
    """
    if before is None:
        return None
    touched = touched_since(before, after)
    if touched is not None:  # the merges since ``before`` name the only ids that can differ (none dropped)
        return {"set": {k: v for k in touched if (b := before.get(k, _MISSING)) is not (v := after[k]) and b != v},
                "del": []}
    changed = {k: v for k, v in after.items() if (b := before.get(k, _MISSING)) is not v and b != v}
    dropped = list(before.keys() - after.keys()) if len(before) + len(changed) > len(after) else []
    return {"set": changed, "del": dropped}


class Deltas:
    """The delta encoding of the record maps, for any LangGraph saver it is mixed into (before it).

    The saver supplies :meth:`_channel_values` (a stored checkpoint's channel values, as stored);
    this class stores each checkpoint's maps as deltas from its parent's and makes them whole
    again on every read. :class:`DeltaSaver` (SQLite) and the Postgres saver share it.
    """

    def _init_deltas(self) -> None:
        # per thread: the last checkpoint written or read, its whole maps, and the records written
        # and deltas stored since the last keyframe
        self._last: dict[Key, tuple[str, dict[str, dict[str, Any]], int, int]] = {}
        self._mem_lock = threading.Lock()

    def _channel_values(self, key: Key, checkpoint_id: str, channel: str) -> dict[str, Any]:
        """The stored channel values of one checkpoint (at least ``channel``); an error if it is missing."""
        raise NotImplementedError

    def put(self, config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata,
            new_versions: ChannelVersions) -> RunnableConfig:
        """Store ``checkpoint`` with its record maps as deltas from the parent when that is smaller."""
        conf = config["configurable"]
        key: Key = (str(conf["thread_id"]), str(conf.get("checkpoint_ns", "")))
        parent = conf.get("checkpoint_id")
        values = checkpoint["channel_values"]
        maps = {c: values[c] for c in DELTA_CHANNELS if isinstance(values.get(c), dict)}
        with self._mem_lock:
            last = self._last.get(key)
        stored = dict(values)
        written = chain = 0
        if last is not None and parent is not None and last[0] == parent:
            _, before, written, chain = last
            deltas = {c: _diff(before.get(c), v) for c, v in maps.items()}
            size = sum(len(d["set"]) + len(d["del"]) for d in deltas.values() if d is not None)
            whole = sum(len(v) for v in maps.values())
            if all(d is not None for d in deltas.values()) and chain < MAX_CHAIN and written + size <= whole:
                for c, d in deltas.items():
                    stored[c] = {DELTA: 1, "base": parent, **(d or {})}
                written, chain = written + size, chain + 1
            else:
                written = chain = 0
        out: RunnableConfig = super().put(  # type: ignore[misc]
            config, {**checkpoint, "channel_values": stored}, metadata, new_versions)
        for m in maps.values():  # the next diff starts here: the links to earlier maps are not needed
            if isinstance(m, RecordMap):
                m.derived_from = None
        with self._mem_lock:
            self._last[key] = (checkpoint["id"], maps, written, chain)
        return out

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """LangGraph's read, with the record maps made whole again."""
        found: CheckpointTuple | None = super().get_tuple(config)  # type: ignore[misc]
        return None if found is None else self._expanded(found)

    def list(self, config: RunnableConfig | None, *, filter: dict[str, Any] | None = None,
             before: RunnableConfig | None = None, limit: int | None = None) -> Iterator[CheckpointTuple]:
        """LangGraph's listing, each checkpoint made whole."""
        for found in super().list(config, filter=filter, before=before, limit=limit):  # type: ignore[misc]
            yield self._expanded(found)

    def _expanded(self, found: CheckpointTuple) -> CheckpointTuple:
        values = found.checkpoint["channel_values"]
        if not any(is_delta(values.get(c)) for c in DELTA_CHANNELS):
            return found
        conf = found.config["configurable"]
        key: Key = (str(conf["thread_id"]), str(conf.get("checkpoint_ns", "")))
        with self._mem_lock:
            last = self._last.get(key)
        held = last[1] if last is not None and last[0] == conf.get("checkpoint_id") else None
        whole = dict(values)
        for c in DELTA_CHANNELS:
            if is_delta(values.get(c)):
                # the checkpoint this saver wrote last (a graph's final get_state): its maps are in memory
                whole[c] = dict(held[c]) if held is not None and c in held else self._resolve(key, c, values[c])
        checkpoint: Checkpoint = {**found.checkpoint, "channel_values": whole}
        return found._replace(checkpoint=checkpoint)

    def _resolve(self, key: Key, channel: str, delta: dict[str, Any]) -> dict[str, Any]:
        """The whole map a delta stands for (the map held in memory shortens the walk back)."""
        with self._mem_lock:
            last = self._last.get(key)
        known = (last[0], last[1][channel]) if last is not None and channel in last[1] else None

        return resolve(delta, channel, lambda cid: self._channel_values(key, cid, channel), known)


class DeltaSaver(Deltas, SqliteSaver):
    """A SqliteSaver that stores the record maps of a checkpoint as deltas from its parent."""

    def __init__(self, conn: sqlite3.Connection, **kw: Any) -> None:
        super().__init__(conn, **kw)
        self._init_deltas()

    def _channel_values(self, key: Key, checkpoint_id: str, channel: str) -> dict[str, Any]:
        row = self.conn.execute(
            "SELECT type, checkpoint FROM checkpoints WHERE thread_id = ? AND checkpoint_ns = ? "
            "AND checkpoint_id = ?", (key[0], key[1], checkpoint_id)).fetchone()
        if row is None:
            raise sqlite3.DatabaseError(f"checkpoint {checkpoint_id} of run {key[0]} is missing, and a later "
                                        "checkpoint is stored as changes to it")
        values: dict[str, Any] = self.serde.loads_typed((row[0], row[1]))["channel_values"]
        return values


def keep_checkpoints() -> int:
    """How many checkpoints of a run to keep when its graph stops (``COORD_KEEP_CHECKPOINTS``,
    default 1; 0 keeps them all, for debugging a run step by step)."""
    try:
        return max(0, int(os.environ.get("COORD_KEEP_CHECKPOINTS", "1")))
    except ValueError:
        return 1


def prune(saver: SqliteSaver, thread_id: str, keep: int = 1) -> int:
    """Drop a thread's checkpoints and pending writes but the last ``keep``; return how many went.

    The kept checkpoints are rewritten whole first, so none depends on a dropped one.
    ``keep`` 0 keeps everything.
    """
    if keep <= 0:
        return 0
    rows = saver.conn.execute("SELECT checkpoint_ns, checkpoint_id FROM checkpoints WHERE thread_id = ? "
                              "ORDER BY checkpoint_id DESC", (thread_id,)).fetchall()
    by_ns: dict[str, list[str]] = {}
    for ns, cid in rows:
        by_ns.setdefault(ns, []).append(cid)
    dropped = 0
    for ns, ids in by_ns.items():
        if len(ids) <= keep:
            continue
        whole = [saver.get_tuple({"configurable": {"thread_id": thread_id, "checkpoint_ns": ns,
                                                   "checkpoint_id": cid}}) for cid in ids[:keep]]
        with saver.lock:
            for cid, found in zip(ids[:keep], whole, strict=True):
                if found is not None:
                    kind, blob = saver.serde.dumps_typed(found.checkpoint)
                    saver.conn.execute("UPDATE checkpoints SET type = ?, checkpoint = ? WHERE thread_id = ? "
                                       "AND checkpoint_ns = ? AND checkpoint_id = ?", (kind, blob, thread_id, ns, cid))
            oldest = ids[keep - 1]
            for table in ("checkpoints", "writes"):
                cur = saver.conn.execute(f"DELETE FROM {table} WHERE thread_id = ? AND checkpoint_ns = ? "
                                         "AND checkpoint_id < ?", (thread_id, ns, oldest))
                dropped += cur.rowcount if table == "checkpoints" else 0
            saver.conn.execute("UPDATE checkpoints SET parent_checkpoint_id = NULL WHERE thread_id = ? AND "
                               "checkpoint_ns = ? AND checkpoint_id = ?", (thread_id, ns, oldest))
            saver.conn.commit()
    if dropped:
        pages = saver.conn.execute("PRAGMA page_count").fetchone()[0]
        free = saver.conn.execute("PRAGMA freelist_count").fetchone()[0]
        if pages and free * 2 > pages:  # mostly empty pages: give the space back
            saver.conn.execute("VACUUM")
    return dropped


@contextmanager
def open_saver(db: Path) -> Iterator[DeltaSaver]:
    """Open (creating if needed) the checkpoint database at ``db``; :class:`CheckpointDamaged` if it is not one."""
    db.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(db), check_same_thread=False)
    try:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            saver = DeltaSaver(conn)
            saver.setup()
        except sqlite3.DatabaseError as e:
            if not is_damage(e):  # locked, disk full, read-only: the database is as it was
                raise
            raise damaged(db, e) from None
        try:
            yield saver
        except sqlite3.DatabaseError as e:
            if not is_damage(e):  # locked, disk full, read-only: the database is as it was
                raise
            raise damaged(db, e) from None
    finally:
        conn.close()
