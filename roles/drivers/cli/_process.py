"""Run an agent CLI in its own process group, log its output redacted, and kill it whole.

The agent runs in a new session so a timeout or cancellation can signal every
process it started (shells, test runners, language servers), not just the
one coord spawned. Process groups still alive when coord exits are killed
too, so an interrupted run leaves no agent working unsupervised.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from roles.redact import Redactor

GRACE_S = 3.0
"""Seconds between SIGTERM and SIGKILL."""
_ACTIVE: set[int] = set()
_ACTIVE_LOCK = threading.Lock()


@dataclass(frozen=True)
class ProcessResult:
    """How the agent process ended and what it printed."""

    exit_code: int | None
    """None when coord killed it."""
    stdout: str
    stderr: str
    timed_out: bool
    cancelled: bool
    duration_s: float


def kill_group(pgid: int, grace: float = GRACE_S) -> None:
    """SIGTERM a process group, then SIGKILL whatever is left after ``grace`` seconds."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _kill_active() -> None:
    with _ACTIVE_LOCK:
        groups = list(_ACTIVE)
    for pgid in groups:
        kill_group(pgid, grace=0.5)


atexit.register(_kill_active)


class _Log:
    """Thread-safe, redacting line writer."""

    def __init__(self, fh: IO[str], redactor: Redactor) -> None:
        self.fh, self.redactor, self.lock = fh, redactor, threading.Lock()

    def write(self, line: str) -> None:
        with self.lock:
            self.fh.write(self.redactor(line.rstrip("\n")) + "\n")
            self.fh.flush()


def _pump(stream: IO[bytes], sink: list[str], log: _Log, prefix: str) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", errors="replace")
        sink.append(line)
        log.write(prefix + line)
    stream.close()


def run_in_group(argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], log_path: Path,
                 redactor: Redactor, cancel: threading.Event, timeout: float | None,
                 shown_argv: Sequence[str] | None = None) -> ProcessResult:
    """Run ``argv`` with stdin closed until it exits, times out or ``cancel`` is set.

    Raises FileNotFoundError when the executable does not exist.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with log_path.open("a", encoding="utf-8") as fh:
        log = _Log(fh, redactor)
        log.write(f"$ {' '.join(shown_argv or argv)}")
        log.write(f"# cwd: {cwd}")
        proc = subprocess.Popen(list(argv), cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        with _ACTIVE_LOCK:
            _ACTIVE.add(proc.pid)
        out: list[str] = []
        err: list[str] = []
        assert proc.stdout is not None and proc.stderr is not None
        readers = [threading.Thread(target=_pump, args=(proc.stdout, out, log, ""), daemon=True),
                   threading.Thread(target=_pump, args=(proc.stderr, err, log, "[stderr] "), daemon=True)]
        for r in readers:
            r.start()
        deadline = started + timeout if timeout else None
        timed_out = cancelled = False
        try:
            while True:
                try:
                    proc.wait(timeout=0.1)
                    break
                except subprocess.TimeoutExpired:
                    pass
                if cancel.is_set():
                    cancelled = True
                elif deadline is not None and time.monotonic() > deadline:
                    timed_out = True
                if cancelled or timed_out:
                    kill_group(proc.pid)
                    proc.wait()
                    break
        finally:
            # Whatever the agent left running in its group (background servers, stray shells) goes too.
            kill_group(proc.pid, grace=0.5)
            with _ACTIVE_LOCK:
                _ACTIVE.discard(proc.pid)
        for r in readers:
            r.join(timeout=5)
        duration = time.monotonic() - started
        code = None if (timed_out or cancelled) else proc.returncode
        ending = ("timed out" if timed_out else "cancelled" if cancelled else f"exit {code}")
        log.write(f"# {ending} after {duration:.1f}s")
    return ProcessResult(code, "".join(out), "".join(err), timed_out, cancelled, duration)
