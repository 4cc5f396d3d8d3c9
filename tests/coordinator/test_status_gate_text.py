"""`coord status` says a gate's status in the boards' words (waiting for a person and what continues the
run, an override as an override, a retry as `sent back 1/2`) and still loads no Jinja to do it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
from typer.testing import CliRunner

from coordinator.cli.app import app
from coordinator.core.workspace import Workspace
from task_boards.sync import sync_boards
from tests.conftest import PLUGINS
from tests.coordinator.steps_for_tests import write_plan

REPO = Path(__file__).resolve().parents[2]
HUMAN_GATE = """name: m
tasks:
  - {id: make, title: Make, role: execution, run: t_write, with: {out: out/a.txt, metric: 0.5}}
  - {id: ship, title: Ship, role: lead, needs: [make], run: t_noop}
gates:
  - id: signoff
    after: [make]
    blocks: [ship]
    policy: human
    criteria:
      - {metric: make.metric, op: ">=", value: 0.9, critical: true}
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


def _status_text(ws: Workspace, gate: str) -> str:
    res = _coord(ws, "status", "--json")
    assert res.exit_code == 0, res.output
    return str(orjson.loads(res.output)["gates"][gate]["status_text"])


def _board_gate_text(ws: Workspace, board: str, gate: str) -> str:
    line = next(x for x in (ws.boards / board).read_text().splitlines() if f"**{gate}**" in x)
    return line.split(": **", 1)[1].split("**", 1)[0]


def test_a_gate_waiting_for_a_person_names_the_command_and_the_tick(ws):
    write_plan(ws.root, HUMAN_GATE, "m.yaml")
    assert _coord(ws, "run", str(ws.root / "m.yaml")).exit_code == 3
    res = _coord(ws, "status")
    assert res.exit_code == 0
    text = " ".join(res.output.replace("│", " ").split())
    assert "waiting for a person: `coord approve signoff`" in text
    assert "tick `approve` on task_boards/CODEX_TASKS.md" in text
    assert _status_text(ws, "signoff").startswith("waiting for a person: `coord approve signoff` (or reject / "
                                                 "override) or tick `approve` on task_boards/CODEX_TASKS.md")


def test_an_override_reads_as_one_in_status_as_on_the_board(ws):
    write_plan(ws.root, HUMAN_GATE, "m.yaml")
    _coord(ws, "run", str(ws.root / "m.yaml"))
    assert _coord(ws, "override", "signoff", "--grade", "B", "--note", "good enough", "--by", "Ana").exit_code == 0
    expected = "approved (override: grade B by Ana, measured F)"
    assert _status_text(ws, "signoff") == expected == _board_gate_text(ws, "CODEX_TASKS.md", "signoff")
    assert "override: grade B by Ana" in " ".join(_coord(ws, "status").output.replace("│", " ").split())


def test_a_gate_that_sent_work_back_reads_sent_back_in_status_as_on_the_board(ws):
    write_plan(ws.root, HAND_OVER, "h.yaml")
    assert _coord(ws, "run", str(ws.root / "h.yaml")).exit_code == 3
    board = ws.boards / "HUMAN_TASKS.md"
    board.write_text(board.read_text().replace("- [ ] **sign_off**", "- [x] **sign_off**"))
    assert sync_boards(ws, editor="ana").applied
    assert _coord(ws, "resume").exit_code == 3  # no signed file: the gate sends the task back
    expected = "sent back 1/2 (attempt 2 waits for its tasks)"
    assert _status_text(ws, "files_ok") == expected == _board_gate_text(ws, "CODEX_TASKS.md", "files_ok")
    assert "pending" not in _status_text(ws, "files_ok")


def test_status_loads_neither_jinja_nor_the_board_renderer(ws):
    write_plan(ws.root, HUMAN_GATE, "m.yaml")
    _coord(ws, "run", str(ws.root / "m.yaml"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(PLUGINS)])}
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "coordinator", "status", "-w", str(ws.root)],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "waiting for a person" in done.stdout
    modules = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "reviews.gate_status" in modules
    assert {"jinja2", "task_boards.render", "reviews.llm_review"} & modules == set()
