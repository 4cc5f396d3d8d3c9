"""A human gate cannot be bypassed: board edits never decide for it, and a reject blocks what it blocks."""

from __future__ import annotations

from typer.testing import CliRunner

from coordinator.cli.app import app
from coordinator.core.events import read_events
from coordinator.engine.runner import RunOptions, resume_run, run_status
from task_boards.sync import sync_boards
from tests.task_boards.conftest import add_under, board, edit, start

PLAN = """name: h
tasks:
  - {id: draft, title: Draft, role: lead, run: t_noop, with: {value: 1}}
  - {id: check_notes, title: Check the notes, role: execution, needs: [draft], instructions: Check the notes.}
  - {id: publish, title: Publish, role: lead, needs: [check_notes], run: t_noop}
gates:
  - id: human_ok
    after: [draft]
    blocks: [check_notes]
    policy: human
    criteria: [{metric: draft.value, op: ">=", value: 1}]
"""


def _waiting(ws):
    ws.config.unlink()
    run = start(ws, PLAN, "h")
    assert run.phase == "waiting" and run.state["gates"]["human_ok"]["status"] == "waiting"
    return run


def _started(ws, task: str) -> int:
    return sum(e["kind"] == "task_started" and e.get("task") == task for e in read_events(ws.events))


def test_ticking_a_task_the_gate_holds_is_reverted_and_names_the_decision_to_make(ws):
    _waiting(ws)
    edit(board(ws, "CURSOR"), "- [ ] **check_notes**", "- [x] **check_notes**")
    report = sync_boards(ws, editor="ana")
    assert report.applied == [] and len(report.reverted) == 1
    assert "waits for gate human_ok (waiting for a person)" in report.reverted[0]
    assert "`coord approve human_ok`" in report.reverted[0]
    assert run_status(ws)["tasks"]["check_notes"]["status"] == "pending"
    text = board(ws, "CURSOR").read_text()
    assert "- [ ] **check_notes**" in text and "notice: tick reverted — it waits for gate human_ok" in text


def test_deferring_a_task_the_gate_holds_is_reverted(ws):
    _waiting(ws)
    add_under(board(ws, "CURSOR"), "check_notes", "  - defer: next week")
    report = sync_boards(ws, editor="ana")
    assert any("defer of 'check_notes' reverted" in r for r in report.reverted), report
    st = run_status(ws)
    assert st["tasks"]["check_notes"]["status"] == "pending" and st["deferred"] == {}


def test_a_reject_after_a_board_sync_is_applied_at_once_and_blocks_everything_behind_the_gate(ws):
    run = _waiting(ws)
    add_under(board(ws, "CURSOR"), "check_notes", "  - mind the dates")  # a sync writes the checkpoint
    assert sync_boards(ws, editor="ana").applied
    res = CliRunner().invoke(app, ["reject", "human_ok", "--note", "no", "-w", str(ws.root)],
                             catch_exceptions=False)
    assert "running in another process" not in res.output, res.output
    assert "gate status: rejected" in res.output
    st = run_status(ws)
    assert st["gates"]["human_ok"]["status"] == "rejected"
    assert st["tasks"]["check_notes"]["status"] == "blocked" and st["tasks"]["publish"]["status"] == "blocked"
    assert st["phase"] == "failed"
    resume_run(ws, run.run_id, RunOptions(plan="", render_interval=0))  # nothing left to run
    assert _started(ws, "check_notes") == 0 and _started(ws, "publish") == 0
