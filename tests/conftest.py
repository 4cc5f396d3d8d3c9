"""The test suite's own steps are a plugin distribution (tests/plugins/*.dist-info) on the path,
registered through entry points exactly like a team's step package."""

from __future__ import annotations

import sys
from pathlib import Path

PLUGINS = Path(__file__).resolve().parent / "plugins"
"""Holds the dist-info of the test steps; subprocesses that run them need it on PYTHONPATH too."""

if str(PLUGINS) not in sys.path:
    sys.path.insert(0, str(PLUGINS))
