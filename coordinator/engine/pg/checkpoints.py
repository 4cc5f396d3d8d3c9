"""Checkpoints on Postgres: LangGraph's PostgresSaver with coord's delta encoding, pruning and direct reader.

LangGraph's Postgres tables keep a checkpoint's primitive channel values inline and every other
channel as a blob per (channel, version); a record map (``tasks``, ``gates``, ``deferred``) is
stored, like on SQLite, as its changes since the parent checkpoint (:class:`Deltas`, one
implementation for both savers). :func:`prune` is the Postgres form of
:func:`coordinator.engine.checkpoint.prune`; the direct reader is :mod:`coordinator.engine.pg.reader`.
"""

from __future__ import annotations

from typing import Any

from langgraph.checkpoint.postgres import PostgresSaver

from coordinator.engine.checkpoint import Deltas, Key
from coordinator.engine.checkpoint_read import DELTA_CHANNELS
from coordinator.engine.pg.reader import BLOBS_OF, MissingCheckpoint


class PgDeltaSaver(Deltas, PostgresSaver):
    """A PostgresSaver (on a connection pool) that stores the record maps as deltas from the parent."""

    def __init__(self, pool: Any) -> None:
        super().__init__(pool)
        self._init_deltas()

    def _channel_values(self, key: Key, checkpoint_id: str, channel: str) -> dict[str, Any]:
        with self._cursor() as cur:
            exists = cur.execute("SELECT 1 FROM checkpoints WHERE thread_id = %s AND checkpoint_ns = %s AND "
                                 "checkpoint_id = %s", (key[0], key[1], checkpoint_id)).fetchone()
            if exists is None:
                raise MissingCheckpoint(f"checkpoint {checkpoint_id} of run {key[0]} is missing, and a later "
                                        "checkpoint is stored as changes to it")
            rows = cur.execute(BLOBS_OF, (key[0], key[1], checkpoint_id, [channel])).fetchall()
        out: dict[str, Any] = {}
        for row in rows:
            if row["type"] != "empty":
                out[row["channel"]] = self.serde.loads_typed((row["type"], row["blob"]))
        return out


def prune(saver: PgDeltaSaver, thread_id: str, keep: int = 1) -> int:
    """Drop a thread's checkpoints, pending writes and unreferenced blobs but the last ``keep``.

    The record maps of the kept checkpoints are rewritten whole first, so none depends on a
    dropped one; everything is one transaction. ``keep`` 0 keeps everything.
    """
    if keep <= 0:
        return 0
    with saver._cursor() as cur:
        rows = cur.execute("SELECT checkpoint_ns, checkpoint_id FROM checkpoints WHERE thread_id = %s "
                           "ORDER BY checkpoint_id DESC", (thread_id,)).fetchall()
    by_ns: dict[str, list[str]] = {}
    for row in rows:
        by_ns.setdefault(row["checkpoint_ns"], []).append(row["checkpoint_id"])
    dropped = 0
    for ns, ids in by_ns.items():
        if len(ids) <= keep:
            continue
        whole = [saver.get_tuple({"configurable": {"thread_id": thread_id, "checkpoint_ns": ns,
                                                   "checkpoint_id": cid}}) for cid in ids[:keep]]
        oldest = ids[keep - 1]
        with saver._cursor() as cur, cur.connection.transaction():
            for found in whole:
                if found is None:
                    continue
                versions = found.checkpoint["channel_versions"]
                for channel in DELTA_CHANNELS:
                    value = found.checkpoint["channel_values"].get(channel)
                    if isinstance(value, dict) and channel in versions:
                        kind, blob = saver.serde.dumps_typed(value)
                        cur.execute("UPDATE checkpoint_blobs SET type = %s, blob = %s WHERE thread_id = %s AND "
                                    "checkpoint_ns = %s AND channel = %s AND version = %s",
                                    (kind, blob, thread_id, ns, channel, str(versions[channel])))
            cur.execute("DELETE FROM checkpoints WHERE thread_id = %s AND checkpoint_ns = %s AND checkpoint_id < %s",
                        (thread_id, ns, oldest))
            dropped += cur.rowcount
            cur.execute("DELETE FROM checkpoint_writes WHERE thread_id = %s AND checkpoint_ns = %s AND "
                        "checkpoint_id < %s", (thread_id, ns, oldest))
            cur.execute("DELETE FROM checkpoint_blobs b WHERE b.thread_id = %s AND b.checkpoint_ns = %s AND NOT EXISTS "
                        "(SELECT 1 FROM checkpoints c WHERE c.thread_id = b.thread_id AND c.checkpoint_ns = "
                        "b.checkpoint_ns AND c.checkpoint -> 'channel_versions' ->> b.channel = b.version)",
                        (thread_id, ns))
            cur.execute("UPDATE checkpoints SET parent_checkpoint_id = NULL WHERE thread_id = %s AND "
                        "checkpoint_ns = %s AND checkpoint_id = %s", (thread_id, ns, oldest))
    return dropped
