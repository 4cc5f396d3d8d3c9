"""Read a run's latest state straight from LangGraph's Postgres tables, as ``checkpoint_read`` does
from SQLite: no LangGraph loaded, so ``coord status`` stays quick on a shared database too."""

from __future__ import annotations

from typing import Any

from coordinator.core.database import Database
from coordinator.engine.checkpoint_read import DELTA_CHANNELS, decode, whole_maps, with_writes

BLOBS_OF = """
    SELECT bl.channel, bl.type, bl.blob
    FROM checkpoints c
    CROSS JOIN LATERAL jsonb_each_text(c.checkpoint -> 'channel_versions') AS v(channel, version)
    JOIN checkpoint_blobs bl ON bl.thread_id = c.thread_id AND bl.checkpoint_ns = c.checkpoint_ns
        AND bl.channel = v.channel AND bl.version = v.version
    WHERE c.thread_id = %s AND c.checkpoint_ns = %s AND c.checkpoint_id = %s AND bl.channel = ANY(%s)
"""


class MissingCheckpoint(LookupError):
    """A checkpoint a later one is stored as changes to is gone."""



def latest_state(db: Database, thread_id: str) -> tuple[dict[str, Any], str] | None:
    """What ``graph.get_state`` would show for ``thread_id``, read straight from the tables (no LangGraph
    graph), and its checkpoint id; None when the thread has no checkpoint. Raises
    :class:`coordinator.engine.checkpoint_read.Unreadable` for what only LangGraph reads."""
    with db.connection() as conn:
        row = conn.execute("SELECT checkpoint_id, checkpoint -> 'channel_values' FROM checkpoints WHERE "
                           "thread_id = %s AND checkpoint_ns = '' ORDER BY checkpoint_id DESC LIMIT 1",
                           (thread_id,)).fetchone()
        if row is None:
            return None
        checkpoint_id, inline = row

        def blobs(cid: str, channels: list[str]) -> dict[str, Any]:
            found = conn.execute(BLOBS_OF, (thread_id, "", cid, channels)).fetchall()
            return {channel: decode(kind, bytes(blob)) for channel, kind, blob in found if kind != "empty"}

        def load(cid: str) -> dict[str, Any]:
            if conn.execute("SELECT 1 FROM checkpoints WHERE thread_id = %s AND checkpoint_ns = '' AND "
                            "checkpoint_id = %s", (thread_id, cid)).fetchone() is None:
                raise MissingCheckpoint(f"checkpoint {cid} of run {thread_id} is missing, and a later "
                                        "checkpoint is stored as changes to it")
            return blobs(cid, list(DELTA_CHANNELS))

        names = conn.execute("SELECT jsonb_object_keys(checkpoint -> 'channel_versions') FROM checkpoints WHERE "
                             "thread_id = %s AND checkpoint_ns = '' AND checkpoint_id = %s",
                             (thread_id, checkpoint_id)).fetchall()
        values = whole_maps({**(inline or {}), **blobs(checkpoint_id, [n for (n,) in names])}, load)
        writes = conn.execute("SELECT task_id, channel, type, blob FROM checkpoint_writes WHERE thread_id = %s AND "
                              "checkpoint_ns = '' AND checkpoint_id = %s ORDER BY task_id, idx",
                              (thread_id, checkpoint_id)).fetchall()
    return with_writes(values, [(t, c, k, bytes(b)) for t, c, k, b in writes]), checkpoint_id
