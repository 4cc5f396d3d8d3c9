"""Reading and replacing files people save in place (truncate, then write)."""

from __future__ import annotations

import threading
import time

from task_boards.saves import read_settled, replace_if_unchanged


def test_a_file_read_between_truncation_and_write_is_read_once_written(tmp_path):
    path = tmp_path / "BOARD.md"
    path.write_text("")  # the editor has truncated it ...

    def finish_save():
        time.sleep(0.03)
        path.write_text("the person's whole file\n")  # ... and writes 30 ms later

    writer = threading.Thread(target=finish_save)
    writer.start()
    try:
        assert read_settled(path) == "the person's whole file\n"
    finally:
        writer.join()
    assert read_settled(tmp_path / "absent.md") is None


def test_replace_only_what_was_expected(tmp_path):
    path = tmp_path / "BOARD.md"
    assert replace_if_unchanged(path, "first\n", None).ok  # absent as expected: created
    assert not replace_if_unchanged(path, "second\n", None).ok  # it exists now
    assert not replace_if_unchanged(path, "second\n", "something else\n").ok
    assert path.read_text() == "first\n"
    done = replace_if_unchanged(path, "second\n", "first\n")
    assert done.ok and done.late is None and path.read_text() == "second\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["BOARD.md"]  # no temp file left behind
