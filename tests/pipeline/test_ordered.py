"""ordered_map: bounded concurrency, results in input order, the first failure stops new work."""

from __future__ import annotations

import threading
from contextlib import closing

import pytest

from pipeline._ordered import ordered_map


def test_results_come_in_input_order():
    assert list(ordered_map(lambda i: i * i, range(50), 4)) == [i * i for i in range(50)]


def test_at_most_window_items_are_taken_ahead_of_the_consumer():
    taken: list[int] = []

    def source():
        for i in range(1000):
            taken.append(i)
            yield i

    with closing(ordered_map(lambda i: i, source(), 3, window=5)) as results:
        assert next(results) == 0
        assert len(taken) <= 6  # the window plus the one that refilled it


def test_the_first_failure_in_order_is_raised_and_nothing_new_starts_after_it():
    started: list[int] = []
    lock = threading.Lock()

    def fn(i: int) -> int:
        with lock:
            started.append(i)
        if i == 5:
            raise ValueError("boom at 5")
        return i

    got = []
    with pytest.raises(ValueError, match="boom at 5"):
        for r in ordered_map(fn, range(1000), 2, window=4):
            got.append(r)
    assert got == [0, 1, 2, 3, 4] and max(started) < 5 + 4


def test_concurrency_must_be_positive():
    with pytest.raises(ValueError, match="concurrency must be"):
        list(ordered_map(lambda i: i, range(3), 0))
