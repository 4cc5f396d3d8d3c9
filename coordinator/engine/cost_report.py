"""``reports/cost_dashboard.md``: spend per role, agent, task and model from the ledger, budget, fine-tune estimates."""

from __future__ import annotations

from typing import Any

from coordinator.core.events import now_iso
from coordinator.core.io import atomic_write_text
from coordinator.core.workspace import Workspace
from coordinator.engine.ledger import GroupBy, Ledger, Total
from templates import render


def _finetune_rows(tasks: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for tid, t in tasks.items():
        m = t.get("metrics") or {}
        if tid.startswith("finetune") and "training_tokens" in m:
            rows.append({"task": tid, "examples": m.get("examples"), "tokens": m.get("training_tokens"),
                         "cost": m.get("est_cost_usd"), "dry_run": m.get("dry_run")})
    return rows


def render_cost_dashboard(ws: Workspace, ledger: Ledger, run_id: str, plan: str,
                          state: dict[str, Any]) -> str:
    """Write the dashboard for ``run_id`` atomically; return its workspace-relative path."""
    bys: tuple[GroupBy, ...] = ("role", "agent", "task", "model")
    groups = [(by, ledger.totals(run_id, by)) for by in bys]
    rows = groups[0][1]
    total = Total("all", sum(r.calls for r in rows), sum(r.tokens_in for r in rows),
                  sum(r.tokens_out for r in rows), sum(r.tokens_cached for r in rows),
                  sum(r.usd for r in rows), sum(r.unknown for r in rows), sum(r.tokens_cache_write for r in rows),
                  sum(r.pending for r in rows), sum(r.pending_usd for r in rows))
    finetune = _finetune_rows(state.get("tasks", {}))
    est = [r["cost"] for r in finetune if isinstance(r["cost"], int | float)]
    text = render("cost_dashboard.md.j2", plan=plan, run_id=run_id, updated_at=now_iso(),
                  budget=state.get("budget"), total=total, flags=ledger.flags(run_id), groups=groups,
                  finetune=finetune, est_finetune_cost=sum(est) if est else None,
                  unknown_cost=any(r["cost"] is None for r in finetune))
    path = ws.reports / "cost_dashboard.md"
    atomic_write_text(path, text)
    return path.relative_to(ws.root).as_posix()
