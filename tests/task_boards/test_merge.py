"""Three-way merge: people's text survives every render; impossible merges write nothing."""

from __future__ import annotations

import threading
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coordinator.core.run_store import load_run_plan
from coordinator.engine.runner import run_status
from roles.definitions import roles_for
from task_boards.merge import merge3, merge_board
from task_boards.render import render_all
from task_boards.sections import sections
from task_boards.store import board_problems
from tests.task_boards.conftest import add_under, board, edit, start


def test_merge3_takes_both_sides_when_they_touch_different_lines():
    base = "a\nb\nc\nd\n"
    assert merge3(base, "a\nB\nc\nd\n", "a\nb\nc\nD\n") == "a\nB\nc\nD\n"
    assert merge3(base, "a\nb\nc\nd\n", "x\n") == "x\n"
    assert merge3(base, "a\nX\nc\nd\n", "a\nY\nc\nd\n") is None
    assert merge3(base, "a\nX\nc\nd\n", "a\nX\nc\nd\n") == "a\nX\nc\nd\n"


def test_merge_board_keeps_outside_text_and_refuses_overlapping_section_edits():
    base = "top\n<!-- coord:s:begin -->\nline 1\nline 2\n<!-- coord:s:end -->\n"
    mine = "MY top\n<!-- coord:s:begin -->\nline 1 edited\nline 2\n<!-- coord:s:end -->\nmine\n"
    fresh = "top\n<!-- coord:s:begin -->\nline 1\nline 2 new\n<!-- coord:s:end -->\n"
    merged = merge_board(base, mine, fresh)
    assert merged.text == "MY top\n<!-- coord:s:begin -->\nline 1 edited\nline 2 new\n<!-- coord:s:end -->\nmine\n"
    assert merged.base == "MY top\n<!-- coord:s:begin -->\nline 1\nline 2 new\n<!-- coord:s:end -->\nmine\n"
    clash = "top\n<!-- coord:s:begin -->\nline 1\nline 2 person\n<!-- coord:s:end -->\n"
    refused = merge_board(base, clash, fresh, file="B.md")
    assert refused.text is None and "B.md" in (refused.conflict or "")


def test_impossible_merge_keeps_the_file_and_reports_the_conflict(ws):
    run = start(ws)
    human = board(ws, "HUMAN")
    edit(human, "  - status: **waiting**", "  - status: **waiting** (I am on it)")  # a line coord rewrites
    edited = human.read_text()
    plan = load_run_plan(ws, run.run_id)
    state = run_status(ws)
    state["tasks"]["review_notes"]["status"] = "running"
    result = render_all(ws, plan, roles_for(ws, plan), {**run.state, "tasks": {**run.state["tasks"],
                        "review_notes": {**run.state["tasks"]["review_notes"], "status": "running"}}})
    assert human.read_text() == edited
    assert any("HUMAN_TASKS.md" in c for c in result.conflicts)
    assert any("HUMAN_TASKS.md" in c for c in orjson.loads(ws.status_file.read_bytes())["conflicts"])
    assert "HUMAN_TASKS.md" in ws.team_file.read_text()
    assert any("HUMAN_TASKS.md" in p for p in board_problems(ws))


_SAFE_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"),
                     max_size=40).filter(lambda t: "coord:" not in t)


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_human_text_outside_sections_survives_any_sequence_of_renders(ws, data):
    for p in ws.root.glob("*"):
        if p.name != "coord.yaml":
            __import__("shutil").rmtree(p) if p.is_dir() else p.unlink()
    run = start(ws)
    plan = load_run_plan(ws, run.run_id)
    roles = roles_for(ws, plan)
    path = board(ws, "HUMAN")
    lines = path.read_text().splitlines(keepends=True)
    spans = sections(path.read_text())
    inside = set()
    for s in spans.values():
        first = path.read_text().count("\n", 0, s.start) - 1
        last = path.read_text().count("\n", 0, s.stop)
        inside |= set(range(first + 1, last + 1))  # body lines and the end marker line
    gaps = [i for i in range(len(lines) + 1) if i not in inside]
    inserts = data.draw(st.lists(st.tuples(st.sampled_from(gaps), _SAFE_TEXT), max_size=5))
    for at, text in sorted(inserts, key=lambda x: -x[0]):
        lines.insert(at, text + "\n")
    human = "".join(lines)
    path.write_text(human)
    outside = _outside(human)
    statuses = data.draw(st.lists(st.sampled_from(["pending", "running", "waiting", "done", "failed"]),
                                  min_size=1, max_size=4))
    for status in statuses:
        tasks = {**run.state["tasks"], "review_notes": {**run.state["tasks"]["review_notes"], "status": status}}
        render_all(ws, plan, roles, {**run.state, "tasks": tasks})
        assert _outside(path.read_text()) == outside


def _outside(text):
    spans = sorted(sections(text).values(), key=lambda s: s.start)
    out, pos = [], 0
    for s in spans:
        out.append(text[pos:s.start])
        pos = s.stop
    out.append(text[pos:])
    return out


def test_a_board_edited_while_the_run_renders_it_loses_no_edit(ws):
    run = start(ws)
    plan = load_run_plan(ws, run.run_id)
    roles = roles_for(ws, plan)
    path = board(ws, "HUMAN")
    stop = threading.Event()
    renders = [0]

    def coordinator():
        n = 0
        while not stop.is_set():
            n += 1
            status = ["waiting", "running"][n % 2]
            tasks = {**run.state["tasks"], "review_notes": {**run.state["tasks"]["review_notes"], "status": status,
                                                            "duration_s": n / 10}}
            render_all(ws, plan, roles, {**run.state, "tasks": tasks})
            renders[0] += 1

    thread = threading.Thread(target=coordinator)
    thread.start()
    edits = 0
    try:
        # a person saving the file again and again, like an editor does, until the run has re-rendered the
        # board several times meanwhile (however slow a loaded machine makes a render)
        while edits < 30 or (renders[0] < 3 and edits < 3000):
            text = path.read_text()
            path.write_text(text + f"edit {edits}\n")
            edits += 1
            stop.wait(0.01)
    finally:
        stop.set()
        thread.join()
    text = path.read_text()
    assert [i for i in range(edits) if f"edit {i}\n" not in text] == []
    assert renders[0] >= 3


def test_a_note_added_during_renders_is_applied_once_synced(ws):
    from task_boards.sync import sync_boards

    run = start(ws)
    plan = load_run_plan(ws, run.run_id)
    add_under(board(ws, "HUMAN"), "review_notes", "  - check the appendix too")
    render_all(ws, plan, roles_for(ws, plan), run.state)  # the run re-renders before the sync
    assert "check the appendix too" in board(ws, "HUMAN").read_text()
    report = sync_boards(ws, editor="ana")
    assert len(report.applied) == 1
    assert run_status(ws)["tasks"]["review_notes"]["feedback"] == ["check the appendix too (from ana)"]


def _save_during_rename(monkeypatch, path, line):
    """A person's in-place save (truncate, write) that opens the file just before coord's rename lands in it."""
    import task_boards.saves as saves

    real_replace = saves.os.replace
    saved = []

    def replace(src, dst):
        if Path(dst) == path and not saved:
            with open(path, "r+", encoding="utf-8") as fh:  # the editor opened the file coord is replacing
                text = fh.read()
                real_replace(src, dst)
                fh.seek(0)
                fh.truncate()
                fh.write(text + line)  # ... and writes after the rename, into the replaced file
            saved.append(line)
            return
        real_replace(src, dst)

    monkeypatch.setattr(saves.os, "replace", replace)
    return saved


@pytest.mark.parametrize("name", ["HUMAN_TASKS.md", "TEAM_COORDINATION.md"])
def test_a_save_into_the_file_coord_replaces_is_merged_not_lost(ws, monkeypatch, name):
    run = start(ws)
    plan = load_run_plan(ws, run.run_id)
    path = ws.boards / name if name.endswith("_TASKS.md") else ws.team_file
    saved = _save_during_rename(monkeypatch, path, "my late line\n")
    tasks = {**run.state["tasks"], "review_notes": {**run.state["tasks"]["review_notes"], "duration_s": 42.0}}
    render_all(ws, plan, roles_for(ws, plan), {**run.state, "tasks": tasks, "phase": "finished"})
    assert saved  # the save really went into the replaced file
    text = path.read_text()
    assert text.endswith("my late line\n")
    assert ("42.0 s" in text) if name.endswith("_TASKS.md") else ("finished" in text)  # and coord's render too
