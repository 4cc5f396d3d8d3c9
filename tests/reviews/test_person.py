"""One answer to "who did this" for board edits and CLI decisions."""

from __future__ import annotations

import subprocess

import pytest

from reviews import gitinfo
from reviews.gitinfo import person
from task_boards.sync import who


@pytest.fixture
def git_home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("USER", "login-user")
    gitinfo._git_user_name.cache_clear()
    yield home
    gitinfo._git_user_name.cache_clear()


def _git(*args, cwd=None):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def test_outside_a_repository_board_edits_and_decisions_use_the_global_git_name(tmp_path, git_home):
    _git("config", "--global", "user.name", "Global Person")
    ws = tmp_path / "ws"
    ws.mkdir()
    assert person(ws) == who(ws) == "Global Person"


def test_the_workspace_repository_name_comes_before_the_global_one(tmp_path, git_home):
    _git("config", "--global", "user.name", "Global Person")
    ws = tmp_path / "ws"
    ws.mkdir()
    _git("init", "-q", cwd=ws)
    _git("config", "user.name", "Repo Person", cwd=ws)
    assert person(ws) == who(ws) == "Repo Person"


def test_without_any_git_name_user_is_used(tmp_path, git_home):
    ws = tmp_path / "ws"
    ws.mkdir()
    assert person(ws) == who(ws) == "login-user"


def test_git_is_asked_once_per_workspace_per_process(tmp_path, git_home, monkeypatch):
    _git("config", "--global", "user.name", "Global Person")
    calls = []
    real = subprocess.run

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(gitinfo.subprocess, "run", counting)
    for _ in range(5):
        assert who(tmp_path) == "Global Person"
    assert len(calls) == 1
