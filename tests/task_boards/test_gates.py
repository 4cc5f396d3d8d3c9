"""Ticking `approve` on a gate waiting for a person."""

from __future__ import annotations

import pytest

from coordinator.core.run_store import load_run_plan
from coordinator.engine.runner import RunOptions, resume_run, run_status
from task_boards.edits import detect_edits
from task_boards.parse import parse_board
from task_boards.sync import sync_boards
from tests.task_boards.conftest import GATE_PLAN, board, edit, line_of, start


@pytest.fixture
def waiting_gate(ws):
    ws.config.unlink()
    run = start(ws, GATE_PLAN, "g")
    assert run.phase == "waiting" and run.state["gates"]["check"]["status"] == "waiting"
    return run


def test_waiting_gate_has_an_approve_checkbox_on_the_reviewers_board(ws, waiting_gate):
    text = board(ws, "CODEX").read_text()
    assert "- [ ] approve: **check**" in text and "<!-- coord:gate id=check -->" in text


def test_ticking_approve_is_detected_as_an_approval(ws, waiting_gate):
    path = board(ws, "CODEX")
    base = parse_board(path.read_text(), path.name)
    edit(path, "- [ ] approve: **check**", "- [x] approve: **check**")
    found = detect_edits({path.name: base}, {path.name: parse_board(path.read_text(), path.name)},
                         load_run_plan(ws, waiting_gate.run_id), waiting_gate.state,
                         {"lead", "quality", "execution"})
    assert found.problems == []
    assert [(e.kind, e.target, e.line) for e in found.edits] == [("approve", "check", line_of(path, "id=check"))]


def test_ticking_approve_approves_the_gate_and_the_run_continues(ws, waiting_gate):
    edit(board(ws, "CODEX"), "- [ ] approve: **check**", "- [x] approve: **check**")
    report = sync_boards(ws, editor="ana")
    assert any("gate 'check' approved by ana" in a for a in report.applied), report
    # the decision resumed the run: the line says where it went (watch printed nothing about it before)
    assert any(f"run {waiting_gate.run_id} resumed: " in a for a in report.applied), report
    gate = run_status(ws)["gates"]["check"]
    assert gate["status"] == "approved" and gate["decided_by"] == "ana"
    summary = resume_run(ws, waiting_gate.run_id, RunOptions(plan="", render_interval=0))
    assert summary.phase == "finished" and summary.state["tasks"]["after"]["status"] == "done"
    assert "- [ ] approve: **check**" not in board(ws, "CODEX").read_text()
