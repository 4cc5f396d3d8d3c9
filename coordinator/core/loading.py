"""Loading large libraries without the cyclic collector's passes over them."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """Import inside this block with the cyclic collector paused.

    Importing LangGraph and the engine makes hundreds of thousands of objects that live as long as
    the process; the collector's passes over them while they load free nothing and cost 0.1 s of a
    one-second start-up. It runs again (and collects as usual) once the block ends; a caller that
    had paused it keeps it paused.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def skip_exit_collection() -> None:
    """Leave the objects alive now out of the collection the interpreter makes as it exits.

    Call it once a command's work is done and written. At exit CPython makes one last full pass of
    the cyclic collector over everything, the imported libraries included: 0.25–0.3 s once
    LangGraph is loaded, a fifth of a short run. Everything a command writes is closed (and synced)
    by the code that wrote it, modules are still torn down and ``atexit`` handlers still run; what
    the pass could still find is garbage in reference cycles, which the process's end releases.
    """
    gc.freeze()
