from __future__ import annotations

import pytest

import tests.coordinator.steps_for_tests  # noqa: F401  (registers the test steps)
from coordinator.core.workspace import Workspace


@pytest.fixture
def ws(tmp_path):
    """An empty workspace directory."""
    root = tmp_path / "ws"
    root.mkdir()
    return Workspace.at(root)
