"""The environment coord gives the commands it runs (command tasks, command checks).

``python3``/``python`` in a command mean coord's own interpreter (its directory comes first on
``PATH``, as when its virtual environment is activated), so a plan's tools can import what coord
has installed; ``COORD_PYTHON`` names that interpreter too.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path


def command_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """``os.environ`` with coord's interpreter first on PATH, plus ``extra``."""
    env = dict(os.environ)
    bindir = str(Path(sys.executable).parent)
    path = env.get("PATH", "")
    if bindir not in path.split(os.pathsep)[:1]:
        env["PATH"] = bindir + (os.pathsep + path if path else "")
    env["COORD_PYTHON"] = sys.executable
    env.update(extra or {})
    return env
