"""Where a run's numbers came from, in plain sentences for reports, review records and boards.

Nothing here knows a step or a driver by name: each step declares its own
``provenance`` and ``board_note`` (:func:`coordinator.core.step.step`) and each driver
its traits (a labeled stand-in, a coding-agent CLI in a worktree, a paid LLM), so a
team's own pipeline gets the same honesty as week2.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from coordinator.core.ports import driver_traits
from coordinator.core.registry import UnknownPlugin
from coordinator.core.roles import RoleDefinition
from coordinator.core.step import StepSpec, resolve_step

STAND_IN_WORDS = ("stand-in", "dry run")
"""Words every stand-in sentence carries, so a report can tell that some numbers are not real results."""


def _done(rec: Mapping[str, Any] | None) -> bool:
    return bool(rec) and rec.get("status") == "done"  # type: ignore[union-attr]


def _spec(ref: str, root: Path | None) -> StepSpec | None:
    try:
        return resolve_step(ref, root)
    except UnknownPlugin:  # a report of an old run whose step is gone still renders the rest
        return None


def plan_views(plan_tasks: Mapping[str, Any], order: Sequence[str] | None = None,
               ) -> tuple[dict[str, str | None], dict[str, dict[str, Any]]]:
    """Task id → step reference (None for an assignment) and task id → parameters, from a plan's
    tasks (models or their JSON form), in the plan's ``order`` when given (sentences follow it)."""
    steps: dict[str, str | None] = {}
    params: dict[str, dict[str, Any]] = {}
    ids = [t for t in order if t in plan_tasks] if order else list(plan_tasks)
    for tid in ids:
        t = plan_tasks[tid]
        get = t.get if isinstance(t, Mapping) else lambda k, _t=t: getattr(_t, k, None)
        steps[tid] = get("run")
        params[tid] = dict(get("params") or {})
    return steps, params


def provenance(steps: Mapping[str, str | None], params: Mapping[str, Mapping[str, Any]],
               records: Mapping[str, Mapping[str, Any]], root: Path | None = None) -> list[str]:
    """Sentences on the run's provenance, describing only finished tasks.

    ``steps``, ``params``: from :func:`plan_views`; ``records``: task id → its state record
    (status, driver, agent, metrics, notes); ``root``: the workspace (for ``module:function`` steps).
    """
    by_step: dict[str, list[str]] = {}
    for tid, ref in steps.items():
        if ref and _done(records.get(tid)):
            by_step.setdefault(ref, []).append(tid)
    lines = []
    for ref, tids in by_step.items():
        spec = _spec(ref, root)
        describe = spec.options.provenance if spec is not None and spec.options is not None else None
        if describe is not None and (line := describe(tids, params, records)):
            lines.append(line)
    stand_in = sorted(tid for tid, rec in records.items() if driver_traits(rec.get("driver")).stand_in and _done(rec))
    if stand_in:
        lines.append(f"Assignments ({', '.join(stand_in)}): answered by the **offline stand-in driver**, "
                     "not by an agent.")
    for tid, rec in sorted(records.items()):
        traits = driver_traits(rec.get("driver"))
        if not _done(rec) or not (traits.worktree or traits.paid_unless_free_provider):
            continue
        if not traits.worktree:  # an LLM driver notes "answered by <provider> model <model>"
            said = next((n for n in rec.get("notes") or [] if str(n).startswith("answered by ")), None)
            lines.append(f"Assignment {tid}: {said or 'answered by an LLM provider'}.")
        else:
            lines.append(f"Assignment {tid}: done by the {rec.get('agent') or 'coding-agent'} CLI.")
    return lines


def board_line(plan_tasks: Mapping[str, Any], roles: Mapping[str, RoleDefinition], root: Path | None = None,
               order: Sequence[str] | None = None) -> str:
    """One sentence for the boards on where the data and answers will come from (before tasks report):
    the first step's note, who answers assignments, then the other steps' notes, in plan order."""
    steps, params = plan_views(plan_tasks, order)
    parts: list[str] = []
    for tid, ref in steps.items():
        spec = _spec(ref, root) if ref else None
        note = spec.options.board_note if spec is not None and spec.options is not None else None
        if note is not None and (text := note(params[tid])) and text not in parts:
            parts.append(text)
    offline_roles = [r.name for r in roles.values() if driver_traits(r.driver).stand_in]
    if offline_roles:  # after the source of the data, before what was done with it
        parts.insert(min(1, len(parts)),
                     "assignments for " + ", ".join(offline_roles) + " are answered by the offline stand-in")
    return "; ".join(parts) + "." if parts else ""


def stand_in(lines: list[str]) -> bool:
    """Whether any of the run's numbers came from a stand-in (offline provider, dry run, offline benchmark)."""
    return any(word in line for line in lines for word in STAND_IN_WORDS)
