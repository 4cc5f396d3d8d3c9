from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# Small but real: 80 examples per agent with 30% held out gives ~24 benchmark items per agent,
# enough for the launch gate's significance test to mean something.
SMALL = ["--set", "examples_per_agent=80", "--set", "holdout_fraction=0.3"]


def coord_cmd() -> list[str]:
    """The installed console script when there is one, else this checkout run as a module."""
    exe = shutil.which("coord", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "coordinator"]


def coord_env() -> dict[str, str]:
    """The environment a user would have: no API keys; the checkout importable when not installed."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    if len(coord_cmd()) > 1:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


def run_coord(args: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run `coord ARGS` in ``cwd`` as a user would."""
    return subprocess.run([*coord_cmd(), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=coord_env(), stdin=subprocess.DEVNULL)


@pytest.fixture
def empty_dir(tmp_path, store):
    d = tmp_path / "work"
    d.mkdir()
    return d
