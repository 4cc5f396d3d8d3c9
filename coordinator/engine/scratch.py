"""Scratch space of a running plan: ``.coord/tmp/``, never the machine's temp directory.

Steps spill to disk (LSH indexes, spill maps, scikit-learn's joblib folders) through Python's
``tempfile``. While a run executes, ``tempfile`` and joblib point into the workspace, so a
killed run leaves nothing behind in ``$TMPDIR``; what it left in ``.coord/tmp/`` is removed when
the next run or resume starts (the workspace lock makes that run the only user).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from coordinator.core.workspace import Workspace

JOBLIB_ENV = "JOBLIB_TEMP_FOLDER"
_lock = threading.Lock()
_users = 0
_saved: tuple[str | None, str | None] = (None, None)


@contextmanager
def scratch_space(ws: Workspace) -> Iterator[Path]:
    """``.coord/tmp/``, emptied of a killed run's leftovers, as the temp directory while the block runs."""
    global _users, _saved
    root = ws.state_dir / "tmp"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    with _lock:
        if _users == 0:  # runs in one process (tests) share the first one's setting
            _saved = (tempfile.tempdir, os.environ.get(JOBLIB_ENV))
            tempfile.tempdir = str(root)
            os.environ[JOBLIB_ENV] = str(root)
        _users += 1
    try:
        yield root
    finally:
        with _lock:
            _users -= 1
            last = _users == 0
            if last:
                tempfile.tempdir = _saved[0]
                if _saved[1] is None:
                    os.environ.pop(JOBLIB_ENV, None)
                else:
                    os.environ[JOBLIB_ENV] = _saved[1]
        if last:  # another run of this process may still be using it; the next start cleans it then
            shutil.rmtree(root, ignore_errors=True)
