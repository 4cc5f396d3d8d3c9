"""A database coord cannot use: one `error:` line naming it (never its password), the exit code of the table
in coordinator/core/errors.py, no traceback, nothing written."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg
import pytest

from coordinator.core.database import SCHEMA_VERSION, settings_for
from coordinator.core.workspace import Workspace
from tests.conftest import database_url, no_postgres
from tests.e2e.conftest import coord_cmd, coord_env
from tests.postgres.server import NoServerBinaries, PgServer, free_port

pytestmark = pytest.mark.slow  # each starts coord in a process of its own (~1-2 s)


def _coord(args: list[str], cwd, url: str | None, extra_env: dict[str, str] | None = None):
    env = {**coord_env(), **(extra_env or {})}
    env.pop("COORD_DATABASE_URL", None)
    if url is not None:
        env["COORD_DATABASE_URL"] = url
    return subprocess.run([*coord_cmd(), *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env=env, stdin=subprocess.DEVNULL)


def _one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


def test_a_refused_connection_is_one_line_exit_1(tmp_path):
    url = f"postgresql://coord:s3cret@127.0.0.1:{free_port()}/nowhere"
    proc = _coord(["status"], tmp_path, url)
    line = _one_error_line(proc)
    assert proc.returncode == 1
    assert "cannot reach the database postgresql://coord:***@127.0.0.1" in line and "s3cret" not in line
    assert "set by COORD_DATABASE_URL" in line
    assert not (tmp_path / ".coord").exists()


def test_db_option_on_the_command_line_wins_and_a_wrong_scheme_is_a_usage_error(tmp_path):
    proc = _coord(["status", "--db", "sqlite:///x.db"], tmp_path, None)
    line = _one_error_line(proc)
    assert proc.returncode == 2
    assert line == ("error: --db: the database must be a postgresql:// URL, got 'sqlite:///x.db' (leave it unset "
                    "to keep the state in the workspace's SQLite files)")


def test_an_unknown_database_is_a_usage_error(pg_admin_url, tmp_path):
    proc = _coord(["status"], tmp_path, database_url(pg_admin_url, "no_such_database_here"))
    line = _one_error_line(proc)
    assert proc.returncode == 2 and "cannot log in to the database" in line and "does not exist" in line


def test_a_user_without_create_permission_is_told_what_it_needs(pg_database, tmp_path):
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS coord_limited")
        conn.execute("CREATE ROLE coord_limited LOGIN")
    url = pg_database.replace("postgresql://postgres@", "postgresql://coord_limited@")
    try:
        proc = _coord(["status"], tmp_path, url)
    finally:
        with psycopg.connect(pg_database, autocommit=True) as conn:
            conn.execute("DROP ROLE coord_limited")
    line = _one_error_line(proc)
    assert proc.returncode == 1
    assert "refused: permission denied for database" in line and "needs CREATE on the database" in line


def test_a_schema_from_a_newer_coord_is_refused_by_every_command(pg_database, tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    first = _coord(["runs"], ws, pg_database)
    assert first.returncode == 0, first.stderr
    os.environ["COORD_DATABASE_URL"] = pg_database
    try:
        schema = settings_for(Workspace.at(ws).root).schema
    finally:
        del os.environ["COORD_DATABASE_URL"]
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute(f'INSERT INTO "{schema}".coord_schema (version, coord_version) VALUES (%s, %s)',
                     (SCHEMA_VERSION + 1, "99.0"))
    proc = _coord(["runs"], ws, pg_database)
    line = _one_error_line(proc)
    assert proc.returncode == 2
    assert f"is at version {SCHEMA_VERSION + 1}, written by a newer coord" in line and "upgrade coord" in line


def test_a_missing_driver_says_which_extra_to_install(tmp_path):
    code = ("import sys; sys.modules['psycopg'] = None; sys.argv = ['coord', 'runs']; "
            "from coordinator.cli.app import main; main()")
    env = {**coord_env(), "COORD_DATABASE_URL": "postgresql://u@127.0.0.1:1/db"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, env=env, stdin=subprocess.DEVNULL)
    line = _one_error_line(proc)
    assert proc.returncode == 2 and "pip install 'coord[postgres]'" in line


@pytest.mark.parametrize("command", [["run", "week2"], ["approve", "data_quality"], ["board", "sync"]])
def test_commands_that_write_stop_before_writing_when_the_server_is_down(tmp_path, command):
    proc = _coord(command, tmp_path, f"postgresql://u@127.0.0.1:{free_port()}/db")
    _one_error_line(proc)
    assert proc.returncode in (1, 2)
    assert not (tmp_path / "data").exists() and not (tmp_path / ".coord" / "runs").exists()


def test_a_wrong_password_is_a_usage_error_that_never_shows_the_password(tmp_path):
    try:
        server = PgServer(host_auth="scram-sha-256")
    except NoServerBinaries as e:
        no_postgres(f"this test starts a server that checks passwords: {e}")
    try:
        server.start()
        with psycopg.connect(server.socket_url, autocommit=True) as conn:
            conn.execute("CREATE ROLE coord_pw LOGIN PASSWORD 'right-one'")
            conn.execute("GRANT CREATE ON DATABASE postgres TO coord_pw")
        right = f"postgresql://coord_pw:right-one@127.0.0.1:{server.port}/postgres"
        assert _coord(["runs"], tmp_path, right).returncode == 0
        proc = _coord(["runs"], tmp_path, right.replace("right-one", "wrong-one"))
    finally:
        server.remove()
    line = _one_error_line(proc)
    assert proc.returncode == 2
    assert "cannot log in to the database postgresql://coord_pw:***@127.0.0.1" in line
    assert "password authentication failed" in line and "wrong-one" not in line
