"""SIGKILL a real `coord run` while a human gate is pending, resume, approve:
exactly one decision is recorded and no side effect happens twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from coordinator.cli.app import app
from coordinator.core.events import read_events
from coordinator.engine.runner import run_status
from tests.conftest import PLUGINS

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
# `coord` with the test steps' plugin distribution on the path
COORD = [sys.executable, "-c",
         f"import sys; sys.path.insert(0, {str(PLUGINS)!r}); from coordinator.cli.app import main; "
         "sys.argv[0] = 'coord'; main()"]

PLAN = """name: kill
tasks:
  - {id: make, title: Make, role: execution, run: g_count, with: {file: out/make.txt, label: made}}
  - {id: slow, title: Slow, role: quality, run: g_sleep, with: {seconds: 2.0}}
  - {id: ship, title: Ship, role: lead, needs: [make], run: g_count, with: {label: shipped}}
gates:
  - id: signoff
    after: [make]
    blocks: [ship]
    policy: human
    criteria:
      - {metric: make.lines, op: ">=", value: 1}
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


def _coord(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*COORD, *args], cwd=cwd, capture_output=True, text=True, env=_env(),
                          stdin=subprocess.DEVNULL, timeout=120)


def test_kill_while_a_human_gate_waits_then_resume_and_approve(ws):
    (ws.root / "kill.yaml").write_text(PLAN)
    proc = subprocess.Popen([*COORD, "run", "kill.yaml"], cwd=ws.root, env=_env(), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if any(e["kind"] == "gate_decided" and e.get("status") == "waiting" for e in read_events(ws.events)):
                break
            assert proc.poll() is None, "the run ended before the gate waited"
            time.sleep(0.01)
        else:
            raise AssertionError("the gate never waited")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL

    resumed = _coord(["resume"], ws.root)
    assert resumed.returncode == 3, resumed.stdout + resumed.stderr
    assert "waiting for a person" in resumed.stderr

    res = CliRunner().invoke(app, ["approve", "signoff", "--by", "Ana", "-w", str(ws.root)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    st = run_status(ws)
    assert st["phase"] == "finished" and st["gates"]["signoff"]["decided_by"] == "Ana"

    events = list(read_events(ws.events))
    assert len({e["run"] for e in events}) == 1
    assert sum(e["kind"] == "gate_decision" for e in events) == 1
    assert sum(e["kind"] == "decision_queued" for e in events) == 1
    assert (ws.root / "out/make.txt").read_text() == "made\n"
    assert (ws.root / "out/side_effects.txt").read_text() == "shipped\n"
    record = json.loads((ws.reviews / st["run_id"] / "signoff.json").read_text())
    assert record["decision"]["by"] == "Ana" and record["status"] == "approved"
    finished = [e["task"] for e in events if e["kind"] == "task_finished"]
    assert sorted(finished) == ["make", "ship", "slow"]  # slow was killed mid-run and ran to the end once
