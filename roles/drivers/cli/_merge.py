"""Merging an assignment's branch into the base: right after its checks, or once its gates approve."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from coordinator.core.errors import CoordError
from coordinator.core.plan import CompiledPlan
from coordinator.core.ports import PENDING_GATE
from coordinator.core.state import PASSING_GATE
from roles.drivers.cli._run_files import gates_reviewing
from roles.git_worktrees import (
    NotAGitRepository,
    merge_branch,
    push_branch,
    remove_worktree,
)

log = logging.getLogger(__name__)

PENDING = PENDING_GATE
"""``metrics.merge`` of a done task whose branch waits for its gates (gates measure it in a merge
candidate: :func:`roles.git_worktrees.merge_candidate`)."""
WITHHELD_BY = ("rejected", "changes_requested", "skipped")


def trailers(run_id: str, task_id: str, role: str, agent: str) -> str:
    """The trailer block coord puts on every commit it makes for an assignment."""
    return f"Coord-Run: {run_id}\nCoord-Task: {task_id}\nCoord-Role: {role}\nCoord-Agent: {agent}"


def merge_task(workspace: Path, run_id: str, task_id: str, role: str, agent: str,
               metrics: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
    """Merge the task's branch; return updated metrics and an error message (None when merged)."""
    branch, base = str(metrics["branch"]), str(metrics["base_branch"])
    message = f"coord: merge {task_id} ({agent}) into {base}\n\n{trailers(run_id, task_id, role, agent)}"
    if metrics.get("worker_host"):  # the branch came by push from a worker (coord worker --git)
        message += f"\nCoord-Host: {metrics['worker_host']}"
    try:
        result = merge_branch(workspace, branch, base, message)
    except NotAGitRepository as e:
        return {**metrics, "merge": "refused"}, str(e)
    if result.status != "merged":
        return {**metrics, "merge": result.status, "merge_conflicts": len(result.conflicts)}, result.detail
    worktree = metrics.get("worktree")
    if worktree:
        try:
            remove_worktree(workspace, workspace / str(worktree))
        except Exception as e:  # the merge stands; a leftover directory is only clutter
            log.warning("could not remove worktree %s: %s", worktree, e)
    merged = {**metrics, "merge": "merged", "merge_commit": result.commit}
    if metrics.get("pushed") and metrics.get("remote"):  # git workers start from the remote's base: update it
        try:
            push_branch(workspace, str(metrics["remote"]), base)
            merged["base_pushed"] = True
        except CoordError as e:  # the merge stands; the next git worker starts from an older base
            log.warning("merged %s, but pushing %s to %s failed: %s", branch, base, metrics["remote"], e)
            merged["base_pushed"] = False
    return merged, None


def merge_reviewed(workspace: Path, run_id: str, plan: CompiledPlan, tasks: Mapping[str, Any],
                   gates: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Task-record updates for branches whose gates have now decided: merged, withheld or failed."""
    out: dict[str, dict[str, Any]] = {}
    for tid in plan.order:
        rec = tasks.get(tid) or {}
        metrics = rec.get("metrics") or {}
        if rec.get("status") != "done" or metrics.get("merge") != PENDING:
            continue
        decided = {g: (gates.get(g) or {}).get("status", "pending") for g in gates_reviewing(plan, tid)}
        against = [f"gate {g} {s}" for g, s in decided.items() if s in WITHHELD_BY]
        # A branch a git worker pushed waits here even when no gate reviews it (the worker cannot merge).
        ungated_push = not decided and bool(metrics.get("pushed"))
        if against:
            out[tid] = {"metrics": {**metrics, "merge": "withheld"},
                        "notes": [*(rec.get("notes") or []),
                                  f"branch {metrics['branch']} not merged: {'; '.join(against)}"]}
        elif ungated_push or (decided and all(s in PASSING_GATE for s in decided.values())):
            task = plan.tasks[tid]
            new_metrics, error = merge_task(workspace, run_id, tid, task.role, str(rec.get("agent", "?")),
                                            metrics)
            out[tid] = {"metrics": new_metrics}
            if error:
                out[tid].update(status="failed", error=error)
    return out
