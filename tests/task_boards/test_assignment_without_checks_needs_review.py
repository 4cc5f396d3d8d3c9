"""An assignment with nothing to check is not done by the offline stand-in: it needs review until a
person ticks it, and the report card says which done tasks rest on a person's word."""

from __future__ import annotations

from coordinator.core.events import read_events
from coordinator.engine.runner import RunOptions, resume_run, run_status
from task_boards.sync import sync_boards
from tests.task_boards.conftest import board, edit, start

PLAN = """name: r
tasks:
  - {id: prep, title: Prepare, role: lead, run: t_noop}
  - {id: notes, title: Write notes, role: execution, needs: [prep], instructions: Write the notes.}
  - {id: after, title: After, role: lead, needs: [notes], run: t_noop}
  - {id: report, title: Report, role: lead, needs: [after], run: report, with: {out_dir: reports}}
"""


def test_the_stand_in_answer_waits_for_review_and_a_tick_makes_it_done_on_a_persons_word(ws):
    ws.config.unlink()
    run = start(ws, PLAN, "r")
    rec = run.state["tasks"]["notes"]
    assert run.phase == "waiting" and rec["status"] == "waiting" and rec["held_by"] == "review"
    assert rec["reason"].startswith("needs review: it has no accept checks")
    assert (ws.root / "reports/assignments/notes.md").exists()  # the answer is there to read
    assert run.state["tasks"]["after"]["status"] == "pending"
    assert not any(e["kind"] == "task_finished" and e.get("task") == "notes" for e in read_events(ws.events))
    assert "why: needs review" in board(ws, "CURSOR").read_text()

    edit(board(ws, "CURSOR"), "- [ ] **notes**", "- [x] **notes**")
    report = sync_boards(ws, editor="ana")
    assert any("done on ana's word (it has no accept checks)" in a for a in report.applied), report
    rec = run_status(ws)["tasks"]["notes"]
    assert rec["status"] == "done" and rec["accepted_by"] == "person (ana)" and rec.get("held_by") is None

    summary = resume_run(ws, run.run_id, RunOptions(plan="", render_interval=0))
    assert summary.phase == "finished", summary.problems
    text = (ws.root / "reports/week_summary.md").read_text()
    assert "| execution | cursor | 1/1 (1 on a person's word, nothing measured) |" in text


def test_a_task_added_on_the_board_is_not_done_in_milliseconds(ws):
    ws.config.unlink()
    run = start(ws, PLAN.replace("instructions: Write the notes.}",
                                 "instructions: Write the notes., accept: [{file: reports/assignments/notes.md}]}"),
                "r")
    assert run.phase == "finished"
    edit(board(ws, "CLAUDE"), "<!-- coord:tasks:end -->", "- [ ] Write the FAQ\n<!-- coord:tasks:end -->")
    assert sync_boards(ws, editor="ana").applied
    summary = resume_run(ws, run.run_id, RunOptions(plan="", render_interval=0))
    faq = summary.state["tasks"]["board_write_the_faq"]
    assert faq["status"] == "waiting" and faq["reason"].startswith("needs review")
    assert summary.phase == "waiting" and summary.exit_code == 3
