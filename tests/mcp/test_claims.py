"""Claims on the engine's side: a session takes an assignment, the run waits for it, reports are measured."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from coordinator.core.errors import CoordError, UsageError
from coordinator.core.events import read_events
from coordinator.core.workspace import Workspace, WorkspaceLock
from coordinator.engine import claim_service, task_claims
from coordinator.engine.runner import RunOptions, run_plan, run_status
from tests.conftest import PLUGINS
from tests.mcp.conftest import start

REPO = Path(__file__).resolve().parents[2]

LIVE_PLAN = """name: live
tasks:
  - {id: warmup, title: Warm up, role: lead, run: t_sleep, with: {seconds: SECONDS}}
  - id: write
    title: Write the notes
    role: execution
    needs: [warmup]
    instructions: Write notes/out.md; it must say DONE.
    accept: [{file: ACCEPT_FILE}]
"""
"""``write`` goes to the offline stand-in unless a session holds it; ``warmup`` gives a session time to claim."""


def _events(ws: Workspace, kind: str) -> list[dict]:
    return [e for e in read_events(ws.events) if e["kind"] == kind]


def _live(ws: Workspace, accept: str, seconds: float = 1.5):
    """Start the live plan in a thread; return the thread and a box that gets its summary."""
    (ws.root / "live.yaml").write_text(LIVE_PLAN.replace("SECONDS", str(seconds)).replace("ACCEPT_FILE", accept))
    box: dict = {}
    thread = threading.Thread(target=lambda: box.update(summary=run_plan(
        ws, RunOptions(plan=str(ws.root / "live.yaml"), render_interval=0))), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the run is under way once its first step is checkpointed
        with contextlib.suppress(CoordError):
            if run_status(ws)["tasks"]["warmup"].get("status") == "running":
                return thread, box
        time.sleep(0.02)
    raise AssertionError("the run never started")


def test_paused_run_claim_report_measured_then_taken(ws):
    summary = start(ws)
    assert summary.phase == "waiting" and summary.state["tasks"]["write"]["held_by"] == "person"
    view = claim_service.claim_task(ws, "write", "agent-a", role="execution")
    assert view.reopened and view.claim["status"] == "held"
    assert "Write notes/out.md; it must say DONE." in view.instructions
    assert view.accept == ["file notes/out.md exists", "the notes say DONE"]
    assert run_status(ws)["tasks"]["write"]["status"] == "pending"  # handed back to the run for the session

    (ws.root / "notes").mkdir()
    (ws.root / "notes/out.md").write_text("draft\n")
    first = claim_service.report_result(ws, "write", "agent-a", "wrote a draft", ["notes/out.md"])
    assert not first.report["accepted"] and first.handed_to == "nobody"
    assert first.report["failures"] == ["the notes say DONE (measured 1; exit 1)"]  # grep's exit code, measured
    assert run_status(ws)["tasks"]["write"]["status"] == "pending"  # a failed report changes nothing in the run

    (ws.root / "notes/out.md").write_text("DONE\n")
    second = claim_service.report_result(ws, "write", "agent-a", "finished: it says DONE", ["notes/out.md"])
    assert second.report["accepted"] and second.report["attempt"] == 2
    assert (second.handed_to, second.task_status, second.run_phase) == ("this process", "done", "waiting")
    assert any("gate review waits for your decision" in h for h in second.hints)
    rec = run_status(ws)["tasks"]["write"]
    assert rec["status"] == "done" and rec["artifacts"][0]["path"] == "notes/out.md"
    assert rec["notes"][0].startswith("done in an interactive session by agent-a")
    assert run_status(ws)["gates"]["review"]["status"] == "waiting"
    assert task_claims.load(ws, summary.run_id, "write")["status"] == "taken"
    kinds = [e["kind"] for e in read_events(ws.events) if e["kind"].startswith("claim_")]
    assert kinds == ["claim_made", "claim_reported", "claim_reported", "claim_taken"]


def test_a_claim_is_refused_where_it_cannot_hold(ws):
    summary = start(ws)
    with pytest.raises(UsageError, match="coord's own work"):
        claim_service.claim_task(ws, "ship", "agent-a")  # a pipeline step
    with pytest.raises(UsageError, match="belongs to role 'execution'"):
        claim_service.claim_task(ws, "write", "agent-a", role="lead")
    claim_service.claim_task(ws, "write", "agent-a")
    with pytest.raises(UsageError, match="in the hands of agent-a"):
        claim_service.claim_task(ws, "write", "agent-b")
    with pytest.raises(UsageError, match="claimed by agent-a, not by agent-b"):
        claim_service.report_result(ws, "write", "agent-b", "mine", [])
    again = claim_service.claim_task(ws, "write", "agent-a")  # the holder claiming again renews the lease
    assert again.claim["lease_until"] > time.time() + 1000
    claim_service.release_task(ws, "write", "agent-a")
    assert task_claims.load(ws, summary.run_id, "write")["status"] == "released"
    # a driver doing the task now (its marker names the process that drives the run) keeps a claim off;
    # a marker a killed process left behind does not
    marker = task_claims.claims_dir(ws, summary.run_id) / "write.driver"
    marker.write_text(f"{os.getpid()} cli now\n")
    with WorkspaceLock(ws) as lock:
        lock.claim(summary.run_id)
        with pytest.raises(UsageError, match=f"being done by its driver now \\(process {os.getpid()}\\)"):
            claim_service.claim_task(ws, "write", "agent-b")
    assert claim_service.claim_task(ws, "write", "agent-b").claim["holder"] == "agent-b"


def test_report_outside_the_workspace_and_a_repeated_report(ws):
    start(ws)
    claim_service.claim_task(ws, "write", "agent-a")
    out = claim_service.report_result(ws, "write", "agent-a", "see there", ["../outside.md", "notes/none.md"])
    assert out.report["failures"][:2] == ["reported file '../outside.md' is outside the workspace",
                                          "reported file 'notes/none.md' does not exist"]
    again = claim_service.report_result(ws, "write", "agent-a", "see there", ["../outside.md", "notes/none.md"],
                                        attempt=1)
    assert again.replayed and again.report == out.report  # the same (run, task, attempt): recorded once
    with pytest.raises(UsageError, match="already recorded with other content"):
        claim_service.report_result(ws, "write", "agent-a", "something else", [], attempt=1)
    with pytest.raises(UsageError, match="the next is 2"):
        claim_service.report_result(ws, "write", "agent-a", "skipping ahead", [], attempt=5)
    assert len(_events(ws, "claim_reported")) == 1


@pytest.mark.slow
def test_a_live_run_waits_for_the_session_instead_of_the_driver(ws):
    (ws.root / "coord.yaml").unlink()  # execution goes to the offline stand-in
    thread, box = _live(ws, "notes/out.md")
    run_id = next((ws.state_dir / "runs").glob("*/run.json")).parent.name
    claim_service.claim_task(ws, "write", "agent-a", run_id=run_id)
    deadline = time.monotonic() + 15
    while run_status(ws, run_id)["tasks"]["write"].get("status") != "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    assert thread.is_alive() and not (ws.root / "reports/assignments/write.md").exists()  # no stand-in answer
    (ws.root / "notes").mkdir()
    (ws.root / "notes/out.md").write_text("DONE\n")
    view = claim_service.report_result(ws, "write", "agent-a", "done", ["notes/out.md"], run_id=run_id)
    assert view.handed_to == "live run" and view.task_status == "taken"
    thread.join(20)
    assert box["summary"].phase == "finished"
    rec = box["summary"].state["tasks"]["write"]
    assert rec["status"] == "done" and rec["notes"][0].startswith("done in an interactive session by agent-a")
    assert not (ws.root / "reports/assignments/write.md").exists()  # the headless driver never ran it


@pytest.mark.slow
def test_an_abandoned_claim_lapses_and_the_driver_runs_the_task(ws):
    (ws.root / "coord.yaml").unlink()
    thread, box = _live(ws, "reports/assignments/write.md", seconds=1.0)
    run_id = next((ws.state_dir / "runs").glob("*/run.json")).parent.name
    claim_service.claim_task(ws, "write", "agent-a", run_id=run_id, lease_s=0.5)  # and never heard of again
    thread.join(30)
    assert box["summary"].phase == "finished"
    rec = box["summary"].state["tasks"]["write"]
    assert rec["notes"] == ["answered by the offline stand-in (no LLM was called)"]  # the driver did it
    claim = task_claims.load(ws, run_id, "write")
    assert claim["status"] == "expired" and "no sign of life" in claim["ended"]
    assert [e["task"] for e in _events(ws, "claim_expired")] == ["write"]
    with pytest.raises(UsageError, match="is finished: only an unfinished run's tasks can be claimed"):
        claim_service.claim_task(ws, "write", "agent-a", run_id=run_id)


@pytest.mark.slow
def test_a_stored_result_survives_the_process_and_a_resume_takes_it(ws):
    summary = start(ws)
    claim_service.claim_task(ws, "write", "agent-a")
    (ws.root / "notes").mkdir()
    (ws.root / "notes/out.md").write_text("DONE\n")
    view = claim_service.report_result(ws, "write", "agent-a", "done", ["notes/out.md"], continue_run=False)
    assert view.handed_to == "stored" and run_status(ws)["tasks"]["write"]["status"] == "pending"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(PLUGINS)])}
    proc = subprocess.run([sys.executable, "-m", "coordinator", "resume", summary.run_id, "-w", str(ws.root)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 3, proc.stderr  # the gate after it waits for a person now
    rec = run_status(ws)["tasks"]["write"]
    assert rec["status"] == "done" and "report attempt 1" in rec["notes"][0]
    assert task_claims.load(ws, summary.run_id, "write")["status"] == "taken"


def test_a_lapsed_claim_cannot_report_and_another_session_may_take_the_task(ws):
    summary = start(ws)
    claim_service.claim_task(ws, "write", "agent-a", lease_s=0.05)
    time.sleep(0.1)
    with pytest.raises(UsageError, match="ran out"):
        claim_service.report_result(ws, "write", "agent-a", "late", [])
    with pytest.raises(UsageError, match="ran out"):
        claim_service.add_note(ws, "write", "agent-a", "still here")
    taken = claim_service.claim_task(ws, "write", "agent-b")
    assert taken.claim["holder"] == "agent-b" and taken.claim["status"] == "held"
    assert task_claims.load(ws, summary.run_id, "write")["holder"] == "agent-b"


def test_coord_status_names_the_tasks_a_session_holds(ws):
    import json

    from typer.testing import CliRunner

    from coordinator.cli.app import app

    summary = start(ws)
    runner = CliRunner()
    quiet = runner.invoke(app, ["status", "-w", str(ws.root)])
    assert quiet.exit_code == 0 and "in hand:" not in quiet.output
    claim_service.claim_task(ws, "write", "agent-a", role="execution")
    shown = runner.invoke(app, ["status", "-w", str(ws.root)])
    assert shown.exit_code == 0, shown.output
    assert "in hand: write is held by agent-a in an interactive session (coord mcp), lease until" in \
        " ".join(shown.output.split())
    data = json.loads(runner.invoke(app, ["status", "--json", "-w", str(ws.root)]).output)
    assert [(c["task"], c["holder"], c["status"]) for c in data["claims"]] == [("write", "agent-a", "held")]
    claim_service.release_task(ws, "write", "agent-a", run_id=summary.run_id)
    assert "in hand:" not in runner.invoke(app, ["status", "-w", str(ws.root)]).output
