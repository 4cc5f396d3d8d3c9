"""Continuing a paused run in a process of its own, so a server can answer at once.

``coord approve`` continues a run in the terminal that asked: the person sees it go. A server
cannot: an MCP tool call or a web request that resumed the run inside itself would last as long
as the rest of the run, and a stdio MCP server ends with its client, taking the run down with it.
:func:`continue_in_background` starts ``coord resume RUN`` as a detached process instead (its own
session, so the server's end does not signal it), its output in
``.coord/logs/<run>/resume-<time>.log``. The workspace lock keeps it the only process that drives
the run; a decision or result it should take is already durable before it starts.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from coordinator.core.workspace import Workspace, lock_holder

_children: list[subprocess.Popen[bytes]] = []
_children_lock = threading.Lock()


@dataclass(frozen=True)
class Continuation:
    """A run handed to a process of its own (or left to the live run that already drives it)."""

    run_id: str
    pid: int | None
    """The ``coord resume`` process; None when a live process holds the workspace."""
    log: str | None
    """Its output, relative to the workspace."""
    busy_with: str | None = None
    """The run a live process drives when it is another one (ours then waits for ``coord resume``)."""

    def describe(self) -> str:
        """One sentence for a tool's or a page's answer."""
        if self.busy_with is not None:
            return (f"run {self.busy_with} drives the workspace now; run {self.run_id} takes this when it is "
                    f"resumed (`coord resume {self.run_id}`)")
        if self.pid is None:
            return f"the live run {self.run_id} takes it within a moment"
        return f"run {self.run_id} continues in the background (pid {self.pid}; output in {self.log})"


def continue_in_background(ws: Workspace, run_id: str) -> Continuation:
    """Resume ``run_id`` in a detached ``coord resume`` process, unless a live run already holds the workspace."""
    _reap()
    holder = lock_holder(ws)
    if holder is not None:
        other = holder.run_id if holder.run_id not in (None, run_id) else None
        return Continuation(run_id, None, None, other)
    logs = ws.state_dir / "logs" / run_id
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"resume-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{os.getpid()}.log"
    with open(log, "ab") as out:
        child = subprocess.Popen([sys.executable, "-m", "coordinator", "resume", run_id, "-w", str(ws.root)],
                                 stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                 cwd=ws.root, start_new_session=True)
    with _children_lock:
        _children.append(child)
    return Continuation(run_id, child.pid, Path(os.path.relpath(log, ws.root)).as_posix())


def _reap() -> None:
    """Collect the exit status of earlier continuations that ended (no zombies in a long-lived server)."""
    with _children_lock:
        _children[:] = [c for c in _children if c.poll() is None]
