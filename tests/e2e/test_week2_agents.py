"""`coord init --git` then `coord run week2-agents` with the fake agent CLIs first on PATH."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from git import Repo

from tests.e2e.conftest import run_coord

pytestmark = pytest.mark.slow

FAKES = Path(__file__).resolve().parents[1] / "fakes"


def test_coord_run_week2_agents_in_a_fresh_git_workspace(empty_dir, monkeypatch):
    monkeypatch.setenv("PATH", os.pathsep.join([str(FAKES / "bin"), str(Path(sys.executable).parent),
                                                os.environ.get("PATH", "")]))
    monkeypatch.setenv("FAKE_AGENT_RECIPES", str(FAKES / "recipes" / "week2_agents.json"))
    init = run_coord(["init", "--git"], cwd=empty_dir)
    assert init.returncode == 0, init.stdout + init.stderr
    repo = Repo(empty_dir)
    assert repo.active_branch.name and len(list(repo.iter_commits())) == 1
    proc = run_coord(["run", "week2-agents"], cwd=empty_dir, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (empty_dir / "tools" / "adp_count.py").exists()
    assert not repo.is_dirty(untracked_files=False)
    assert len([c for c in repo.iter_commits() if len(c.parents) == 2]) == 3  # three reviewed merges
