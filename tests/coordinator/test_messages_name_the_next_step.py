"""What coord says names the way on: the command or tick that continues a waiting run, what to do about
a gate that no longer takes decisions, a retry as a retry, an override as an override, figures with
what they count, and a hand-over as a hand-over (never "✗ task: None")."""

from __future__ import annotations

import orjson
from typer.testing import CliRunner

from coordinator.cli.app import app
from coordinator.core.workspace import Workspace
from task_boards.sync import sync_boards
from tests.coordinator.steps_for_tests import write_plan

HUMAN_GATE = """name: m
tasks:
  - {id: make, title: Make, role: execution, run: t_write, with: {out: out/a.txt, metric: 0.018518518518518517}}
  - {id: ship, title: Ship, role: lead, needs: [make], run: t_noop}
gates:
  - id: signoff
    after: [make]
    blocks: [ship]
    policy: human
    criteria:
      - {metric: make.metric, op: ">=", value: 0.001, weight: 3, critical: true}
      - {metric: make.metric, op: "<=", value: 0.01, defer: "Lower the metric"}
"""

HAND_OVER = """name: h
roles:
  signoff: {agent: human, driver: human}
tasks:
  - {id: sign_off, title: Sign off, role: signoff, instructions: Sign it off.}
gates:
  - id: files_ok
    after: [sign_off]
    policy: auto
    on_fail: retry
    max_retries: 2
    criteria: [{file: out/signed.txt, critical: true}]
"""


def _coord(ws: Workspace, *args: str):
    return CliRunner().invoke(app, [*args, "-w", str(ws.root)], catch_exceptions=False)


def _run(ws: Workspace, text: str, name: str):
    write_plan(ws.root, text, f"{name}.yaml")
    return _coord(ws, "run", str(ws.root / f"{name}.yaml"))


def test_a_run_waiting_on_a_gate_names_the_commands_and_the_tick(ws):
    res = _run(ws, HUMAN_GATE, "m")
    assert res.exit_code == 3, res.output
    assert "gate signoff waits for your decision: `coord approve signoff`, `coord reject signoff --note WHY`" \
        in res.output
    assert "(or tick `approve` on task_boards/CODEX_TASKS.md)" in res.output


def test_override_marked_and_figures_read_as_figures(ws):
    _run(ws, HUMAN_GATE, "m")
    res = _coord(ws, "override", "signoff", "--grade", "B", "--note", "good enough", "--by", "Ana")
    assert res.exit_code == 0, res.output
    board = (ws.boards / "CODEX_TASKS.md").read_text()
    assert "**approved (override: grade B by Ana, measured C)**" in board
    assert "| signoff | approved (override: grade B by Ana, measured C) | B |" in ws.team_file.read_text()
    for text in (board, ws.team_file.read_text(), (ws.boards / "CURSOR_TASKS.md").read_text()):
        assert "0.0185185" not in text  # never a raw float
    assert "Lower the metric — from gate signoff (make.metric <= 0.01: measured 0.01852)" in board


def test_override_of_a_gate_coord_decided_alone_says_what_can_be_done(ws):
    res = _run(ws, HUMAN_GATE.replace("policy: human", "policy: auto").replace("value: 0.001", "value: 0.5"), "m")
    assert res.exit_code == 1
    res = _coord(ws, "override", "signoff", "--grade", "A", "--note", "fine")
    assert res.exit_code == 2
    assert "not waiting for a decision: it is rejected" in res.output
    assert "A policy-auto gate is decided by its measurements alone" in res.output and "untick" in res.output


def test_a_hand_over_is_held_not_failed_and_a_retry_reads_sent_back(ws):
    res = _run(ws, HAND_OVER, "h")
    assert res.exit_code == 3, res.output
    assert "✗ sign_off" not in res.output and "None" not in res.output
    assert "⏸ sign_off held: handed to human: tick it on task_boards/HUMAN_TASKS.md" in res.output
    assert ("task sign_off waits for human: tick it on task_boards/HUMAN_TASKS.md once it is done, then "
            "`coord board sync`") in res.output
    board = ws.boards / "HUMAN_TASKS.md"
    board.write_text(board.read_text().replace("- [ ] **sign_off**", "- [x] **sign_off**"))
    assert sync_boards(ws, editor="ana").applied
    res = _coord(ws, "resume")  # the gate finds no signed file: sent back to the person
    assert res.exit_code == 3, res.output
    line = next(x for x in (ws.boards / "CODEX_TASKS.md").read_text().splitlines() if "**files_ok**" in x)
    assert "**sent back 1/2 (attempt 2 waits for its tasks)**" in line and "**pending**" not in line


def test_a_pending_auto_gate_has_no_approve_box_and_a_typed_tick_is_logged_as_refused(ws):
    write_plan(ws.root, HAND_OVER.replace("policy: auto", "policy: auto\n    reviewer: quality"), "h.yaml")
    res = _coord(ws, "run", str(ws.root / "h.yaml"))
    assert res.exit_code == 3
    board = ws.boards / "CODEX_TASKS.md"
    line = next(x for x in board.read_text().splitlines() if "**files_ok**" in x)
    assert "approve:" not in line and "**pending**" in line
    board.write_text(board.read_text().replace(line, line.replace("- **files_ok**", "- [x] approve: **files_ok**")))
    report = sync_boards(ws, editor="ana")
    assert report.applied == [] and "approval of gate 'files_ok' not recorded" in report.reverted[0]
    run_id = report.run_id
    audit = [orjson.loads(x) for x in (ws.run_dir(str(run_id)) / "board_edits.jsonl").read_bytes().splitlines()]
    assert [(a["kind"], a["outcome"].split(":")[0]) for a in audit] == [("approve", "refused")]
