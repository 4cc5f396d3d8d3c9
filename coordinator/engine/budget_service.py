"""Services behind `coord costs` and `coord budget`: totals from the ledger, raises and approvals."""

from __future__ import annotations

import json
from typing import Any

from coordinator.core.errors import UsageError
from coordinator.core.llm import format_usd
from coordinator.core.read_only import require_writable
from coordinator.core.run_store import load_run_plan
from coordinator.core.workspace import Workspace
from coordinator.engine.budget import BudgetStatus, RunBudget
from coordinator.engine.ledger import GroupBy, Total
from coordinator.engine.runner import parse_budget
from coordinator.engine.stores import open_ledger
from roles.definitions import roles_for


def open_run_budget(ws: Workspace, run_id: str) -> RunBudget:
    """The budget of a recorded run (plan budget, role limits, ledger)."""
    plan = load_run_plan(ws, run_id)
    return RunBudget(open_ledger(ws), run_id, plan.budget, roles_for(ws, plan))


def cost_totals(ws: Workspace, run_id: str | None, groups: list[GroupBy]) -> dict[str, list[Total]]:
    """Ledger totals per group for one run (``None``: every run)."""
    ledger = open_ledger(ws)
    return {g: ledger.totals(run_id, g) for g in groups}


def cost_calls(ws: Workspace, run_id: str) -> list[dict[str, Any]]:
    """Every recorded call of a run, oldest first, with its ``detail`` decoded."""
    rows = open_ledger(ws).calls(run_id)
    for r in rows:
        try:
            r["detail"] = json.loads(r["detail"]) if r.get("detail") else {}
        except ValueError:
            r["detail"] = {}
    return rows


def change_budget(ws: Workspace, run_id: str, *, usd: float | None, role: str | None, approve: bool = False,
                  absolute: bool = False) -> BudgetStatus:
    """Raise (or set) the run's or a role's limit, or approve spending past it; return the new status."""
    require_writable(ws.state_dir, f"change the budget of run {run_id}")
    budget = open_run_budget(ws, run_id)
    if role is not None and role not in budget.roles:
        raise UsageError(f"run {run_id} has no role {role!r} (roles: {', '.join(sorted(budget.roles))})")
    scope = f"role:{role}" if role else "run"
    if approve:
        budget.ledger.change_budget(run_id, scope, "approve", None, "approved by a person")
    else:
        amount = parse_budget(usd, "the new limit" if absolute else "the amount to add")
        if amount is None:
            raise UsageError("give an amount of USD")
        status = budget.status()
        current = status.run if role is None else status.roles.get(role)  # a role without a limit has no status
        if not absolute and (current is None or current.limit_usd is None):
            what = "run" if role is None else f"role {role!r}"
            command = f"coord budget raise {amount:g} --to" + (f" --role {role}" if role else "")
            raise UsageError(f"the {what} of {run_id} has no budget limit, so there is nothing to raise "
                             f"(a raise would impose a {format_usd(amount)} cap); to set a limit use `{command}`")
        budget.ledger.change_budget(run_id, scope, "set" if absolute else "raise", amount)
    return budget.status()
