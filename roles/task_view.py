"""What an agent and a board see of one task: its view, its inputs, and the EXECUTE_NOW text.

The boards (:mod:`task_boards.render`) and the agent drivers (the prompt of a
``cli`` or ``llm`` assignment) render the same view, so an agent reads exactly
what a person reads on the board.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any

from coordinator.core.events import now_iso
from coordinator.core.plan import CompiledPlan, CompiledTask
from coordinator.core.roles import RoleDefinition
from templates import render

MAX_METRICS = 12
MAX_ARTIFACTS = 6


def gated_metrics(plan: CompiledPlan, base_id: str) -> set[str]:
    return {c.metric.split(".", 1)[1] for g in plan.gates.values() for c in g.criteria
            if c.metric and c.metric.split(".", 1)[0] == base_id}


def task_view(task: CompiledTask, rec: Mapping[str, Any], plan: CompiledPlan,
               notice: Mapping[str, str] | None = None) -> dict[str, Any]:
    gated = gated_metrics(plan, task.base_id)
    # metrics a gate reads come first, then the rest by name
    metrics = sorted(((k, v) for k, v in (rec.get("metrics") or {}).items()
                      if isinstance(v, int | float | str | bool)), key=lambda kv: (kv[0] not in gated, kv[0]))
    artifacts = rec.get("artifacts") or []
    return {
        "id": task.id, "title": task.title, "status": rec.get("status", "pending"), "run": task.run,
        "needs": task.needs, "blocked_by": task.blocked_by, "reason": rec.get("reason"),
        "error": one_line(rec.get("error")), "accept": [c.describe() for c in task.accept],
        "command": (task.command if isinstance(task.command, str) else shlex.join(task.command))
        if task.command is not None else None,
        "metrics": metrics[:MAX_METRICS], "more_metrics": max(0, len(metrics) - MAX_METRICS),
        "artifacts": artifacts[:MAX_ARTIFACTS], "more_artifacts": max(0, len(artifacts) - MAX_ARTIFACTS),
        "duration_s": rec.get("duration_s"), "attempts": rec.get("attempts"),
        "dispatch": int(rec.get("dispatch") or 0),
        "skipped_run": rec.get("skipped_run", False), "recovered": rec.get("recovered", False),
        "instructions": task.instructions, "params": sorted(task.params.items()),
        "gates": [g for g, after in plan.gate_after.items() if task.id in after],
        "feedback": rec.get("feedback") or [], "notes": rec.get("feedback") or [],
        "review": rec.get("review") if rec.get("status", "pending") != "done" else None,
        "reported": reported_lines(rec.get("notes") or []),
        "notice": notice["text"] if notice and notice.get("status") == rec.get("status", "pending") else None,
    }


MAX_REPORTED = 5
"""Notes a step or driver reported shown per task (one line each, at most REPORTED_CHARS)."""
REPORTED_CHARS = 300


def one_line(text: str | None) -> str | None:
    """The first line of a message, bounded (a log's tail stays in ``coord status --json``, off the board)."""
    if not text:
        return text
    lines = str(text).strip().splitlines() or [""]
    first = lines[0] if len(lines[0]) <= REPORTED_CHARS else lines[0][:REPORTED_CHARS - 1] + "…"
    return first + (" (more in `coord status --json` and the task's log)" if len(lines) > 1 else "")


def reported_lines(notes: list[str]) -> list[str]:
    """What the task's step or agent driver reported, one line each (a board line cannot hold a paragraph)."""
    lines = [" ".join(str(n).split()) for n in notes]
    lines = [x if len(x) <= REPORTED_CHARS else x[:REPORTED_CHARS - 1] + "…" for x in lines if x]
    if len(lines) > MAX_REPORTED:
        lines = [*lines[:MAX_REPORTED], f"(+{len(lines) - MAX_REPORTED} more in `coord status --json`)"]
    return lines


def inputs_of(view: dict[str, Any], tasks_state: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{**a, "task": need} for need in view["needs"]
            for a in (tasks_state.get(need, {}).get("artifacts") or [])[:MAX_ARTIFACTS]]


def execute_now_text(plan: CompiledPlan, role: RoleDefinition, state: Mapping[str, Any],
                     task_id: str) -> str:
    """The EXECUTE_NOW text for one task, whatever else the role has in hand (a CLI agent's prompt)."""
    tasks_state = state.get("tasks", {})
    mine = plan.tasks_of_role(role.name)
    statuses = [tasks_state.get(t.id, {}).get("status", "pending") for t in mine]
    counts = {"total": len(mine), "done": statuses.count("done"), "pending": statuses.count("pending")}
    view = task_view(plan.tasks[task_id], {"status": "running", **tasks_state.get(task_id, {})}, plan)
    view["inputs"] = inputs_of(view, tasks_state)
    run = {"run_id": state.get("run_id", "?"), "plan": plan.name, "profile": plan.profile,
           "phase": "running", "provenance": "", "updated_at": now_iso()}
    return render("execute_now.md.j2", board_name=role.board_name, role=role, run=run, task=view,
                  counts=counts)
