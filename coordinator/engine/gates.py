"""Gate steps the graph nodes take: review a due gate, close an override window,
apply a person's decision. Each returns the state changes and emits its events;
the nodes decide when to call them (never before an ``interrupt()``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from coordinator.core.events import read_events
from coordinator.core.state import DecisionRecord, DeferredItem, GateRecord, TaskRecord
from coordinator.engine.context import RunContext
from reviews.criteria import metric_lookup, task_text_reader
from reviews.gate import (
    AUTO,
    Settlement,
    apply_decision,
    decides_alone,
    review_gate,
    settle,
)
from reviews.gitinfo import workspace_commit
from reviews.llm_review import ModelReviewer

log = logging.getLogger(__name__)


@dataclass
class Changes:
    """State updates gathered during one node run."""

    tasks: dict[str, TaskRecord] = field(default_factory=dict)
    gates: dict[str, GateRecord] = field(default_factory=dict)
    deferred: dict[str, DeferredItem] = field(default_factory=dict)

    def gate(self, gid: str, update: GateRecord) -> None:
        self.gates[gid] = {**self.gates.get(gid, {}), **update}

    def task(self, tid: str, update: TaskRecord) -> None:
        self.tasks[tid] = {**self.tasks.get(tid, {}), **update}

    def as_update(self) -> dict[str, Any]:
        return {"tasks": self.tasks, "gates": self.gates, "deferred": self.deferred}


def review(ctx: RunContext, gid: str, tasks_state: dict[str, Any], gate_rec: GateRecord, out: Changes) -> None:
    """Measure a due gate; settle it when its policy lets coord decide alone."""
    spec = ctx.plan.gates[gid]
    attempt = int(gate_rec.get("attempt") or 1)
    lookup = metric_lookup({t: r.get("metrics") or {} for t, r in tasks_state.items()}, ctx.expansions)
    reviewer = ModelReviewer(ctx.ws.root, ctx.run_id, ctx.plan, gid, attempt, ctx.roles[spec.reviewer],
                             tasks_state, budget=ctx.budget)
    rec = review_gate(spec, lookup, ctx.ws.root, attempt, grading=ctx.plan.grading,
                      task_text=task_text_reader(ctx.ws.root, tasks_state, ctx.expansions),
                      commit=workspace_commit(ctx.ws.root), history=list(gate_rec.get("history") or []),
                      reviewer=reviewer)
    settlement = settle(spec, rec, str(rec["verdict"]), by=AUTO) if decides_alone(spec) else None
    status = settlement.update.get("status") if settlement else rec["status"]
    mr = rec.get("model_review")
    opinion = {} if mr is None or mr["status"] == "not_configured" else {"model_review": {
        "status": mr["status"], "provider": mr["provider"], "model": mr["model"], "findings": len(mr["findings"]),
        "recommendation": mr["recommendation"], "cost_usd": mr["cost_usd"], "reused": mr["reused"]}}
    ctx.events.emit("gate_decided", gate=gid, status=status, verdict=rec["verdict"],
                    score=rec["score"], grade=rec["grade"], attempt=rec["attempt"], policy=spec.policy, **opinion)
    if settlement is None:
        out.gate(gid, rec)
        return
    _apply(ctx, gid, rec, settlement, out)


def close_window(ctx: RunContext, gid: str, rec: GateRecord, out: Changes) -> None:
    """The override window of an ``auto_then_human`` gate closed: the automatic verdict stands."""
    spec = ctx.plan.gates[gid]
    settlement = settle(spec, rec, str(rec.get("verdict")), by=f"{AUTO}; override window closed")
    ctx.events.emit("gate_decided", gate=gid, status=settlement.update.get("status"), verdict=rec.get("verdict"),
                    score=rec.get("score"), grade=rec.get("grade"), window_closed=True)
    _apply(ctx, gid, {**rec, **settlement.update}, settlement, out)


def decide(ctx: RunContext, gid: str, rec: GateRecord, decision: DecisionRecord, out: Changes) -> bool:
    """Apply a person's decision to a waiting gate; False (and nothing changes) if it no longer applies."""
    if rec.get("status") != "waiting":
        log.warning("decision %s on gate %s ignored: the gate is %s", decision["id"], gid, rec.get("status"))
        ctx.events.emit("decision_ignored", gate=gid, decision=decision["id"], status=rec.get("status"))
        return False
    settlement = apply_decision(ctx.plan.gates[gid], rec, decision, ctx.plan.grading)
    if not _logged(ctx, decision["id"]):  # the node may re-run after a kill; the event is written once
        ctx.events.emit("gate_decision", gate=gid, decision=decision["id"], action=decision["action"],
                        by=decision["by"], at=decision["at"], note=decision["note"], grade=decision["grade"],
                        status=settlement.update.get("status"))
    _apply(ctx, gid, {**rec, **settlement.update}, settlement, out)
    return True


def _logged(ctx: RunContext, decision_id: str) -> bool:
    return any(e.get("kind") == "gate_decision" and e.get("decision") == decision_id
               for e in read_events(ctx.ws.events, ctx.run_id))


def _apply(ctx: RunContext, gid: str, rec: GateRecord, settlement: Settlement, out: Changes) -> None:
    out.gate(gid, rec)
    out.gate(gid, settlement.update)
    if settlement.retry:
        for tid in ctx.plan.gate_after[gid]:
            out.task(tid, TaskRecord(status="pending", feedback=settlement.feedback, error=None, reason=None,
                                     metrics={}, artifacts=[], notes=[]))
        ctx.events.emit("gate_retry", gate=gid, attempt=settlement.update.get("attempt"),
                        tasks=ctx.plan.gate_after[gid], findings=len(settlement.feedback))
        return
    final_criteria = settlement.update.get("criteria", rec.get("criteria")) or []
    for crit, check in zip(final_criteria, ctx.plan.gates[gid].criteria, strict=False):
        if not crit.get("deferred") or not crit.get("defer_text"):
            continue
        out.deferred[f"{gid}:{crit['name']}"] = DeferredItem(
            text=str(crit["defer_text"]), gate=gid, criterion=crit["name"],
            detail=f"{crit['label']}: measured {crit['measured']}", resolved_by=list(check.resolved_by),
            status="open", resolved_in=None)
        ctx.events.emit("deferred_opened", gate=gid, item=crit["defer_text"])
