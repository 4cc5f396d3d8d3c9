"""The dashboard's templates and static files ship in the wheel (a non-editable `pip install .` serves them)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
WEB = REPO / "coordinator" / "web"


@pytest.mark.slow
def test_wheel_holds_every_template_and_static_file(tmp_path: Path):
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path), str(REPO)], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stdout + build.stderr
    wheel = next(tmp_path.glob("coord-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = sorted(p.relative_to(REPO).as_posix() for d in ("templates", "static") for p in (WEB / d).iterdir()
                     if p.is_file())
    assert shipped and any(s.endswith(".js") for s in shipped) and any(s.endswith(".html.j2") for s in shipped)
    missing = [s for s in shipped if s not in names]
    assert not missing, f"not in the wheel: {missing}"
