"""What `coord watch` does to be quick: report first, pre-parse and tidy the heap afterwards."""

from __future__ import annotations

import gc
import queue

import pytest

import task_boards.watch as watch_mod
from coordinator.engine.runner import run_status
from task_boards.sync import SyncReport
from task_boards.watch import BoardWatcher
from tests.task_boards.conftest import add_under, board, start


def test_watch_reports_an_applied_edit_before_its_housekeeping(ws, monkeypatch):
    start(ws)
    order: list[str] = []
    real_warm = watch_mod.warm_cache

    def warm(w):
        order.append("warm")
        real_warm(w)

    monkeypatch.setattr(watch_mod, "warm_cache", warm)
    reports: queue.Queue[SyncReport] = queue.Queue()

    def on_report(report: SyncReport) -> None:
        # when the report arrives the note is already in the checkpoint and on the re-rendered board
        assert run_status(ws)["tasks"]["review_notes"]["feedback"][0].startswith("check the units")
        assert "  - note: check the units" in board(ws, "HUMAN").read_text()
        order.append("report")
        reports.put(report)

    watcher = BoardWatcher(ws, debounce=0.05, resume=False, on_report=on_report).start()
    try:
        add_under(board(ws, "HUMAN"), "review_notes", "  - check the units")
        report = reports.get(timeout=30)
    finally:
        watcher.stop()
    assert report.applied and not report.problems
    assert order[-2:] == ["report", "warm"], order


@pytest.fixture
def unfreeze():
    yield
    gc.unfreeze()


@pytest.mark.slow
def test_freeze_gc_freezes_the_heap_after_each_sync(ws, unfreeze):
    start(ws)
    gc.unfreeze()
    reports: queue.Queue[SyncReport] = queue.Queue()
    watcher = BoardWatcher(ws, debounce=0.05, resume=False, freeze_gc=True, on_report=reports.put).start()
    try:
        add_under(board(ws, "HUMAN"), "review_notes", "  - first")
        assert reports.get(timeout=30).applied
        deadline = 100
        while gc.get_freeze_count() == 0 and deadline:
            deadline -= 1
            watcher._stop.wait(0.05)
        frozen = gc.get_freeze_count()
        assert frozen > 0
        add_under(board(ws, "HUMAN"), "review_notes", "  - second")
        assert reports.get(timeout=30).applied
    finally:
        watcher.stop()
    assert [f.split(" (from")[0] for f in run_status(ws)["tasks"]["review_notes"]["feedback"]] == ["first", "second"]


@pytest.mark.slow
def test_an_idle_watcher_does_not_sync_because_boards_were_read(ws, monkeypatch):
    start(ws)
    syncs: list[float] = []
    real_sync = watch_mod.sync_boards

    def counting_sync(w):
        syncs.append(0.0)
        return real_sync(w)

    monkeypatch.setattr(watch_mod, "sync_boards", counting_sync)
    watcher = BoardWatcher(ws, debounce=0.05, resume=False).start()
    try:
        assert watcher.wait_ready(30)
        after_start = len(syncs)
        for _ in range(3):  # coord's own syncs read every board; so do people and their tools
            for path in ws.boards.glob("*_TASKS.md"):
                path.read_text()
            watcher._stop.wait(0.3)
        assert len(syncs) == after_start
        add_under(board(ws, "HUMAN"), "review_notes", "  - a real save is still seen")
        deadline = 100
        while len(syncs) == after_start and deadline:
            deadline -= 1
            watcher._stop.wait(0.05)
    finally:
        watcher.stop()
    assert len(syncs) > after_start
    assert run_status(ws)["tasks"]["review_notes"]["feedback"][0].startswith("a real save is still seen")
