"""Fault injection for crash tests: ``COORD_FAULT_AT=<point>`` makes the process die at that point.

The process exits at once with status 137, as if SIGKILLed, so a test can kill coord exactly
between two writes (after a sync's commit and before its files, say) and check what a resume
or the next sync makes of it. Unset, a fault point does nothing.
"""

from __future__ import annotations

import os

FAULT_AT = "COORD_FAULT_AT"


def fault_point(name: str) -> None:
    """Die here when ``COORD_FAULT_AT`` names this point."""
    if os.environ.get(FAULT_AT) == name:
        os._exit(137)
