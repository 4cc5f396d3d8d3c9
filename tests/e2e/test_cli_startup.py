"""`coord --help` stays fast: the engine's heavy libraries load only when a command needs them."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.e2e.conftest import REPO, coord_env

pytestmark = pytest.mark.slow

HEAVY = ("langgraph", "langchain_core", "langsmith", "jinja2", "git", "openai", "anthropic", "pandas", "numpy")


def test_building_the_cli_imports_no_heavy_library():
    probe = ("import sys, json; import coordinator.cli.app; "
             f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({list(HEAVY)!r}))))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=coord_env(), capture_output=True,
                         text=True, check=True, timeout=120)
    assert json.loads(out.stdout) == []


def test_help_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "coordinator", "--help"], cwd=REPO, env=coord_env(),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    for command in ("run", "resume", "status", "runs", "costs", "budget", "approve", "reviews", "board", "watch"):
        assert command in out.stdout


def test_loading_the_week2_plan_imports_no_library_only_a_step_computes_with():
    """Checking step names and parameters imports the step modules, not datasketch or scipy."""
    probe = ("import sys, json; from pathlib import Path; import tempfile; "
             "from coordinator.engine.plan_loader import load_plan; "
             "assert load_plan('week2', workspace=Path(tempfile.mkdtemp())).tasks; "
             "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & {'datasketch', 'scipy', 'sklearn'})))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=coord_env(), capture_output=True,
                         text=True, check=True, timeout=120)
    assert json.loads(out.stdout) == []
