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
