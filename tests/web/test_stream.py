"""The run page's event stream: the sections as they are, then each change — here over a real uvicorn
server on loopback while a run executes in the same workspace."""

from __future__ import annotations

import json
import time

import httpx

from coordinator.core.errors import CoordError
from coordinator.core.workspace import Workspace
from coordinator.engine.run_view import run_status
from coordinator.web.render import RUN_SECTIONS
from tests.web.conftest import SLOW_PLAN, TOKEN, client, config, run_in_thread, start_server


def _status(ws: Workspace, run_id: str, task: str) -> str | None:
    """The task's status in the checkpoint (None while the run is still creating its checkpoint)."""
    try:
        return run_status(ws, run_id)["tasks"][task].get("status")
    except CoordError:
        return None


def _updates(lines):
    """Decoded ``update`` events from an iterator of SSE lines."""
    event = None
    for line in lines:
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: ") and event == "update":
            yield json.loads(line[6:])


def test_stream_starts_with_every_section_and_ends_after_its_time(ws: Workspace, waiting_run):
    c = client(config(ws, stream_s=0.3))
    answer = c.get(f"/runs/{waiting_run.run_id}/stream")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/event-stream")
    assert answer.text.startswith("retry: 1500\n\n")
    first = next(_updates(answer.text.splitlines()))
    assert set(first["sections"]) == set(RUN_SECTIONS)
    assert first["phase"] == "waiting"
    assert first["statuses"]["gates"] == {"signoff": "waiting"}
    assert 'data-node="task:ship" data-status="pending"' in first["sections"]["dag"]


def test_a_task_finishing_reaches_an_open_stream(ws, serve):
    server = start_server(serve, config(ws, port=0, token=TOKEN))
    thread, summaries = run_in_thread(ws, SLOW_PLAN)
    deadline = time.monotonic() + 30
    run_id = None
    while run_id is None or _status(ws, run_id, "slow") != "running":
        assert time.monotonic() < deadline, "the slow task never started"
        run_id = next(iter(r.name for r in (ws.state_dir / "runs").glob("*")), None)
        time.sleep(0.05)
    url = f"http://127.0.0.1:{server.port}/runs/{run_id}/stream"
    seen = []
    with httpx.stream("GET", url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as answer:
        assert answer.status_code == 200
        for update in _updates(answer.iter_lines()):
            seen.append(update)
            status = update["statuses"]["tasks"]["slow"]
            if len(seen) == 1:
                assert status == "running", update["statuses"]
                assert 'data-task="slow" data-status="running"' in update["sections"]["tasks"]
                (ws.root / "release").write_text("go")  # the task finishes while the stream is open
            elif status == "done":
                assert 'data-task="slow" data-status="done"' in update["sections"]["tasks"]
                assert "dag" in update["sections"]  # only what changed is sent; the graph did
                break
            assert time.monotonic() < deadline
    thread.join(30)
    assert summaries and summaries[0].phase == "waiting"  # the gate still waits for a person


def test_on_postgres_an_event_another_machine_wrote_changes_the_fingerprint(tmp_path, pg_database, monkeypatch):
    """A coordinator or worker elsewhere writes to the database only (not to this machine's events.jsonl):
    the stream notices by the newest event id, without waiting for its periodic refresh."""
    from coordinator.core.events import EventLog
    from coordinator.web.stream import fingerprint

    monkeypatch.setenv("COORD_DATABASE_URL", pg_database)
    monkeypatch.setenv("COORD_WORKSPACE_ID", "shared")  # two checkouts of one workspace, each its own events.jsonl
    (tmp_path / "here").mkdir()
    (tmp_path / "elsewhere").mkdir()
    here, there = Workspace.at(tmp_path / "here"), Workspace.at(tmp_path / "elsewhere")
    EventLog.of(here, "r1").emit("run_started")
    before = fingerprint(here, "r1")
    EventLog.of(there, "r1").emit("task_started", task="a")
    assert len(here.events.read_bytes().splitlines()) == 1  # nothing new in this machine's files…
    assert fingerprint(here, "r1") != before  # …yet the stream sees the change
