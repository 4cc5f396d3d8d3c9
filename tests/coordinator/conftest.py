from __future__ import annotations

import pytest

from coordinator.core.workspace import Workspace


@pytest.fixture
def ws(tmp_path, store):
    """An empty workspace directory (its state on ``store``: SQLite unless the module runs on both)."""
    root = tmp_path / "ws"
    root.mkdir()
    return Workspace.at(root)
