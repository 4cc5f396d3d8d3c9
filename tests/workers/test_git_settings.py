"""`workers: {git_remote: …}`: read with file/line for bad values; only with it are tasks routed by how their
files travel (a step needs `workspace-files`, a cli assignment does not); `workspace-files` is coord's own."""

from __future__ import annotations

import pytest

from coordinator.core.errors import ConfigError, UsageError
from coordinator.core.plan import CompiledTask, DriverName
from coordinator.core.roles import RoleDefinition
from coordinator.engine.plan_loader import load_plan
from coordinator.engine.workers.git_layout import WORKSPACE_FILES, implicit_requires
from coordinator.engine.workers.settings import workers_settings
from coordinator.engine.workers.worker import WorkerOptions, check_options


def test_git_remote_is_read_and_a_bad_one_is_named_by_file_and_line(tmp_path, monkeypatch):
    monkeypatch.setenv("COORD_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/x")
    (tmp_path / "coord.yaml").write_text("workers:\n  lease_s: 5\n  git_remote: upstream\n")
    settings = workers_settings(tmp_path)
    assert settings is not None and settings.git_remote == "upstream"
    (tmp_path / "coord.yaml").write_text("workers: true\n")
    settings = workers_settings(tmp_path)
    assert settings is not None and settings.git_remote is None
    (tmp_path / "coord.yaml").write_text("workers:\n  git_remote: [a]\n")
    with pytest.raises(ConfigError) as e:
        workers_settings(tmp_path)
    assert "coord.yaml:2" in str(e.value) and "git_remote" in str(e.value)


def _tasks(root) -> tuple[CompiledTask, CompiledTask]:
    plan = root / "p.yaml"
    plan.write_text("name: p\ntasks:\n  - {id: s, title: S, role: lead, run: t_noop}\n"
                    "  - {id: a, title: A, role: lead, instructions: do it}\n")
    tasks = load_plan(str(plan), workspace=root).tasks
    return tasks["s"], tasks["a"]


def test_only_with_git_remote_do_tasks_that_write_the_workspace_need_workspace_files(tmp_path):
    cli = RoleDefinition(name="lead", agent="claude", driver=DriverName("cli"), model=None, budget_usd=None, driver_reason="")
    offline = RoleDefinition(name="lead", agent="claude", driver=DriverName("offline"), model=None, budget_usd=None,
                             driver_reason="")
    step, assignment = _tasks(tmp_path)
    assert implicit_requires(None, step, cli) == () and implicit_requires(None, assignment, offline) == ()
    assert implicit_requires("origin", step, cli) == (WORKSPACE_FILES,)  # a step writes data files
    assert implicit_requires("origin", assignment, offline) == (WORKSPACE_FILES,)  # writes into the workspace
    assert implicit_requires("origin", assignment, cli) == ()  # its work lands on a branch


def test_workspace_files_cannot_be_offered_by_hand():
    with pytest.raises(UsageError, match="coord's own"):
        check_options(WorkerOptions(capabilities=(WORKSPACE_FILES,)))
