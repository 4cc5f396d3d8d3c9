from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from git import Actor, Repo

from coordinator.core.workspace import Workspace
from tests.fakes.llm_server import FakeLLMServer

FAKE_BIN = Path(__file__).resolve().parents[1] / "fakes" / "bin"
SECRET_ENV = ("API_KEY", "_TOKEN", "SECRET", "PASSWORD")


@pytest.fixture
def server():
    """A fresh loopback Anthropic/OpenAI server."""
    with FakeLLMServer() as srv:
        yield srv


@pytest.fixture(autouse=True)
def _no_real_keys(monkeypatch):
    """Never let a developer's real keys or endpoints reach a test."""
    for var in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "OPENAI_COMPATIBLE_API_KEY", "ANTHROPIC_BASE_URL",
                "OPENAI_BASE_URL", "OPENAI_COMPATIBLE_BASE_URL", "COORD_ENV_FILE", "COORD_PRICES"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def fake_clis(monkeypatch, tmp_path):
    """The fake claude/codex/agent first on PATH (then this Python), calls recorded, no real keys."""
    path = os.pathsep.join([str(FAKE_BIN), str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    monkeypatch.setenv("PATH", path)
    for name in list(os.environ):
        if name.startswith("FAKE_") or any(s in name.upper() for s in SECRET_ENV):
            monkeypatch.delenv(name)
    record = tmp_path / "calls"
    monkeypatch.setenv("FAKE_AGENT_RECORD", str(record))
    return record


@pytest.fixture
def git_ws(tmp_path) -> Workspace:
    """A workspace that is a git repository on branch main with one commit."""
    root = tmp_path / "ws"
    root.mkdir()
    repo = Repo.init(root, initial_branch="main")
    (root / "README.md").write_text("# project\n")
    (root / ".gitignore").write_text(".coord/\ndata/\n")
    repo.index.add(["README.md", ".gitignore"])
    who = Actor("Test Person", "person@example.com")
    repo.index.commit("initial", author=who, committer=who)
    return Workspace.at(root)


@pytest.fixture(autouse=True)
def _fresh_cli_versions():
    """Each test asks the (fake) CLIs for their version afresh: tests change what they answer."""
    from roles.drivers.cli._version import clear_cache

    clear_cache()
    yield
    clear_cache()
