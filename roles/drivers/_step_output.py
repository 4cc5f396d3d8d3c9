"""What a Python step prints goes to its task's log, not onto coord's console.

Steps run on coord's worker threads, so ``sys.stdout`` and ``sys.stderr`` are replaced (once, the
first time a step runs) by streams that write to the log of the step running on the calling thread,
and to the original stream for every other thread. Output of processes a step starts goes to the
real file descriptors, as before.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

_local = threading.local()
_install_lock = threading.Lock()


class _Routed:
    """A text stream that writes to the calling thread's step log when it has one."""

    def __init__(self, base: IO[str], prefix: str) -> None:
        self._base = base
        self._prefix = prefix

    def write(self, text: str) -> int:
        sink: _Sink | None = getattr(_local, "sink", None)
        if sink is None:
            return self._base.write(text)
        sink.write(self._prefix, text)
        return len(text)

    def flush(self) -> None:
        sink: _Sink | None = getattr(_local, "sink", None)
        if sink is None:
            self._base.flush()

    def __getattr__(self, name: str) -> Any:  # encoding, isatty, fileno, …: the original stream's
        return getattr(self._base, name)


class _Sink:
    """A step's log, opened on the first line the step prints (a quiet step leaves no file)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fh: IO[str] | None = None
        self.lines = 0
        self._open: dict[str, bool] = {}

    def write(self, prefix: str, text: str) -> None:
        """Lines of stderr are marked as a command's are; a line may arrive in pieces."""
        if self.fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.fh = self.path.open("a", encoding="utf-8", errors="replace")
        for piece in text.splitlines(keepends=True):
            if not self._open.get(prefix):
                self.fh.write(prefix)
            self.fh.write(piece)
            ended = piece.endswith("\n")
            self._open[prefix] = not ended
            self.lines += ended

    def close(self) -> None:
        if self.fh is None:
            return
        if any(self._open.values()):
            self.fh.write("\n")
            self.lines += 1
        self.fh.close()


def _install() -> None:
    with _install_lock:
        if not isinstance(sys.stdout, _Routed):
            sys.stdout = _Routed(sys.stdout, "")
        if not isinstance(sys.stderr, _Routed):
            sys.stderr = _Routed(sys.stderr, "[stderr] ")


@contextlib.contextmanager
def step_output_to(log_file: Path) -> Iterator[_Sink]:
    """While the block runs, what this thread prints goes to ``log_file`` (appended; created only when
    something is printed); the sink counts the lines."""
    _install()
    sink = _Sink(log_file)
    outer = getattr(_local, "sink", None)
    _local.sink = sink
    try:
        yield sink
    finally:
        _local.sink = outer
        sink.close()
