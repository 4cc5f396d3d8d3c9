"""The workspace lock on Postgres is a session lock: a server restarted mid-run ends the session under the run.
The run takes the lock again and finishes; when another process took the lock meanwhile, the run stops
with one clear error naming it."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import pytest

from coordinator.core.database import close_all, database_for, settings_for
from coordinator.core.db_lock import database_lock_holder, set_database_lock_holder
from tests.conftest import no_postgres
from tests.e2e.conftest import coord_cmd
from tests.postgres.server import NoServerBinaries, PgServer
from tests.postgres.test_runs_on_postgres import _coord, _env, _events

pytestmark = pytest.mark.slow

CHAIN = "name: slow\ntasks:\n" + "".join(
    f"  - {{id: s{i}, title: S{i}, role: lead, run: t_sleep, with: {{seconds: 1.5}}"
    f"{f', needs: [s{i - 1}]' if i else ''}}}\n" for i in range(4))


@pytest.fixture
def server():
    try:
        srv = PgServer()
    except NoServerBinaries as e:
        no_postgres(f"this test restarts a server of its own: {e}")
    srv.start()
    yield srv
    close_all()
    srv.remove()


def _start_run(root: Path, url: str) -> subprocess.Popen[str]:
    root.mkdir()
    (root / "slow.yaml").write_text(CHAIN)
    return subprocess.Popen([*coord_cmd(), "run", "slow.yaml"], cwd=root, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env(url), stdin=subprocess.DEVNULL)


def _wait_started(root: Path, proc: subprocess.Popen[str], task: str) -> None:
    deadline = time.monotonic() + 120
    while not any(e["kind"] == "task_started" and e["task"] == task for e in _events(root)):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)


def _holder(root: Path, monkeypatch, url: str) -> str | None:
    monkeypatch.setenv("COORD_DATABASE_URL", url)
    settings = settings_for(root)
    assert settings is not None
    try:
        return database_lock_holder(database_for(settings))
    except Exception:  # the server is still starting
        return None


def test_a_run_takes_the_lock_again_after_a_server_restart_and_finishes(tmp_path, server, monkeypatch):
    root = tmp_path / "ws"
    proc = _start_run(root, server.url)
    _wait_started(root, proc, "s1")
    assert f"pid {proc.pid}" in (_holder(root, monkeypatch, server.url) or "")
    server.stop("fast")  # the run's sessions end, its lock with them
    server.start()
    deadline = time.monotonic() + 30
    while f"pid {proc.pid}" not in (_holder(root, monkeypatch, server.url) or ""):
        assert proc.poll() is None and time.monotonic() < deadline, "the run did not take its lock again"
        time.sleep(0.1)
    assert "running run" in (_holder(root, monkeypatch, server.url) or "")  # the holder's words are kept
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "took the lock again" in err
    status = json.loads(_coord(["status", "--json"], root, server.url).stdout)
    assert status["phase"] == "finished" and {t["status"] for t in status["tasks"].values()} == {"done"}


def test_a_run_whose_lock_was_taken_meanwhile_stops_with_a_clear_error(tmp_path, server, monkeypatch):
    import psycopg  # Postgres tests only

    root = tmp_path / "ws"
    proc = _start_run(root, server.url)
    _wait_started(root, proc, "s1")
    monkeypatch.setenv("COORD_DATABASE_URL", server.url)
    settings = settings_for(root)
    assert settings is not None
    db = database_for(settings)
    with psycopg.connect(server.url, autocommit=True) as admin:
        row = admin.execute(
            "SELECT pid, classid::int8, objid::int8 FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND objsubid = 2 AND pid <> pg_backend_pid()").fetchone()
        assert row is not None, "the run holds no workspace lock"
        pid, classid, objid = row
        intruder = db.connect()  # another process's session: it queues for the lock, then has it
        waiting = threading.Thread(target=lambda: intruder.execute("SELECT pg_advisory_lock(%s::int, %s::int)",
                                                                    (classid, objid)))
        waiting.start()
        time.sleep(0.2)
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))  # the run's lock session ends, as in a restart
        waiting.join(timeout=30)
        set_database_lock_holder(intruder, "pid 4242 on elsewhere running run other-run")
        try:
            _, err = proc.communicate(timeout=60)
        finally:
            intruder.close()
    assert proc.returncode == 2, err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "lost the lock" in errors[0] and "pid 4242 on elsewhere" in errors[0]
    status = json.loads(_coord(["status", "--json"], root, server.url).stdout)
    assert status["tasks"]["s0"]["status"] == "done" and status["tasks"]["s3"]["status"] != "done"
