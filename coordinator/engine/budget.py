"""Budgets per run and per role, measured from the ledger.

The limit of a run is the plan's ``budget.usd`` (or ``coord run --budget``) plus every
``coord budget raise``; a role's is its binding's ``budget_usd`` plus raises scoped to
it. Alerts fire when spend crosses the plan's thresholds (25/50/80 % by default). At
100 % coord starts no new *paid* work (LLM-driver and CLI-driver assignments, generation
with a paid provider, OpenAI fine-tuning): such tasks wait, held by the budget, and the
run ends with exit code 3 until a person raises the budget or approves the overrun.
Work already running finishes. Steps that know their cost up front (generate,
finetune) check their estimate against what is left and refuse to start past it.

Every LLM call is priced before it is sent: its worst case (the prompt's upper estimate and
``max_tokens`` of output) is *reserved* — stored in the ledger as a pending call, which
counts against the limits until the call is settled with what it really cost — and a call
whose worst case does not fit what is left is not sent (:meth:`TaskSpend.reserve`). So LLM
calls never take spend past a limit; only costs known after the fact (a CLI's reported
dollars, a step's recorded cost) can. An alert fires once, when settled spend first
crosses its threshold.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coordinator.core.errors import BudgetExceeded
from coordinator.core.llm import CallRecord, format_usd
from coordinator.core.plan import Budget, CompiledPlan, CompiledTask
from coordinator.core.ports import driver_of, driver_traits
from coordinator.core.roles import RoleDefinition
from coordinator.core.state import BudgetView, ScopeView, TaskRecord
from coordinator.core.step import resolve_step
from coordinator.engine.ledger import BudgetChange, Ledger, Spend

log = logging.getLogger(__name__)

HOLD = "budget"
"""``held_by`` value of a task the budget is holding."""
FREE_PROVIDERS = frozenset({None, "offline"})
"""LLM providers that cost nothing (an llm-driven role with one of them is not paid work)."""
AlertFn = Callable[[float, "ScopeStatus"], None]
"""Told when the run's settled spend first crosses an alert threshold (the threshold, the run's status)."""


@dataclass(frozen=True)
class ScopeStatus:
    """Spend against the limit of the run or of one role."""

    scope: str
    limit_usd: float | None
    spent_usd: float
    unknown_calls: int
    approved: bool = False
    """A person approved spending past the limit."""
    pending_usd: float = 0.0
    """Worst case of the calls stored but not settled: in flight, or cut off by a kill."""
    pending_calls: int = 0

    @classmethod
    def of(cls, scope: str, limit: float | None, spend: Spend, approved: bool = False) -> ScopeStatus:
        """The status of a scope from its limit and the ledger's spend."""
        return cls(scope, limit, spend.usd, spend.unknown, approved, spend.pending_usd, spend.pending)

    @property
    def pct(self) -> float | None:
        """Settled spend / limit (None without a limit)."""
        if self.limit_usd is None:
            return None
        return 1.0 if self.limit_usd == 0 else self.spent_usd / self.limit_usd

    @property
    def committed_usd(self) -> float:
        """Settled spend plus the worst case of pending calls: what the limit is checked against."""
        return self.spent_usd + self.pending_usd

    @property
    def exhausted(self) -> bool:
        """True at or past 100 % of a limit nobody approved past (pending calls at their worst case)."""
        if self.approved or self.limit_usd is None:
            return False
        return self.limit_usd == 0 or self.committed_usd >= self.limit_usd

    @property
    def remaining_usd(self) -> float | None:
        """What is left after settled and pending calls (None when unlimited or approved)."""
        if self.limit_usd is None or self.approved:
            return None
        return max(0.0, self.limit_usd - self.committed_usd)

    def describe(self) -> str:
        """``$12.40 of $50.00 (25%)``, with pending and unknown-cost calls noted."""
        text = format_usd(self.spent_usd)
        if self.limit_usd is not None:
            text += f" of {format_usd(self.limit_usd)} ({100 * (self.pct or 0):.0f}%)"
        if self.pending_calls:
            text += f", plus {self.pending_calls} pending call(s) counted at up to {format_usd(self.pending_usd)}"
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
            return ScopeView(limit_usd=s.limit_usd, spent_usd=round(s.spent_usd, 8), unknown_calls=s.unknown_calls,
                             pct=None if s.pct is None else round(s.pct, 4), approved=s.approved,
                             exhausted=s.exhausted, text=s.describe())
        return BudgetView(run=scope(self.run), roles={k: scope(v) for k, v in self.roles.items()},
                          thresholds=list(self.thresholds), alerts=list(self.alerts),
                          exhausted=self.run.exhausted or any(r.exhausted for r in self.roles.values()))


class RunBudget:
    """The budget of one run; reads the ledger every time so raises from another process count at once."""

    def __init__(self, ledger: Ledger, run_id: str, budget: Budget, roles: dict[str, RoleDefinition], *,
                 on_alert: AlertFn | None = None, on_spend: Callable[[], None] | None = None) -> None:
        self.ledger = ledger
        self.run_id = run_id
        self.budget = budget
        self.roles = roles
        self.on_alert = on_alert
        """Told the moment settled spend crosses an alert threshold (the run's event log)."""
        self.on_spend = on_spend
        """Told whenever a call is recorded or settled (the run re-reads its budget view)."""
        self._released_at: int | None = None
        """Budget changes seen at the last release; held work is retried once per change (and per process)."""
        self._cond = threading.Condition()
        """Guards :attr:`_inflight`: checking a call's worst case and storing it is one step for every thread."""
        self._inflight: dict[int, tuple[str, float]] = {}
        """Pending rows this process stored and has not settled yet: row id → (role, worst case)."""
        self._alerted: set[float] = set()
        self._unpriced: set[str] = set()

    def take_release(self) -> bool:
        """True once per process start and once per new budget change: the moments held work may retry.

        A step that refused its estimate would otherwise be released and refused again in a loop.
        """
        n = len(self.ledger.budget_changes(self.run_id))
        if self._released_at is not None and n <= self._released_at:
            return False
        self._released_at = n
        return True

    def _scope(self, scope: str, base: float | None, role: str | None, changes: list[BudgetChange],
               in_flight: bool) -> ScopeStatus:
        limit, approved = base, False
        for ch in changes:
            if ch.scope != scope:
                continue
            if ch.kind == "approve":
                approved = True
            elif ch.kind == "set":
                limit, approved = ch.usd, False
            elif ch.kind == "raise" and ch.usd is not None:
                limit, approved = (limit or 0.0) + ch.usd, False
        spend = self.ledger.spent(self.run_id, role)
        if not in_flight:  # leave out this process's calls still under way: they settle soon
            mine = [usd for r, usd in self._inflight.values() if role is None or r == role]
            spend = Spend(spend.usd, spend.unknown, max(0.0, spend.pending_usd - sum(mine)),
                          max(0, spend.pending - len(mine)))
        return ScopeStatus.of(scope, limit, spend, approved)

    def status(self, *, in_flight: bool = False) -> BudgetStatus:
        """Spend, limits and crossed alert thresholds, now.

        Pending calls left by an earlier process (killed mid-call) count at their worst case;
        this process's calls still under way count only with ``in_flight`` (when a new call is priced).
        """
        changes = self.ledger.budget_changes(self.run_id)
        with self._cond:
            run = self._scope("run", self.budget.usd, None, changes, in_flight)
            roles = {name: self._scope(f"role:{name}", r.budget_usd, name, changes, in_flight)
                     for name, r in self.roles.items()
                     if r.budget_usd is not None or any(c.scope == f"role:{name}" for c in changes)}
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
        self._check(role, estimate_usd, what, self.status())

    def _check(self, role: str | None, estimate_usd: float | None, what: str, st: BudgetStatus) -> None:
        reason = self.exhausted_for(role, st)
        if reason:
            raise BudgetExceeded(f"{what} not started: {reason}")
        if estimate_usd is None:
            if what not in self._unpriced:  # once per kind of call, not for each of a thousand examples
                self._unpriced.add(what)
                log.warning("%s: cost cannot be estimated (price unknown); starting without a budget check", what)
            return
        for scope in (st.run, st.roles.get(role or "")):
            if scope is None or scope.remaining_usd is None:
                continue
            if estimate_usd > scope.remaining_usd:
                name = "the run" if scope.scope == "run" else f"role {role!r}"
                raise BudgetExceeded(
                    f"{what} not started: estimated {format_usd(estimate_usd)} exceeds what is left of the budget "
                    f"of {name} ({format_usd(scope.remaining_usd)} of "
                    f"{format_usd(scope.limit_usd)}); raise it with `coord budget raise USD"
                    f"{'' if scope.scope == 'run' else f' --role {role}'}` and resume")

    def reserve(self, call: CallRecord, what: str, *, task_id: str, role: str, agent: str) -> int:
        """Check a call's worst case (``call.cost``) and store it as pending, in one step; the row's id.

        When it fits only once calls already under way settle (their worst case is reserved, their
        real cost is usually far less), it waits for them; with none under way it is refused.
        """
        with self._cond:
            while True:
                try:
                    self._check(role, call.cost.usd, what, self.status(in_flight=True))
                    break
                except BudgetExceeded:
                    if not self._inflight:
                        raise
                    self._cond.wait(timeout=1.0)  # a settle wakes it; the timeout sees a raise from elsewhere
            row = self.ledger.record_pending(call, run_id=self.run_id, task_id=task_id, role=role, agent=agent)
            self._inflight[row] = (role, call.cost.usd or 0.0)
            return row

    def settle(self, row_id: int, call: CallRecord) -> None:
        """Replace a pending row with what the call really used, and wake calls waiting for room."""
        with self._cond:
            self.ledger.settle(row_id, call)
            self._inflight.pop(row_id, None)
            self._cond.notify_all()

    def alert_if_crossed(self) -> None:
        """Tell :attr:`on_alert` about each threshold settled spend has newly crossed (once each)."""
        if self.on_alert is None:
            return
        st = self.status()
        with self._cond:
            new = [t for t in st.alerts if t not in self._alerted]
            self._alerted.update(new)
        for threshold in new:
            self.on_alert(threshold, st.run)

    def for_task(self, task_id: str, role: str, agent: str) -> TaskSpend:
        """A recorder bound to one task (what drivers and steps receive)."""
        return TaskSpend(self, task_id, role, agent)


@dataclass
class _Pending:
    """A call of one task stored as pending; :meth:`settle` fills in what it really used."""

    spend: TaskSpend
    row_id: int

    def settle(self, call: CallRecord) -> None:
        """Replace the pending row with the call's outcome."""
        self.spend.budget.settle(self.row_id, call)
        self.spend.counted(call)


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
        if stored:
            self.counted(call)

    def reserve(self, call: CallRecord, what: str) -> _Pending:
        """Store a call about to be sent at its worst case (``call.cost``), refusing it
        (:class:`BudgetExceeded`) when that does not fit this role's or the run's budget."""
        row = self.budget.reserve(call, what, task_id=self.task_id, role=self.role, agent=self.agent)
        return _Pending(self, row)

    def counted(self, call: CallRecord) -> None:
        """A call was stored: add its cost to this task's, tell the run, and fire the alerts it crossed."""
        if call.cost.usd is not None:
            self.spent_usd += call.cost.usd
        if self.budget.on_spend is not None:
            self.budget.on_spend()
        self.budget.alert_if_crossed()

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
    fresh = budget.take_release()  # asked at every step, so a hold made in this process waits for a change
    held = [t for t, r in tasks.items() if r.get("status") == "waiting" and r.get("held_by") == HOLD]
    if not held or not fresh:
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


def with_budget(phase: str, problems: list[str], state: Mapping[str, Any]) -> tuple[str, list[str]]:
    """A run's phase and problems once its budget is counted: while the budget holds paid work, or the
    run spent past a limit nobody approved, it waits on a person (exit code 3), never "finished"."""
    budget = state.get("budget")
    held = [t for t, r in (state.get("tasks") or {}).items()
            if r.get("status") == "waiting" and r.get("held_by") == HOLD]
    skipped = [f"gate {g}: the reviewer model was not called: {mr['reason']}"
               for g, rec in (state.get("gates") or {}).items()
               if (mr := rec.get("model_review")) and mr.get("status") == "skipped"]
    if budget is None or not (budget["exhausted"] or held):
        return phase, [*problems, *skipped]
    # the scope whose limit is passed: the run's, else a role's (then the raise names that role)
    roles_over = [name for name, r in (budget.get("roles") or {}).items() if r.get("exhausted")]
    if budget["run"].get("exhausted") or not roles_over:
        what, flag = f"budget: {budget['run']['text']}", ""
    else:
        name = roles_over[0]
        what, flag = f"budget of role {name}: {budget['roles'][name]['text']}", f" --role {name}"
    how = f"`coord budget raise USD{flag}` (or `coord budget approve{flag}`) and `coord resume`"
    if budget["exhausted"] and held:
        line = f"{what}; paid work is paused ({', '.join(held)}) until {how}"
    elif held:
        line = (f"budget: {budget['run']['text']}; held because the next paid call may cost more than is left: "
                f"{', '.join(held)}; continue with {how}")
    else:
        line = f"{what}; the limit was passed and nobody approved the overrun: {how}"
    return ("waiting" if phase in ("finished", "waiting") else phase), [line, *problems, *skipped]
