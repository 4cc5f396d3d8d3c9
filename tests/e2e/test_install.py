"""A non-editable install into a fresh virtual environment runs `coord run week2` from an empty directory."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.e2e.conftest import REPO, SMALL

pytestmark = pytest.mark.slow


def test_wheel_install_runs_week2_from_an_empty_directory(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # Dependencies come from the test environment's site-packages (no network in tests);
    # coord itself is built and installed as a wheel, not linked to the checkout.
    Path(site, "_deps_from_test_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    dist = tmp_path / "dist"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                            "-q", "-w", str(dist), str(REPO)], capture_output=True, text=True)
    assert build.returncode == 0, build.stdout + build.stderr
    wheel = next(dist.glob("coord-*.whl"))
    install = subprocess.run([str(py), "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed",
                              "-q", str(wheel)],
                             capture_output=True, text=True)
    assert install.returncode == 0, install.stdout + install.stderr

    work = tmp_path / "empty"
    work.mkdir()
    where = subprocess.run([str(py), "-c", "import coordinator, templates, pipeline; print(coordinator.__file__)"],
                           cwd=work, capture_output=True, text=True, check=True).stdout
    assert where.startswith(site), where
    result = subprocess.run([str(venv / "bin" / "coord"), "run", "week2", *SMALL],
                            cwd=work, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout + result.stderr
    status = json.loads(subprocess.run([str(venv / "bin" / "coord"), "status", "--json"], cwd=work,
                                       capture_output=True, text=True, check=True).stdout)
    assert status["phase"] == "finished"
    assert (work / "task_boards" / "CURSOR_TASKS.md").exists()
