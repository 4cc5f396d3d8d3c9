"""Run a slow function over many items with bounded concurrency, results in input order.

Used by the generate step to keep several model calls in flight while writing rows
in index order. Memory stays bounded: at most ``window`` items are submitted and not
yet consumed, whatever the number of items. The first failure (in input order) is
raised to the consumer; once any call fails no new call starts, and calls already
running are waited for before the error propagates, so their results are not lost to
side effects such as caching and cost records that they perform themselves.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

A = TypeVar("A")
R = TypeVar("R")


class Stopped(Exception):
    """A call that never started because an earlier one failed (never reaches the consumer first)."""


def ordered_map(fn: Callable[[A], R], items: Iterable[A], concurrency: int, *, window: int | None = None,
                name: str = "ordered") -> Generator[R, None, None]:
    """``fn(item)`` for every item, up to ``concurrency`` at once, yielded in the order of ``items``.

    ``window`` (default ``2 × concurrency``) bounds the results computed ahead of the
    consumer, so a slow head of the line does not idle the other workers. Close the
    iterator (``contextlib.closing``) when stopping early: that cancels what has not
    started and waits for what has.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be ≥ 1, got {concurrency}")
    window = max(concurrency, window or 2 * concurrency)
    stop = threading.Event()

    def guarded(item: A) -> R:
        if stop.is_set():
            raise Stopped
        try:
            return fn(item)
        except BaseException:
            stop.set()
            raise

    source = iter(items)
    pending: deque[Future[R]] = deque()
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix=name) as pool:
        try:
            for item in source:
                pending.append(pool.submit(guarded, item))
                if len(pending) >= window:
                    break
            while pending:
                result = pending.popleft().result()
                if not stop.is_set():
                    for item in source:
                        pending.append(pool.submit(guarded, item))
                        break
                yield result
        finally:
            stop.set()
            for fut in pending:
                fut.cancel()
            # leaving the executor's block waits for the calls already running
