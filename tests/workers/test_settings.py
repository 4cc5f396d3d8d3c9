"""Workers are off unless coord.yaml turns them on; the setting and `requires:` are checked with file/line."""

from __future__ import annotations

import pytest

from coordinator.core.errors import ConfigError, PlanError
from coordinator.core.events import EventLog
from coordinator.core.workspace import Workspace
from coordinator.engine.plan_loader import load_plan
from coordinator.engine.pool import TaskPool
from coordinator.engine.workers.settings import workers_settings


def _pool(root) -> TaskPool:
    ws = Workspace(root)
    return TaskPool(workspace=root, run_id="r", events=EventLog.of(ws, "r"), roles={}, accept=lambda t, o: [])


def test_without_the_setting_the_pool_runs_tasks_itself(tmp_path, monkeypatch):
    monkeypatch.delenv("COORD_DATABASE_URL", raising=False)
    assert workers_settings(tmp_path) is None and _pool(tmp_path)._remote is None
    (tmp_path / "coord.yaml").write_text("workers: false\n")
    assert workers_settings(tmp_path) is None and _pool(tmp_path)._remote is None


def test_workers_without_a_database_are_refused_with_the_line(tmp_path, monkeypatch):
    monkeypatch.delenv("COORD_DATABASE_URL", raising=False)
    (tmp_path / "coord.yaml").write_text("roles: {}\nworkers: true\n")
    with pytest.raises(ConfigError) as e:
        workers_settings(tmp_path)
    assert "coord.yaml:2" in str(e.value) and "Postgres" in str(e.value)


def test_a_bad_lease_is_refused_with_the_line(tmp_path, monkeypatch):
    monkeypatch.setenv("COORD_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/x")
    (tmp_path / "coord.yaml").write_text("workers:\n  lease_s: 0.1\n")
    with pytest.raises(ConfigError) as e:
        workers_settings(tmp_path)
    assert "coord.yaml:2" in str(e.value) and "lease_s" in str(e.value)
    (tmp_path / "coord.yaml").write_text("workers:\n  lease_s: 5\n")
    settings = workers_settings(tmp_path)
    assert settings is not None and settings.lease_s == 5 and settings.heartbeat_s == pytest.approx(5 / 3)


def test_requires_is_compiled_and_a_bad_capability_names_file_and_line(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("name: g\ntasks:\n  - {id: a, title: A, role: lead, run: t_noop, requires: [gpu, claude-cli]}\n")
    assert load_plan(str(good), workspace=tmp_path).tasks["a"].requires == ["gpu", "claude-cli"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: b\ntasks:\n  - id: a\n    title: A\n    role: lead\n    run: t_noop\n"
                   "    requires: [GPU]\n")
    with pytest.raises(PlanError) as e:
        load_plan(str(bad), workspace=tmp_path)
    assert "bad.yaml:7" in str(e.value) and "requires" in str(e.value)


def test_with_workers_a_run_dispatches_more_than_it_would_run_itself(tmp_path, monkeypatch):
    from coordinator.engine.runner import CONCURRENCY, DISPATCH_WITH_WORKERS, _default_concurrency

    monkeypatch.delenv("COORD_DATABASE_URL", raising=False)
    assert _default_concurrency(Workspace(tmp_path)) == CONCURRENCY == 4
    monkeypatch.setenv("COORD_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/x")
    (tmp_path / "coord.yaml").write_text("workers: true\n")
    assert _default_concurrency(Workspace(tmp_path)) == DISPATCH_WITH_WORKERS > CONCURRENCY
