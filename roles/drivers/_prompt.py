"""The prompt an agent gets: the task's EXECUTE_NOW content, rendered from the same template as the board."""

from __future__ import annotations

from typing import Any

import orjson

from coordinator.plan import CompiledTask
from roles.drivers.base import DriverContext
from templates import render

MAX_INPUTS = 12


def _read_json(path: Any) -> dict[str, Any]:
    try:
        data = orjson.loads(path.read_bytes())
    except (FileNotFoundError, orjson.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def execute_now_prompt(task: CompiledTask, ctx: DriverContext) -> str:
    """EXECUTE_NOW text for ``task``: instructions, upstream inputs, acceptance checks, review feedback."""
    state_dir = ctx.workspace / ".coord"
    status = _read_json(state_dir / "status.json")
    plan = _read_json(state_dir / "runs" / ctx.run_id / "plan.json")
    tasks = status.get("tasks") or {}
    inputs = [{**a, "task": need} for need in task.needs
              for a in ((tasks.get(need) or {}).get("artifacts") or [])[:MAX_INPUTS]]
    feedback = list(ctx.feedback) or list((tasks.get(task.id) or {}).get("feedback") or [])
    gates = [g for g, after in (plan.get("gate_after") or {}).items() if task.id in after]
    view = {"id": task.id, "title": task.title, "status": "running", "instructions": task.instructions,
            "run": task.run, "params": sorted(task.params.items()), "inputs": inputs,
            "accept": [c.describe() for c in task.accept], "gates": gates, "feedback": feedback}
    run = {"run_id": ctx.run_id, "plan": plan.get("name", "?")}
    return render("execute_now.md.j2", board_name=ctx.role.board_name, role=ctx.role, run=run, task=view,
                  counts={"done": 0, "total": 1, "pending": 0})
