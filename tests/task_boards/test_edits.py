"""Every edit kind coord follows, applied with `coord board sync` to a real run's checkpoint."""

from __future__ import annotations

import orjson

from coordinator.engine.run_state import read_run_state, write_run_state
from coordinator.engine.runner import RunOptions, resume_run, run_status
from task_boards.sync import sync_boards
from tests.task_boards.conftest import add_under, board, edit, line_of, start


def _plan(ws, run_id):
    return orjson.loads((ws.run_dir(run_id) / "plan.json").read_bytes())


def test_tick_with_failing_accept_checks_is_reverted_with_a_note(ws):
    run = start(ws)
    assert run.phase == "waiting"
    human = board(ws, "HUMAN")
    edit(human, "- [ ] **review_notes**", "- [x] **review_notes**")
    report = sync_boards(ws, editor="ana")
    assert report.applied == [] and "accept checks failed" in report.reverted[0]
    text = human.read_text()
    assert "- [ ] **review_notes**" in text
    assert "notice: tick reverted — accept checks failed: file notes/review.md exists" in text
    assert run_status(ws)["tasks"]["review_notes"]["status"] == "waiting"


def test_tick_with_passing_checks_marks_done_and_the_run_continues(ws):
    run = start(ws)
    (ws.root / "notes").mkdir()
    (ws.root / "notes/review.md").write_text("reviewed\n")
    edit(board(ws, "HUMAN"), "- [ ] **review_notes**", "- [x] **review_notes**")
    report = sync_boards(ws, editor="ana")
    assert report.can_continue and "review_notes" in report.applied[0]
    assert run_status(ws)["tasks"]["review_notes"]["status"] == "done"
    summary = resume_run(ws, run.run_id, RunOptions(plan="", render_interval=0))
    assert summary.phase == "finished"
    assert summary.state["tasks"]["ship"]["status"] == "done"
    audit = (ws.run_dir(run.run_id) / "board_edits.jsonl").read_text()
    assert '"by":"ana"' in audit and '"kind":"tick"' in audit


def test_untick_reopens_the_task_and_its_dependents(ws):
    start(ws)
    edit(board(ws, "CLAUDE"), "- [x] **prep**", "- [ ] **prep**")
    report = sync_boards(ws, editor="ana")
    assert "reopened with review_notes" in report.applied[0]
    tasks = run_status(ws)["tasks"]
    assert tasks["prep"]["status"] == tasks["review_notes"]["status"] == "pending"
    assert tasks["write_docs"]["status"] == "done"
    assert "- [ ] **prep**" in board(ws, "CLAUDE").read_text()


def test_reassign_by_editing_the_role_field(ws):
    run = start(ws)
    cursor = board(ws, "CURSOR")
    text = cursor.read_text()
    block_start = text.index("- [ ] **ship**")
    edit(cursor, text[block_start:text.index("  - role: execution", block_start) + 19],
         text[block_start:text.index("  - role: execution", block_start)] + "  - role: lead")
    report = sync_boards(ws, editor="ana")
    assert report.applied == [f"task_boards/CURSOR_TASKS.md:{text[:block_start].count(chr(10)) + 1}: "
                              "task 'ship' reassigned to lead"]
    assert _plan(ws, run.run_id)["tasks"]["ship"]["role"] == "lead"
    assert "**ship**" in board(ws, "CLAUDE").read_text() and "**ship**" not in cursor.read_text()


def _move_block(ws, task_head: str, src: str, dst: str) -> None:
    """Cut a task's block from one board and paste it at the end of another's tasks section."""
    source, target = board(ws, src), board(ws, dst)
    text = source.read_text()
    start_at = text.index(task_head)
    stop_at = text.find("\n- [", start_at + 1)
    stop_at = text.index("<!-- coord:tasks:end -->") if stop_at < 0 else stop_at + 1
    block = text[start_at:stop_at]
    source.write_text(text[:start_at] + text[stop_at:])
    edit(target, "<!-- coord:tasks:end -->", block + "<!-- coord:tasks:end -->")


def test_reassign_by_moving_the_task_to_another_board(ws):
    run = start(ws)
    _move_block(ws, "- [ ] **ship**", "CURSOR", "CLAUDE")
    report = sync_boards(ws, editor="ana")
    assert any("'ship' reassigned to lead" in a for a in report.applied), report
    assert _plan(ws, run.run_id)["tasks"]["ship"]["role"] == "lead"
    assert run_status(ws)["tasks"]["ship"]["status"] == "pending"  # moving keeps its state
    assert board(ws, "CLAUDE").read_text().count("**ship**") == 1


def test_reassigning_a_done_task_is_refused_and_changes_nothing(ws):
    run = start(ws)
    assert run_status(ws)["tasks"]["write_docs"]["status"] == "done"
    _move_block(ws, "- [x] **write_docs**", "CURSOR", "CLAUDE")
    line = line_of(board(ws, "CLAUDE"), "**write_docs**")
    plan_before = (ws.run_dir(run.run_id) / "plan.json").read_bytes()
    report = sync_boards(ws, editor="ana")
    assert report.applied == []
    assert report.problems == [f"task_boards/CLAUDE_TASKS.md:{line}: task 'write_docs' is done; untick it to "
                               "redo it under role 'lead' (a done task keeps the role that did the work)"]
    assert (ws.run_dir(run.run_id) / "plan.json").read_bytes() == plan_before
    assert run_status(ws)["tasks"]["write_docs"]["status"] == "done"


def test_reassigning_a_done_task_by_its_role_line_is_refused(ws):
    start(ws)
    cursor = board(ws, "CURSOR")
    text = cursor.read_text()
    at = text.index("- [x] **write_docs**")
    cursor.write_text(text[:at] + text[at:].replace("  - role: execution", "  - role: lead", 1))
    report = sync_boards(ws, editor="ana")
    assert report.problems == [f"task_boards/CURSOR_TASKS.md:{line_of(cursor, 'role: lead')}: task 'write_docs' "
                               "is done; untick it to redo it under role 'lead' (a done task keeps the role "
                               "that did the work)"]


def test_unticking_and_moving_a_done_task_redoes_it_under_the_new_role(ws):
    run = start(ws)
    _move_block(ws, "- [x] **write_docs**", "CURSOR", "CLAUDE")
    edit(board(ws, "CLAUDE"), "- [x] **write_docs**", "- [ ] **write_docs**")
    report = sync_boards(ws, editor="ana")
    assert report.problems == [] and any("'write_docs' reassigned to lead" in a for a in report.applied)
    assert _plan(ws, run.run_id)["tasks"]["write_docs"]["role"] == "lead"
    assert run_status(ws)["tasks"]["write_docs"]["status"] == "pending"


def test_a_reassign_held_back_until_the_task_is_done_is_refused_then(ws):
    """The edit waits behind a garbled line; when it comes through the task is done: refused, not applied."""
    run = start(ws)
    cursor = board(ws, "CURSOR")
    text = cursor.read_text()
    at = text.index("- [ ] **ship**")
    cursor.write_text(text[:at] + text[at:].replace("  - role: execution", "  - role: lead", 1))
    edit(board(ws, "CLAUDE"), "coord:task id=prep", "coord:task id=perp")  # unrelated garbled line
    assert sync_boards(ws, editor="ana").problems
    assert run_status(ws)["tasks"]["ship"]["status"] == "pending"
    state, nxt = read_run_state(ws, run.run_id)  # meanwhile the run finishes ship under its old role
    write_run_state(ws, run.run_id, {"tasks": {"ship": {**state["tasks"]["ship"], "status": "done"}}}, nxt)
    edit(board(ws, "CLAUDE"), "coord:task id=perp", "coord:task id=prep")
    report = sync_boards(ws, editor="ana")
    assert any("task 'ship' is done; untick it to redo it" in p for p in report.problems), report.problems
    assert _plan(ws, run.run_id)["tasks"]["ship"]["role"] == "execution"


def test_note_under_a_task_is_kept_and_handed_to_the_agent(ws):
    start(ws)
    line = add_under(board(ws, "HUMAN"), "review_notes", "  - Use the v2 checklist, please.")
    report = sync_boards(ws, editor="ana")
    assert report.applied == [f"task_boards/HUMAN_TASKS.md:{line}: note on 'review_notes' kept for its agent"]
    assert run_status(ws)["tasks"]["review_notes"]["feedback"] == ["Use the v2 checklist, please. (from ana)"]
    assert "  - note: Use the v2 checklist, please. (from ana)" in board(ws, "HUMAN").read_text()
    now = (ws.boards / "HUMAN_EXECUTE_NOW.md").read_text()
    assert "Use the v2 checklist, please. (from ana)" in now
    assert sync_boards(ws, editor="ana").applied == []  # the note is not applied twice


def test_new_task_under_a_role_becomes_a_plan_task_that_resume_runs(ws):
    run = start(ws)
    edit(board(ws, "CLAUDE"), "<!-- coord:tasks:end -->",
         "- [ ] Draft the FAQ\n  - Cover install and resume.\n<!-- coord:tasks:end -->")
    line = line_of(board(ws, "CLAUDE"), "Draft the FAQ")
    report = sync_boards(ws, editor="ana")
    assert report.applied == [f"task_boards/CLAUDE_TASKS.md:{line}: new task 'board_draft_the_faq' for lead"]
    task = _plan(ws, run.run_id)["tasks"]["board_draft_the_faq"]
    assert task["role"] == "lead" and task["instructions"] == "Draft the FAQ\nCover install and resume."
    assert "<!-- coord:task id=board_draft_the_faq -->" in board(ws, "CLAUDE").read_text()
    assert "- [ ] Draft the FAQ\n" not in board(ws, "CLAUDE").read_text()
    summary = resume_run(ws, run.run_id, RunOptions(plan="", render_interval=0))
    faq = summary.state["tasks"]["board_draft_the_faq"]  # the offline agent answered; nothing checks it
    assert faq["status"] == "waiting" and faq["reason"].startswith("needs review")


def test_marking_a_task_deferred(ws):
    start(ws)
    add_under(board(ws, "CURSOR"), "ship", "  - defer: next week")
    report = sync_boards(ws, editor="ana")
    assert "task 'ship' deferred" in report.applied[0]
    st = run_status(ws)
    assert st["tasks"]["ship"]["status"] == "skipped"
    assert st["tasks"]["ship"]["reason"] == "deferred on the board by ana: next week"
    assert st["deferred"]["board:ship"]["status"] == "open"
    assert "Ship it (task ship)" in ws.team_file.read_text()


def test_person_text_outside_sections_survives_sync_byte_for_byte(ws):
    start(ws)
    human = board(ws, "HUMAN")
    top = "Ana's   notes\t(keep)\n\n"
    text = human.read_text()
    human.write_text(top + text.replace("- [ ] **review_notes**", "- [x] **review_notes**") + "\ntrailing\n")
    sync_boards(ws, editor="ana")
    after = human.read_text()
    assert after.startswith(top) and after.endswith("\ntrailing\n")
