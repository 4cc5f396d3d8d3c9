"""The test suite's own steps are a plugin distribution (tests/plugins/*.dist-info) on the path,
registered through entry points exactly like a team's step package."""

from __future__ import annotations

import sys
from pathlib import Path

PLUGINS = Path(__file__).resolve().parent / "plugins"
"""Holds the dist-info of the test steps; subprocesses that run them need it on PYTHONPATH too."""

if str(PLUGINS) not in sys.path:
    sys.path.insert(0, str(PLUGINS))


# --- The state store a test runs on: SQLite files (the default) or a Postgres database --------------
# Tests that take the `store` fixture (the workspace fixtures do) run on SQLite; the modules in
# STORE_MODULES run each such test on both stores. A Postgres test gets a fresh database of its own,
# on the server COORD_TEST_DATABASE_URL names (CI starts one), else on a server started here from the
# system's initdb/pg_ctl. Without either they skip, saying why; with COORD_REQUIRE_POSTGRES=1 they fail.

import os  # noqa: E402
import uuid  # noqa: E402
from urllib.parse import urlsplit, urlunsplit  # noqa: E402

import pytest  # noqa: E402

PG_URL_ENV = "COORD_TEST_DATABASE_URL"
REQUIRE_PG_ENV = "COORD_REQUIRE_POSTGRES"
STORE_MODULES = {
    "tests.coordinator.test_engine": ("slow",),
    "tests.coordinator.test_gates": ("slow",),
    "tests.coordinator.test_budget": ("slow",),
    "tests.task_boards.test_sync_atomic": ("slow",),
    "tests.task_boards.test_gates": ("slow",),
    "tests.e2e.test_crash_resume": (),
}
"""Modules whose `store` tests run on both stores → marks of their Postgres variants (all in the full suite:
the fast loop stays under a minute; tests/postgres keeps its quick store tests there)."""


def no_postgres(reason: str) -> None:
    """Skip (or, where Postgres is required, fail) a test that needs a server."""
    if os.environ.get(REQUIRE_PG_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_PG_ENV}=1)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def pg_admin_url():
    """A Postgres server's URL (any database; tests create their own)."""
    url = os.environ.get(PG_URL_ENV)
    if url:
        yield url
        return
    from tests.postgres.server import (  # only for tests that need a server
        NoServerBinaries,
        PgServer,
    )

    try:
        server = PgServer()
    except NoServerBinaries as e:
        no_postgres(f"no Postgres server: set {PG_URL_ENV} or install postgresql ({e})")
    server.start()
    yield server.url
    server.remove()


def database_url(server_url: str, name: str) -> str:
    """``server_url`` pointing at database ``name``."""
    return urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))


@pytest.fixture
def pg_database(pg_admin_url):
    """A fresh, empty database on the test server (dropped afterwards); its URL."""
    import psycopg  # Postgres tests only

    from coordinator.core.database import close_all

    name = f"coord_test_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(pg_admin_url, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    except psycopg.OperationalError as e:
        no_postgres(f"the Postgres server at {PG_URL_ENV} cannot be reached ({e})")
    yield database_url(pg_admin_url, name)
    close_all()
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def store(request, monkeypatch):
    """``sqlite`` or ``postgres`` (then COORD_DATABASE_URL names a fresh database, for this process and
    every coord it starts)."""
    kind = getattr(request, "param", "sqlite")
    monkeypatch.delenv("COORD_DATABASE_URL", raising=False)
    monkeypatch.delenv("COORD_DATABASE_SOURCE", raising=False)
    if kind == "postgres":
        monkeypatch.setenv("COORD_DATABASE_URL", request.getfixturevalue("pg_database"))
    yield kind
    if kind == "postgres":
        from coordinator.core.database import close_all

        close_all()


def pytest_generate_tests(metafunc):
    marks = STORE_MODULES.get(metafunc.module.__name__)
    if marks is not None and "store" in metafunc.fixturenames:
        metafunc.parametrize("store", ["sqlite", pytest.param(
            "postgres", marks=[getattr(pytest.mark, m) for m in marks])], indirect=True)


WHOLE_SUITE_ONLY = ("tests/web/", "tests/postgres/", "tests/mcp/", "tests/coordinator/test_notify.py",
                    "tests/roles/test_providers.py", "tests/roles/test_cli_real_quirks.py",
                    "tests/roles/test_cli_drivers.py", "tests/roles/test_cli_gate_worktree.py")
"""Test folders and files that run only in the full suite (`slow`): each test is quick, but together they add
~35 s (servers, browsers, HTTP round trips to the local SDK server, fake CLI subprocesses in git worktrees) and
the fast loop stays under a minute. CI runs them all."""


def pytest_collection_modifyitems(config, items):
    root = Path(__file__).resolve().parents[1]
    for item in items:
        rel = Path(str(item.path)).resolve().relative_to(root).as_posix()
        if rel.startswith(WHOLE_SUITE_ONLY):
            item.add_marker(pytest.mark.slow)
