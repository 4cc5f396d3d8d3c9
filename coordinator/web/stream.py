"""Live run pages: a server-sent event stream of a run's sections.

Each open stream looks a few times a second at the files a run changes (the event log, the
checkpoint database, the run record, its decision inbox, the lock, its review records) and, when
one changed — or every few seconds regardless, since a driver dying changes no file — renders the
run page's sections again and sends those that differ. The browser's ``EventSource`` puts them in
place and reconnects by itself when a stream ends (each lasts ``stream_s``).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import orjson

from coordinator.core.errors import CoordError
from coordinator.core.events import latest_event_id
from coordinator.core.workspace import Workspace

log = logging.getLogger(__name__)

REFRESH_S = 5.0
"""Re-read the run at least this often even when no file changed (a live run whose process died)."""
KEEPALIVE_S = 15.0
"""Send a comment line when nothing else went out for this long (proxies close silent streams)."""
_KEY = re.compile(r'name="key" value="[0-9a-f]{32}"')
"""Idempotency keys of decision forms: new on every render, so left out when comparing sections."""


def fingerprint(ws: Workspace, run_id: str) -> tuple[tuple[int, int] | int | None, ...]:
    """(mtime, size) of every file whose change can change what the run page shows; on Postgres also the
    newest event of the run in the database, which a coordinator or worker on another machine writes."""
    paths: list[Path] = [ws.events, ws.db, ws.db.with_name(ws.db.name + "-wal"), ws.run_dir(run_id) / "run.json",
                         ws.run_dir(run_id) / "inbox", ws.state_dir / "lock", ws.reviews / run_id,
                         ws.state_dir / "ledger.sqlite-wal", ws.state_dir / "board_problems.json"]
    out: list[tuple[int, int] | int | None] = []
    if ws.database is not None:
        try:
            out.append(latest_event_id(ws.database, run_id))
        except Exception as e:  # a server away for a moment: the files and the periodic refresh still work
            log.info("dashboard stream of %s: no event id from the database (%s)", run_id, e)
            out.append(None)
    for path in paths:
        try:
            st = path.stat()
        except OSError:
            out.append(None)
            continue
        out.append((st.st_mtime_ns, st.st_size))
    return tuple(out)


def message(event: str, data: dict[str, Any]) -> str:
    """One server-sent event (the JSON on a single ``data:`` line)."""
    return f"event: {event}\ndata: {orjson.dumps(data).decode()}\n\n"


async def run_events(ws: Workspace, run_id: str, build: Callable[[], dict[str, Any]],
                     version: Callable[[], int], *, poll_s: float, stream_s: float) -> AsyncIterator[str]:
    """The event stream of one run page: ``update`` events with ``sections`` (HTML by section name,
    only those that changed), ``phase`` and the ``statuses`` of tasks and gates.

    ``build`` makes the run page's payload (it reads the checkpoint: run on a worker thread);
    ``version`` changes when a decision made through this server changes its outcome.
    """
    yield "retry: 1500\n\n"
    sent: dict[str, str] = {}
    last_seen: tuple[Any, ...] | None = None
    last_read = last_out = time.monotonic()
    end = last_read + stream_s
    while time.monotonic() < end:
        now = time.monotonic()
        seen = (fingerprint(ws, run_id), version())
        if seen != last_seen or now - last_read >= REFRESH_S:
            last_seen, last_read = seen, now
            try:
                payload = await anyio.to_thread.run_sync(build)
            except CoordError as e:  # a checkpoint mid-write, a record being replaced: the next look sees it
                log.info("dashboard stream of %s: %s", run_id, e)
                await anyio.sleep(poll_s)
                continue
            changed = {name: html for name, html in payload["sections"].items()
                       if _KEY.sub("", html) != _KEY.sub("", sent.get(name, ""))}
            if changed or not sent:
                sent.update(changed)
                last_out = now
                yield message("update", {**payload, "sections": changed})
        if now - last_out >= KEEPALIVE_S:
            last_out = now
            yield ": keep-alive\n\n"
        await anyio.sleep(poll_s)
