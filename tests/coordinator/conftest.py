from __future__ import annotations

import pytest

from coordinator.core.workspace import Workspace


@pytest.fixture
def ws(tmp_path):
    """An empty workspace directory."""
    root = tmp_path / "ws"
    root.mkdir()
    return Workspace.at(root)
