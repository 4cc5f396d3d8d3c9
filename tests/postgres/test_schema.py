"""The workspace schema on Postgres: created, migrated forward, a newer one refused untouched; settings."""

from __future__ import annotations

import psycopg
import pytest

from coordinator.core import database
from coordinator.core.database import (
    SCHEMA_VERSION,
    DatabaseConfigError,
    SchemaTooNew,
    default_workspace_id,
    migrate,
    redact_url,
    settings_for,
)


def _versions(url: str, schema: str) -> list[int]:
    with psycopg.connect(url) as conn:
        return [v for (v,) in conn.execute(f'SELECT version FROM "{schema}".coord_schema ORDER BY 1')]


def test_a_new_schema_is_created_at_the_current_version_and_migrating_again_changes_nothing(pg_database):
    with psycopg.connect(pg_database, autocommit=True) as conn:
        assert migrate(conn, "coord_a") == 0
        assert migrate(conn, "coord_a") == SCHEMA_VERSION
        tables = {t for (t,) in conn.execute("SELECT table_name FROM information_schema.tables "
                                             "WHERE table_schema = 'coord_a'")}
    assert {"documents", "events", "calls", "budget_changes", "locks", "coord_schema"} <= tables
    assert _versions(pg_database, "coord_a") == list(range(1, SCHEMA_VERSION + 1))


def test_two_workspaces_share_a_database_in_schemas_of_their_own(pg_database):
    with psycopg.connect(pg_database, autocommit=True) as conn:
        migrate(conn, "coord_one")
        migrate(conn, "coord_two")
        conn.execute("INSERT INTO coord_one.documents (path, body) VALUES ('x', 'one')")
        assert conn.execute("SELECT count(*) FROM coord_two.documents").fetchone()[0] == 0


def test_a_schema_written_by_a_newer_coord_is_refused_and_left_as_it_is(pg_database):
    with psycopg.connect(pg_database, autocommit=True) as conn:
        migrate(conn, "coord_new")
        conn.execute("INSERT INTO coord_new.coord_schema (version, coord_version) VALUES (%s, '9.9')",
                     (SCHEMA_VERSION + 1,))
        conn.execute("INSERT INTO coord_new.documents (path, body) VALUES ('keep', 'me')")
        with pytest.raises(SchemaTooNew, match=rf"version {SCHEMA_VERSION + 1}, written by a newer coord"):
            migrate(conn, "coord_new")
        assert conn.execute("SELECT body FROM coord_new.documents WHERE path = 'keep'").fetchone()[0] == b"me"
    assert _versions(pg_database, "coord_new")[-1] == SCHEMA_VERSION + 1


def test_an_older_schema_is_migrated_forward(pg_database, monkeypatch):
    """A database set up at version 1 by an older coord gains what a newer one adds, keeping its rows."""
    monkeypatch.setattr(database, "MIGRATIONS", (*database.MIGRATIONS,
                                                 "ALTER TABLE documents ADD COLUMN note TEXT"))
    monkeypatch.setattr(database, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA coord_old")
        conn.execute(f"SET search_path TO coord_old; {database.MIGRATIONS[0]}")
        conn.execute("CREATE TABLE coord_old.coord_schema (version INTEGER PRIMARY KEY, coord_version TEXT NOT "
                     "NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
        conn.execute("INSERT INTO coord_old.coord_schema (version, coord_version) VALUES (1, 'old')")
        conn.execute("INSERT INTO coord_old.documents (path, body) VALUES ('kept', 'yes')")
        assert migrate(conn, "coord_old") == 1
        row = conn.execute("SELECT body, note FROM coord_old.documents WHERE path = 'kept'").fetchone()
    assert row == (b"yes", None)
    assert _versions(pg_database, "coord_old") == [1, 2]


def test_the_setting_comes_from_the_environment_before_coord_yaml(tmp_path, monkeypatch):
    monkeypatch.delenv("COORD_DATABASE_URL", raising=False)
    monkeypatch.delenv("COORD_WORKSPACE_ID", raising=False)
    assert settings_for(tmp_path) is None
    (tmp_path / "coord.yaml").write_text("roles: {}\ndatabase: postgresql://u:secret@db/coord\nworkspace_id: team_a\n")
    found = settings_for(tmp_path)
    assert found is not None and found.schema == "coord_team_a" and found.source.endswith("coord.yaml:2")
    assert found.safe_url == "postgresql://u:***@db/coord"
    monkeypatch.setenv("COORD_DATABASE_URL", "postgresql://other/x")
    found = settings_for(tmp_path)
    assert found is not None and found.url == "postgresql://other/x" and found.source == "COORD_DATABASE_URL"


def test_a_url_that_is_not_postgres_is_refused_with_where_it_was_set(tmp_path, monkeypatch):
    monkeypatch.delenv("COORD_DATABASE_URL", raising=False)
    (tmp_path / "coord.yaml").write_text("database: mysql://u:pw@h/db\n")
    with pytest.raises(DatabaseConfigError, match=r"coord.yaml:1: the database must be a postgresql:// URL, "
                                                  r"got 'mysql://u:\*\*\*@h/db'"):
        settings_for(tmp_path)


def test_the_default_workspace_id_is_a_valid_schema_name_and_differs_by_path(tmp_path):
    a, b = default_workspace_id(tmp_path / "My Project"), default_workspace_id(tmp_path / "sub" / "My Project")
    assert a != b and a.startswith("my_project_") and len(a) <= 50
    assert redact_url("postgresql://me:pw@h:5/d") == "postgresql://me:***@h:5/d"
