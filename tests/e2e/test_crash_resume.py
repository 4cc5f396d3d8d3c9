"""SIGKILL `coord run week2` at several points; re-running completes it without redoing finished tasks."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import SMALL, coord_cmd, coord_env, run_coord

pytestmark = pytest.mark.slow

# Kill when the n-th event of this kind appears (counted over the whole log, across restarts).
KILL_POINTS = [("task_finished", 1), ("task_started", 3), ("gate_decided", 1), ("task_started", 8),
               ("task_finished", 9)]


def _events(ws: Path) -> list[dict]:
    path = ws / ".coord/events.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # the killed writer's torn last line
    return out


def _run_until(ws: Path, kind: str, n: int, timeout: float = 300) -> bool:
    """Start a run and SIGKILL it when the n-th `kind` event is logged; False if it ended first."""
    proc = subprocess.Popen([*coord_cmd(), "run", "week2", *SMALL], cwd=ws, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=coord_env())
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if sum(e["kind"] == kind for e in _events(ws)) >= n:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return True
            if proc.poll() is not None:
                return False
            time.sleep(0.01)
        raise AssertionError(f"no {kind} #{n} within {timeout}s")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _data_digest(ws: Path) -> dict[str, str]:
    out = {}
    for path in sorted((ws / "data").rglob("*")):
        if path.is_file() and not path.name.endswith(".manifest.json") and not path.name.startswith("."):
            out[path.relative_to(ws).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def test_kill_and_resume_loses_nothing_and_repeats_nothing(tmp_path, store):
    reference = tmp_path / "reference"
    crashed = tmp_path / "crashed"
    reference.mkdir()
    crashed.mkdir()
    ref = run_coord(["run", "week2", *SMALL], reference)
    assert ref.returncode == 0, ref.stdout + ref.stderr

    kills = sum(_run_until(crashed, kind, n) for kind, n in KILL_POINTS)
    assert kills >= 3, "the run finished before most kill points; the test lost its meaning"
    final = run_coord(["run", "week2", *SMALL], crashed)
    assert final.returncode == 0, final.stdout + final.stderr

    status = json.loads(run_coord(["status", "--json"], crashed).stdout)
    assert {t["status"] for t in status["tasks"].values()} == {"done"}
    events = _events(crashed)
    assert len({e["run"] for e in events}) == 1, "every restart resumed the same run"
    finished: dict[str, int] = {}
    for e in events:
        if e["kind"] == "task_finished":
            finished[e["task"]] = finished.get(e["task"], 0) + 1
    assert all(n == 1 for n in finished.values()), f"a completed task ran twice: {finished}"
    assert sum(e["kind"] == "run_resumed" for e in events) >= kills
    assert _data_digest(crashed) == _data_digest(reference)
    leftovers = [p for p in (crashed / "data").rglob(".*.tmp")]
    assert leftovers == [], leftovers
