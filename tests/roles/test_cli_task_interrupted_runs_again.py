"""Ctrl-C while an agent CLI works on a task: the task is not recorded (as failed, or as done without
its checks); the same command run again runs it again, checks and all."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coordinator.core.events import read_events
from coordinator.engine.result_log import recorded
from coordinator.engine.runner import run_status
from tests.roles.test_cli_drivers import _all_dead, plan_yaml

REPO = Path(__file__).resolve().parents[2]


def _coord(ws, *args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "coordinator", *args], cwd=ws.root, env=env, text=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.slow
def test_ctrl_c_during_an_agent_task_then_run_again_runs_the_task_again(git_ws, fake_clis, tmp_path):
    (git_ws.root / "p.yaml").write_text(plan_yaml("lead", "claude"))
    pidfile = tmp_path / "pids"
    env = {**os.environ, "PYTHONPATH": str(REPO), "FAKE_AGENT_PIDFILE": str(pidfile)}
    first = _coord(git_ws, "run", "p.yaml", env={**env, "FAKE_AGENT_MODE": "hang"})
    deadline = time.monotonic() + 60
    while not pidfile.exists():
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()
        time.sleep(0.05)
    first.send_signal(signal.SIGINT)  # what Ctrl-C sends coord (the agent has a session of its own)
    out, err = first.communicate(timeout=60)
    assert first.returncode == 130, out + err
    assert "continue with `coord resume " in err
    assert _all_dead([int(p) for p in pidfile.read_text().split()])  # no agent left working
    run_id = run_status(git_ws)["run_id"]
    assert [k for k in recorded(git_ws.run_dir(run_id)) if k[0] == "notes"] == [], "an interrupted result was kept"

    again = _coord(git_ws, "run", "p.yaml", env=env)
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, out + err
    assert "result recovered" not in out
    rec = run_status(git_ws)["tasks"]["notes"]
    assert rec["status"] == "done" and not rec.get("recovered")
    assert rec["metrics"]["checks_run"] == 1 and rec["metrics"]["checks_failed"] == 0
    starts = [e for e in read_events(git_ws.events) if e["kind"] == "task_started" and e["task"] == "notes"]
    assert len(starts) == 2 and not any(e["kind"] == "task_recovered" for e in read_events(git_ws.events))
    calls = [json.loads(p.read_text()) for p in fake_clis.glob("*.json")]
    assert len(calls) == 2  # the hanging call and the one that did the work
