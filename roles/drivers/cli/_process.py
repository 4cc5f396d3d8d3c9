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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from roles.providers.redact import Redactor

GRACE_S = 3.0
"""Seconds between SIGTERM and SIGKILL."""
LINGER_S = 10.0
"""Seconds a CLI may stay after printing its complete result before coord ends it
(``COORD_CLI_LINGER_S`` overrides): some builds never exit on their own."""
_ACTIVE: set[int] = set()
_ACTIVE_LOCK = threading.Lock()
_STOPPING = threading.Event()
"""Set when this process is exiting (Ctrl-C, end of the command) and ends the groups still running."""


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
    ended_after_result: bool = False
    """The CLI printed its complete result but did not exit; coord ended its group after the grace."""
    interrupted: bool = False
    """coord itself was stopping (Ctrl-C) and ended the group: nothing says how the work would have
    ended. ``cancel`` is set too, so the task's result is not recorded and a resume runs it again."""


def kill_group(pgid: int, proc: subprocess.Popen[bytes] | None = None, grace: float = GRACE_S) -> None:
    """SIGTERM a process group, give its leader ``grace`` seconds to exit, then SIGKILL the group.

    Waiting on the leader (not on the group) matters: its exited-but-unreaped siblings would keep
    a group "alive" to ``killpg(pgid, 0)`` until the grace ran out.
    """
    try:
        os.killpg(pgid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    if proc is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
    else:
        time.sleep(min(grace, 0.5))
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _kill_active() -> None:
    _STOPPING.set()  # before the kill: a run that sees its group end knows why
    with _ACTIVE_LOCK:
        groups = list(_ACTIVE)
    for pgid in groups:
        kill_group(pgid)


atexit.register(_kill_active)


class _Log:
    """Thread-safe, redacting line writer."""

    def __init__(self, fh: IO[str], redactor: Redactor) -> None:
        self.fh, self.redactor, self.lock = fh, redactor, threading.Lock()

    def write(self, line: str) -> None:
        with self.lock:
            self.fh.write(self.redactor(line.rstrip("\n")) + "\n")
            self.fh.flush()


def _pump(stream: IO[bytes], sink: list[str], log: _Log, prefix: str,
          finished: Callable[[str], bool] | None = None, seen: list[float] | None = None) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", errors="replace")
        sink.append(line)
        log.write(prefix + line)
        if finished is not None and seen is not None and not seen and finished(line):
            seen.append(time.monotonic())
    stream.close()


def linger_seconds() -> float:
    """The grace after a complete result (``COORD_CLI_LINGER_S``, default :data:`LINGER_S`)."""
    try:
        return max(0.0, float(os.environ.get("COORD_CLI_LINGER_S", LINGER_S)))
    except ValueError:
        return LINGER_S


def _started_at(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, from /proc), or None where that is unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()  # the name in parentheses may hold spaces
    return fields[19] if len(fields) > 19 else None


def kill_stale(pid_file: Path, workdir: Path) -> bool:
    """Kill the group an earlier, killed coord process left running; True if it did.

    The group is signalled only while its leader is that same process: the file records when it
    started, which a pid the system has since given to another process does not match. (A file
    written without that time: only while the leader runs inside ``workdir``.)
    """
    try:
        recorded = pid_file.read_text().split()
        pgid = int(recorded[0])
    except (FileNotFoundError, ValueError, IndexError, OSError):
        pid_file.unlink(missing_ok=True)
        return False
    pid_file.unlink(missing_ok=True)
    if len(recorded) > 1:
        if _started_at(pgid) != recorded[1]:
            return False
    else:
        try:
            cwd = Path(os.readlink(f"/proc/{pgid}/cwd")).resolve()
        except OSError:
            return False
        if cwd != workdir.resolve() and workdir.resolve() not in cwd.parents:
            return False
    kill_group(pgid)
    return True


def run_in_group(argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], log_path: Path,
                 redactor: Redactor, cancel: threading.Event, timeout: float | None,
                 shown_argv: Sequence[str] | None = None, pid_file: Path | None = None,
                 finished: Callable[[str], bool] | None = None) -> ProcessResult:
    """Run ``argv`` with stdin closed until it exits, times out or ``cancel`` is set.

    ``pid_file`` holds the group id while it runs, so a resumed run can stop an agent its
    killed predecessor left behind. ``finished`` recognises the stdout line that completes the
    CLI's output: a CLI still running :func:`linger_seconds` after it is ended, and its output
    kept. Raises FileNotFoundError when the executable does not exist.
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
        if pid_file is not None:
            pid_file.parent.mkdir(parents=True, exist_ok=True)
            pid_file.write_text(f"{proc.pid} {_started_at(proc.pid) or ''}".rstrip() + "\n")
        out: list[str] = []
        err: list[str] = []
        assert proc.stdout is not None and proc.stderr is not None
        seen: list[float] = []
        linger = linger_seconds()
        readers = [threading.Thread(target=_pump, args=(proc.stdout, out, log, "", finished, seen), daemon=True),
                   threading.Thread(target=_pump, args=(proc.stderr, err, log, "[stderr] "), daemon=True)]
        for r in readers:
            r.start()
        deadline = started + timeout if timeout else None
        timed_out = cancelled = lingered = False
        try:
            while True:
                try:
                    proc.wait(timeout=0.1)
                    break
                except subprocess.TimeoutExpired:
                    pass
                if cancel.is_set():
                    cancelled = True
                elif seen and time.monotonic() - seen[0] > linger:
                    lingered = True
                    log.write(f"# the CLI printed its result but had not exited {linger:g}s later: "
                              "coord ends its process group and keeps the result")
                elif deadline is not None and time.monotonic() > deadline:
                    timed_out = True
                if cancelled or timed_out or lingered:
                    kill_group(proc.pid, proc)
                    proc.wait()
                    break
        finally:
            # Whatever the agent left running in its group (background servers, stray shells) goes too.
            kill_group(proc.pid, proc)
            with _ACTIVE_LOCK:
                _ACTIVE.discard(proc.pid)
            if pid_file is not None:
                pid_file.unlink(missing_ok=True)
        # Ended because coord is exiting: a result made of a killed agent's exit code must not stand
        # as the task's (the run was told it can be resumed, and the task runs again then).
        interrupted = _STOPPING.is_set() and not (timed_out or lingered)
        if interrupted:
            cancel.set()
        for r in readers:
            r.join(timeout=5)
        duration = time.monotonic() - started
        code = None if (timed_out or cancelled or lingered or interrupted) else proc.returncode
        ending = ("timed out" if timed_out else "interrupted: coord was stopping" if interrupted
                  else "cancelled" if cancelled else "ended by coord after its result" if lingered else f"exit {code}")
        log.write(f"# {ending} after {duration:.1f}s")
    return ProcessResult(code, "".join(out), "".join(err), timed_out, cancelled and not interrupted, duration,
                         lingered, interrupted)
