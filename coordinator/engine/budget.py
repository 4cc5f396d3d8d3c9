"""Budgets per run and per role, measured from the ledger.

The limit of a run is the plan's ``budget.usd`` (or ``coord run --budget``) plus every
``coord budget raise``; a role's is its binding's ``budget_usd`` plus raises scoped to
it. Alerts fire when spend crosses the plan's thresholds (25/50/80 % by default). At
100 % coord starts no new *paid* work (LLM-driver and CLI-driver assignments, generation
with a paid provider, OpenAI fine-tuning): such tasks wait, held by the budget, and the
run ends with exit code 3 until a person raises the budget or approves the overrun.
Work already running finishes. Steps that know their cost up front (generate,
finetune) check their estimate against what is left and refuse to start past it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from coordinator.core.errors import BudgetExceeded
from coordinator.core.llm import CallRecord
from coordinator.core.plan import Budget, CompiledPlan, CompiledTask
from coordinator.core.ports import driver_of, driver_traits
from coordinator.core.roles import RoleDefinition
from coordinator.core.state import BudgetView, ScopeView, TaskRecord
from coordinator.core.step import resolve_step
from coordinator.engine.ledger import Ledger

log = logging.getLogger(__name__)

HOLD = "budget"
"""``held_by`` value of a task the budget is holding."""
FREE_PROVIDERS = frozenset({None, "offline"})
"""LLM providers that cost nothing (an llm-driven role with one of them is not paid work)."""


@dataclass(frozen=True)
class ScopeStatus:
    """Spend against the limit of the run or of one role."""

    scope: str
    limit_usd: float | None
    spent_usd: float
    unknown_calls: int
    approved: bool = False
    """A person approved spending past the limit."""

    @property
    def pct(self) -> float | None:
        """Spent / limit (None without a limit)."""
        if self.limit_usd is None:
            return None
        return 1.0 if self.limit_usd == 0 else self.spent_usd / self.limit_usd

    @property
    def exhausted(self) -> bool:
        """True at or past 100 % of a limit nobody approved past."""
        return not self.approved and self.pct is not None and self.pct >= 1.0

    @property
    def remaining_usd(self) -> float | None:
        """What is left (None when unlimited or approved)."""
        if self.limit_usd is None or self.approved:
            return None
        return max(0.0, self.limit_usd - self.spent_usd)

    def describe(self) -> str:
        """``$12.40 of $50.00 (25%)``, with unknown-cost calls noted."""
        text = f"${self.spent_usd:.2f}"
        if self.limit_usd is not None:
            text += f" of ${self.limit_usd:.2f} ({100 * (self.pct or 0):.0f}%)"
        if self.approved:
            text += ", overrun approved by a person"
        if self.unknown_calls:
            text += f", plus {self.unknown_calls} call(s) of unknown cost"
        return text


@dataclass(frozen=True)
class BudgetStatus:
    """The budget picture of a run, as stored in state and shown on boards."""

    run: ScopeStatus
    roles: dict[str, ScopeStatus]
    thresholds: tuple[float, ...]
    alerts: tuple[float, ...] = field(default=())
    """Thresholds the run's spend has crossed."""

    def to_state(self) -> BudgetView:
        """Plain-dict form for the checkpoint, boards and ``coord status``."""
        def scope(s: ScopeStatus) -> ScopeView:
            return ScopeView(limit_usd=s.limit_usd, spent_usd=round(s.spent_usd, 6), unknown_calls=s.unknown_calls,
                             pct=None if s.pct is None else round(s.pct, 4), approved=s.approved,
                             exhausted=s.exhausted, text=s.describe())
        return BudgetView(run=scope(self.run), roles={k: scope(v) for k, v in self.roles.items()},
                          thresholds=list(self.thresholds), alerts=list(self.alerts),
                          exhausted=self.run.exhausted or any(r.exhausted for r in self.roles.values()))


class RunBudget:
    """The budget of one run; reads the ledger every time so raises from another process count at once."""

    def __init__(self, ledger: Ledger, run_id: str, budget: Budget, roles: dict[str, RoleDefinition]) -> None:
        self.ledger = ledger
        self.run_id = run_id
        self.budget = budget
        self.roles = roles
        self._released_at: int | None = None
        """Budget changes seen at the last release; held work is retried once per change (and per process)."""

    def take_release(self) -> bool:
        """True once per process start and once per new budget change: the moments held work may retry.

        A step that refused its estimate would otherwise be released and refused again in a loop.
        """
        n = len(self.ledger.budget_changes(self.run_id))
        if self._released_at is not None and n <= self._released_at:
            return False
        self._released_at = n
        return True

    def _scope(self, scope: str, base: float | None, role: str | None) -> ScopeStatus:
        limit, approved = base, False
        for ch in self.ledger.budget_changes(self.run_id):
            if ch.scope != scope:
                continue
            if ch.kind == "approve":
                approved = True
            elif ch.kind == "set":
                limit, approved = ch.usd, False
            elif ch.kind == "raise" and ch.usd is not None:
                limit, approved = (limit or 0.0) + ch.usd, False
        spent, unknown = self.ledger.spent(self.run_id, role)
        return ScopeStatus(scope, limit, spent, unknown, approved)

    def status(self) -> BudgetStatus:
        """Spend, limits and crossed alert thresholds, now."""
        run = self._scope("run", self.budget.usd, None)
        roles = {name: self._scope(f"role:{name}", r.budget_usd, name) for name, r in self.roles.items()
                 if r.budget_usd is not None or any(c.scope == f"role:{name}"
                                                   for c in self.ledger.budget_changes(self.run_id))}
        thresholds = tuple(sorted(self.budget.alerts))
        crossed = tuple(t for t in thresholds if run.pct is not None and run.pct >= t)
        return BudgetStatus(run, roles, thresholds, crossed)

    def exhausted_for(self, role: str | None, status: BudgetStatus | None = None) -> str | None:
        """Why paid work of ``role`` may not start now, or None when it may."""
        st = status or self.status()
        if st.run.exhausted:
            return (f"budget exhausted: run spent {st.run.describe()}; raise it with `coord budget raise USD` "
                    "(or `coord budget approve`) and resume")
        rs = st.roles.get(role or "")
        if rs is not None and rs.exhausted:
            return (f"budget of role {role!r} exhausted: {rs.describe()}; raise it with "
                    f"`coord budget raise USD --role {role}` and resume")
        return None

    def check(self, role: str | None, estimate_usd: float | None, what: str) -> None:
        """Refuse (:class:`BudgetExceeded`) when ``estimate_usd`` does not fit what is left."""
        st = self.status()
        reason = self.exhausted_for(role, st)
        if reason:
            raise BudgetExceeded(f"{what} not started: {reason}")
        if estimate_usd is None:
            log.warning("%s: cost cannot be estimated (price unknown); starting without a budget check", what)
            return
        for scope in (st.run, st.roles.get(role or "")):
            if scope is None or scope.remaining_usd is None:
                continue
            if estimate_usd > scope.remaining_usd:
                name = "the run" if scope.scope == "run" else f"role {role!r}"
                raise BudgetExceeded(
                    f"{what} not started: estimated ${estimate_usd:.2f} exceeds what is left of the budget of "
                    f"{name} (${scope.remaining_usd:.2f} of ${scope.limit_usd:.2f}); raise it with "
                    f"`coord budget raise USD` and resume")

    def for_task(self, task_id: str, role: str, agent: str) -> TaskSpend:
        """A recorder bound to one task (what drivers and steps receive)."""
        return TaskSpend(self, task_id, role, agent)


@dataclass
class TaskSpend:
    """Records a task's calls in the ledger and checks estimates against the budget."""

    budget: RunBudget
    task_id: str
    role: str
    agent: str
    spent_usd: float = 0.0
    """Known USD this task recorded through this object."""

    def record(self, call: CallRecord) -> None:
        """Store one call under this run, task, role and agent."""
        stored = self.budget.ledger.record(call, run_id=self.budget.run_id, task_id=self.task_id, role=self.role,
                                           agent=self.agent)
        if stored and call.cost.usd is not None:
            self.spent_usd += call.cost.usd

    def check(self, estimate_usd: float | None, what: str) -> None:
        """Raise :class:`BudgetExceeded` when ``estimate_usd`` does not fit this role's or the run's budget."""
        self.budget.check(self.role, estimate_usd, what)


def is_paid(task: CompiledTask, role: RoleDefinition, root: Path | None = None) -> bool:
    """True when running ``task`` may cost money."""
    if task.run is not None:
        return resolve_step(task.run, root).is_paid(task.params)
    traits = driver_traits(driver_of(task, role))
    return traits.paid or (traits.paid_unless_free_provider and role.provider not in FREE_PROVIDERS)


def release_held(budget: RunBudget, plan: CompiledPlan, tasks: Mapping[str, TaskRecord]) -> dict[str, TaskRecord]:
    """Budget-held tasks whose budget now allows them, back to pending."""
    held = [t for t, r in tasks.items() if r.get("status") == "waiting" and r.get("held_by") == HOLD]
    if not held or not budget.take_release():
        return {}
    st = budget.status()
    return {t: TaskRecord(status="pending", held_by=None, reason=None, error=None)
            for t in held if t in plan.tasks and budget.exhausted_for(plan.tasks[t].role, st) is None}


def hold_paid(budget: RunBudget, plan: CompiledPlan, roles: dict[str, RoleDefinition],
              starting: list[str], root: Path | None = None) -> dict[str, TaskRecord]:
    """Tasks about to start that are paid while their budget is exhausted → waiting, held by the budget."""
    paid = [t for t in starting if is_paid(plan.tasks[t], roles[plan.tasks[t].role], root)]
    if not paid:
        return {}
    st = budget.status()
    out: dict[str, TaskRecord] = {}
    for tid in paid:
        reason = budget.exhausted_for(plan.tasks[tid].role, st)
        if reason:
            out[tid] = TaskRecord(status="waiting", held_by=HOLD, reason=reason)
    return out
