"""What the cli driver reads from a run's files: the stored plan and the latest status snapshot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from coordinator.core.plan import CompiledPlan
from coordinator.core.workspace import Workspace


def load_run_plan(workspace: Path, run_id: str) -> CompiledPlan:
    """The compiled plan the run was started with (``.coord/runs/<run>/plan.json``)."""
    path = Workspace.at(workspace).run_dir(run_id) / "plan.json"
    return CompiledPlan.model_validate(orjson.loads(path.read_bytes()))


def load_run_state(workspace: Path, run_id: str) -> dict[str, Any]:
    """Task records as of coord's last render of this run (empty when it rendered another run)."""
    path = Workspace.at(workspace).status_file
    try:
        snap = orjson.loads(path.read_bytes())
    except (FileNotFoundError, orjson.JSONDecodeError):
        return {"run_id": run_id, "tasks": {}}
    if snap.get("run_id") != run_id:
        return {"run_id": run_id, "tasks": {}}
    return {"run_id": run_id, "tasks": snap.get("tasks") or {}}


def gates_reviewing(plan: CompiledPlan, task_id: str) -> list[str]:
    """Gates whose review covers ``task_id`` (its branch waits for all of them)."""
    return [g for g, after in plan.gate_after.items() if task_id in after]
