"""`coord run week2` keeps its scratch under `.coord/tmp/`: nothing in `$TMPDIR`, nothing in `/dev/shm`.

The run is a real subprocess with ``TMPDIR`` pointing at an empty directory of the test's own. Under
``strace`` (when this machine has it) every file the run and its children create or open is
listed, so a scratch file made and removed again within the run is caught too; without strace
the test checks what is left in both places afterwards.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PLUGINS

REPO = Path(__file__).resolve().parents[2]
SHM = Path("/dev/shm")
_TRACED = re.compile(r'^\d+\s+(?:openat|open|creat|mkdir|mkdirat|rename|renameat2?|link|linkat|symlink)\((?:[^"]*)"([^"]+)"')


def _shm_names() -> set[str]:
    return {p.name for p in SHM.iterdir()} if SHM.is_dir() else set()


@pytest.mark.slow
def test_week2_writes_no_scratch_outside_the_workspace(tmp_path):
    ws, tmpdir = tmp_path / "ws", tmp_path / "machine-tmp"
    ws.mkdir()
    tmpdir.mkdir()
    env = {**os.environ, "TMPDIR": str(tmpdir), "PYTHONPATH": os.pathsep.join([str(REPO), str(PLUGINS)])}
    env.pop("JOBLIB_TEMP_FOLDER", None)
    command = [sys.executable, "-m", "coordinator", "run", "week2", "--set", "examples_per_agent=200", "-w", str(ws)]
    trace = tmp_path / "trace.txt"
    strace = shutil.which("strace")
    if strace:
        command = [strace, "-f", "-qq", "-o", str(trace), "-e",
                   "trace=open,openat,creat,mkdir,mkdirat,rename,renameat,renameat2,link,linkat,symlink", *command]
    shm_before = _shm_names()

    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)

    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "finished: every task done" in done.stdout
    assert list(tmpdir.iterdir()) == []
    assert not (ws / ".coord" / "tmp").exists()  # the run's own scratch is gone too
    leaked = {n for n in _shm_names() - shm_before if re.search(r"joblib|loky|sem\.|mp-|coord", n)}
    assert leaked == set()
    if strace:
        touched = [m.group(1) for line in trace.read_text().splitlines() if (m := _TRACED.match(line))]
        assert touched, "strace saw no file operation at all"
        outside = [p for p in touched if p.startswith((str(tmpdir), str(SHM)))]
        assert outside == []
        scratch = [p for p in touched if p.startswith(str(ws / ".coord" / "tmp") + "/")]
        assert scratch, "week2 spilled nothing to .coord/tmp/: this test no longer sees scratch files"
