"""Caches behind a fast board sync never serve stale boards or plans, and never drop an edit."""

from __future__ import annotations

import os

from coordinator.core.run_store import load_run_plan
from coordinator.engine.runner import run_status
from task_boards.sync import sync_boards, warm_cache
from tests.task_boards.conftest import add_under, board, start


def _notes(ws, task_id):
    return [f.split(" (from")[0] for f in run_status(ws)["tasks"][task_id].get("feedback") or []]


def test_edits_to_one_board_then_another_both_apply_after_warm_parses(ws):
    start(ws)
    warm_cache(ws)
    add_under(board(ws, "HUMAN"), "review_notes", "  - first, on the quality board")
    assert sync_boards(ws, editor="ana").applied
    warm_cache(ws)  # what the watcher does between saves
    add_under(board(ws, "CLAUDE"), "prep", "  - then one on the lead board")  # HUMAN unchanged since
    report = sync_boards(ws, editor="ana")
    assert len(report.applied) == 1 and report.applied[0].startswith("task_boards/CLAUDE_TASKS.md:")
    assert report.applied[0].endswith("note on 'prep' kept for its agent")
    warm_cache(ws)
    add_under(board(ws, "HUMAN"), "review_notes", "  - and a second on the quality board")
    assert sync_boards(ws, editor="ana").applied
    assert _notes(ws, "review_notes") == ["first, on the quality board", "and a second on the quality board"]
    assert _notes(ws, "prep") == ["then one on the lead board"]


def test_a_same_size_rewrite_with_the_same_mtime_is_not_missed(ws):
    start(ws)
    path = board(ws, "HUMAN")
    add_under(path, "review_notes", "  - use note A1")
    warm_cache(ws)  # the parse of this text is cached now
    before = path.stat()
    path.write_text(path.read_text().replace("use note A1", "use note B2"))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size
    assert sync_boards(ws, editor="ana").applied
    assert _notes(ws, "review_notes") == ["use note B2"]


def test_the_plan_cache_follows_plan_json(ws):
    run = start(ws)
    first = load_run_plan(ws, run.run_id)
    assert load_run_plan(ws, run.run_id) is first  # unchanged file: validated once
    text = board(ws, "CURSOR").read_text().replace("<!-- coord:tasks:end -->",
                                                  "- [ ] Write the FAQ\n<!-- coord:tasks:end -->")
    board(ws, "CURSOR").write_text(text)
    assert sync_boards(ws, editor="ana").applied
    plan = load_run_plan(ws, run.run_id)
    assert "board_write_the_faq" in plan.tasks and "board_write_the_faq" not in first.tasks
    # the next sync knows the new task: a note under it is applied, not refused as an unknown id
    add_under(board(ws, "CURSOR"), "board_write_the_faq", "  - keep it short")
    report = sync_boards(ws, editor="ana")
    assert report.applied and not report.problems
    assert _notes(ws, "board_write_the_faq") == ["keep it short"]


def test_a_sync_rewrites_the_stored_base_of_edited_boards_only(ws):
    from task_boards.store import _base_file

    start(ws)
    untouched = _base_file(ws, board(ws, "CURSOR"))
    before = untouched.stat().st_mtime_ns, untouched.read_text()
    os.utime(untouched, ns=(1, 1))  # an old file: any rewrite would show
    add_under(board(ws, "HUMAN"), "review_notes", "  - only this board changed")
    assert sync_boards(ws, editor="ana").applied
    assert untouched.stat().st_mtime_ns == 1 and untouched.read_text() == before[1]
    assert "  - note: only this board changed" in _base_file(ws, board(ws, "HUMAN")).read_text()
