"""How a measured figure reads in a sentence: numbers as the boards show them, named by what they count.

A bare ``0.018518518518518517`` or ``measured 2160`` says neither how much nor of what; a finding or a
deferred item's detail says ``audit.pii_rows = 2,160 (needs == 0)`` instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from templates import fmt_num


def figure(value: Any) -> str:
    """A measured value as text: a number as boards show it; a fanned-out task's values one per copy."""
    if isinstance(value, list) and all(isinstance(v, list | tuple) and len(v) == 2 for v in value):
        return ", ".join(f"{tid} {fmt_num(v)}" for tid, v in value)
    if isinstance(value, list):
        return ", ".join(fmt_num(v) for v in value)
    return fmt_num(value)


def measured_phrase(result: Mapping[str, Any]) -> str:
    """What a criterion measured, against what it needs, e.g. ``audit.pii_rows = 2,160 (needs == 0)``."""
    kind = result.get("kind")
    needs = f" (needs {result['op']} {figure(result.get('threshold'))})" if result.get("op") else ""
    if kind == "metric":
        return f"{result.get('target')} = {figure(result.get('measured'))}{needs}"
    if kind == "file":
        return f"file {result.get('target')} " + ("checks out" if result.get("passed") else "does not check out")
    if kind == "command" and result.get("op"):
        return f"`{result.get('target')}` measured {figure(result.get('measured'))}{needs}"
    if kind == "command":
        return f"`{result.get('target')}` " + ("passed" if result.get("passed") else "failed")
    return f"measured {figure(result.get('measured'))}{needs}"


def criterion_line(result: Mapping[str, Any]) -> str:
    """``label: what was measured`` — the target and threshold only when the label does not already say them."""
    label = str(result.get("label") or result.get("target"))
    if result.get("kind") == "metric" and label.startswith(str(result.get("target"))):
        return f"{label}: measured {figure(result.get('measured'))}"
    return f"{label}: {measured_phrase(result)}"
