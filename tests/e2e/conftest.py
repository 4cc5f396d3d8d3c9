from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SMALL = ["--set", "examples_per_agent=30"]


def coord_cmd() -> list[str]:
    """The installed console script when present, else the module (same code either way)."""
    exe = shutil.which("coord", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "coordinator"]


def run_coord(args: list[str], cwd: Path, timeout: float = 600, env: dict[str, str] | None = None
              ) -> subprocess.CompletedProcess[str]:
    """Run `coord ARGS` in ``cwd`` as a user would."""
    full_env = {**os.environ, **(env or {})}
    full_env.pop("ANTHROPIC_API_KEY", None)
    full_env.pop("OPENAI_API_KEY", None)
    return subprocess.run([*coord_cmd(), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=full_env, stdin=subprocess.DEVNULL)


@pytest.fixture
def empty_dir(tmp_path):
    d = tmp_path / "work"
    d.mkdir()
    return d
