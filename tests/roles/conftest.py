from __future__ import annotations

import pytest

from tests.fakes.llm_server import FakeLLMServer


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
