from __future__ import annotations

import pytest

from coordinator.core.workspace import Workspace


@pytest.fixture
def ws(tmp_path):
    """An empty workspace directory."""
    root = tmp_path / "ws"
    root.mkdir()
    return Workspace.at(root)


@pytest.fixture
def server():
    """A fresh loopback Anthropic/OpenAI server (tests/fakes/llm_server.py)."""
    from tests.fakes.llm_server import FakeLLMServer

    with FakeLLMServer() as srv:
        yield srv
