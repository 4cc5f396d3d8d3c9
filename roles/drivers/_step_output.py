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
    def __init__(self, fh: IO[str]) -> None:
        self.fh = fh
        self.lines = 0
        self._open: dict[str, bool] = {}

    def write(self, prefix: str, text: str) -> None:
        """Lines of stderr are marked as a command's are; a line may arrive in pieces."""
        for piece in text.splitlines(keepends=True):
            if not self._open.get(prefix):
                self.fh.write(prefix)
            self.fh.write(piece)
            ended = piece.endswith("\n")
            self._open[prefix] = not ended
            self.lines += ended


def _install() -> None:
    with _install_lock:
        if not isinstance(sys.stdout, _Routed):
            sys.stdout = _Routed(sys.stdout, "")
        if not isinstance(sys.stderr, _Routed):
            sys.stderr = _Routed(sys.stderr, "[stderr] ")


@contextlib.contextmanager
def step_output_to(log_file: Path) -> Iterator[_Sink]:
    """While the block runs, what this thread prints goes to ``log_file`` (appended); the sink counts
    the lines."""
    _install()
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("a", encoding="utf-8", errors="replace") as fh:
        sink = _Sink(fh)
        outer = getattr(_local, "sink", None)
        _local.sink = sink
        try:
            yield sink
        finally:
            _local.sink = outer
            if any(sink._open.values()):
                fh.write("\n")
                sink.lines += 1
