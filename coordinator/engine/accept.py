"""A task's accept checks, measured on a result: one implementation for every way a task gets done.

The task pool runs them after a driver reports ``done``; an interactive session's report
(:mod:`coordinator.engine.task_claims`) is measured by the same function, so a result a person's
agent reports through ``coord mcp`` is judged exactly like one a headless driver returned.
"""

from __future__ import annotations

from pathlib import Path

from coordinator.core.plan import CompiledTask
from coordinator.core.ports import TaskOutcome
from reviews.criteria import evaluate_all, metric_lookup, task_text_reader


def accept_failures(root: Path, task: CompiledTask, outcome: TaskOutcome) -> list[str]:
    """Measure ``task``'s accept checks against ``outcome`` in the workspace at ``root``; the failures, each
    with what was measured (empty when every check passes, or the task has none)."""
    if not task.accept:
        return []
    lookup = metric_lookup({task.id: outcome.metrics, task.base_id: outcome.metrics}, {})
    record = {"notes": outcome.notes, "artifacts": outcome.artifacts}
    failures = []
    for res in evaluate_all(task.accept, lookup, root, deferrable=False,
                            task_text=task_text_reader(root, {task.id: record, task.base_id: record}, {})):
        if not res["passed"]:
            failures.append(f"{res['label']} (measured {res['measured']!r}"
                            + (f"; {res['detail']}" if res["detail"] else "") + ")")
    return failures
