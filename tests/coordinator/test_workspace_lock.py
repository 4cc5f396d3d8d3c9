"""The workspace lock: `coord status` probing it never makes a starting run report a busy workspace."""

from __future__ import annotations

import fcntl
import threading
import time

import pytest

from coordinator.core.errors import WorkspaceBusyError
from coordinator.core.workspace import PROBE_WAIT_S, Workspace, WorkspaceLock, lock_holder


def _probe_held_for(ws: Workspace, seconds: float) -> threading.Thread:
    """Hold the lock shared, as lock_holder() does while it looks, for ``seconds``."""
    ws.state_dir.mkdir(parents=True, exist_ok=True)
    fh = (ws.state_dir / "lock").open("a+")
    fcntl.flock(fh.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)

    def release() -> None:
        time.sleep(seconds)
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        fh.close()

    thread = threading.Thread(target=release)
    thread.start()
    return thread


def test_a_run_starting_during_a_status_probe_waits_it_out(tmp_path):
    ws = Workspace.at(tmp_path)
    probe = _probe_held_for(ws, 0.2)
    started = time.monotonic()
    with WorkspaceLock(ws) as lock:
        lock.claim("r1")
        assert time.monotonic() - started >= 0.15
        holder = lock_holder(ws)
    probe.join()
    assert holder is not None and holder.run_id == "r1"


def test_a_run_holding_the_lock_still_makes_the_workspace_busy_at_once(tmp_path):
    ws = Workspace.at(tmp_path)
    with WorkspaceLock(ws):
        started = time.monotonic()
        with pytest.raises(WorkspaceBusyError, match="is in use by pid"), WorkspaceLock(ws):
            pass
        assert time.monotonic() - started < PROBE_WAIT_S / 2


def test_runs_never_see_a_busy_workspace_while_status_polls(tmp_path):
    ws = Workspace.at(tmp_path)
    ws.state_dir.mkdir(parents=True)
    stop = threading.Event()
    probes = 0

    def poll() -> None:
        nonlocal probes
        while not stop.is_set():
            lock_holder(ws)
            probes += 1

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        for _ in range(300):
            with WorkspaceLock(ws):
                pass
    finally:
        stop.set()
        poller.join()
    assert probes > 0
