"""Which gates review a cli task (its branch waits for all of them)."""

from __future__ import annotations

from coordinator.core.plan import CompiledPlan


def gates_reviewing(plan: CompiledPlan, task_id: str) -> list[str]:
    """Gates whose review covers ``task_id`` (its branch waits for all of them)."""
    return [g for g, after in plan.gate_after.items() if task_id in after]
