"""Gate steps the graph nodes take: review a due gate, close an override window,
apply a person's decision. Each returns the state changes and emits its events;
the nodes decide when to call them (never before an ``interrupt()``).

Where a gate measures. Metric criteria read task metrics, wherever the work is.
File, command and claims criteria read files: in the workspace, unless the gate
reviews work still on a branch — a done task of a driver that works in a git
worktree (``DriverTraits.worktree``) whose branch waits for its gates
(``metrics.merge == "pending_gate"``). Then they are measured in a *merge
candidate*: a temporary detached worktree at the base branch's head with every
such branch the gate reviews merged in (plan order), and the files this run's
other tasks wrote in the workspace (their artifacts, often git-ignored data)
linked in. One branch or several, the gate sees what approving it would land.
A branch that does not merge cleanly is left out and named in the findings (so
a retry hands that to the agent); if no candidate can be built at all the
criteria fall back to the workspace, also with a finding. The candidate is
removed once measured.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coordinator.core.errors import CoordError
from coordinator.core.events import now_iso, read_events
from coordinator.core.plan import Check, GateSpec
from coordinator.core.ports import PENDING_GATE, driver_traits
from coordinator.core.state import (
    DecisionRecord,
    DeferredItem,
    GateRecord,
    Remeasurement,
    TaskRecord,
)
from coordinator.engine.context import RunContext
from coordinator.engine.schedule import reopen_set
from reviews.criteria import evaluate, metric_lookup, task_text_reader
from reviews.figures import criterion_line, measured_phrase
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


@dataclass(frozen=True)
class MeasuredTree:
    """Where a gate's file, command and claims criteria are measured."""

    root: Path
    """The workspace, or the workspace's place in a merge candidate."""
    where: str | None = None
    """What ``root`` is when it is not the workspace (for the record and the event)."""
    findings: list[str] = field(default_factory=list)
    """Branches left out of the candidate, or why there is none."""


def pending_branches(gid: str, ctx: RunContext, tasks_state: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """(task id, metrics) of the reviewed tasks whose work is on a branch waiting for its gates."""
    out = []
    for tid in ctx.plan.gate_after[gid]:
        rec = tasks_state.get(tid) or {}
        metrics = rec.get("metrics") or {}
        if rec.get("status") == "done" and driver_traits(rec.get("driver")).worktree \
                and metrics.get("merge") == PENDING_GATE and metrics.get("branch"):
            out.append((tid, metrics))
    return out


def _reads_files(spec: GateSpec) -> bool:
    return any(c.file is not None or c.command is not None or c.claims is not None for c in spec.criteria)


def _workspace_files(tasks_state: Mapping[str, Any]) -> list[str]:
    """What this run's tasks wrote in the workspace itself (not on a branch of their own)."""
    return [str(a["path"]) for rec in tasks_state.values()
            if rec.get("status") == "done" and not driver_traits(rec.get("driver")).worktree
            for a in rec.get("artifacts") or [] if a.get("path")]


@contextmanager
def measured_tree(ctx: RunContext, gid: str, tasks_state: Mapping[str, Any]) -> Iterator[MeasuredTree]:
    """The tree gate ``gid`` measures files in (see the module's docstring); removed afterwards."""
    pending = pending_branches(gid, ctx, tasks_state)
    if not pending or not _reads_files(ctx.plan.gates[gid]):
        yield MeasuredTree(ctx.ws.root)
        return
    # start-up: GitPython loads only for a gate over work waiting on branches
    from roles.git_worktrees import merge_candidate, remove_worktree

    task_of = {str(m["branch"]): tid for tid, m in pending}
    try:
        cand = merge_candidate(ctx.ws.root, ctx.run_id, gid, list(task_of), str(pending[0][1].get("base_branch")),
                               provide=_workspace_files(tasks_state))
    except CoordError as e:
        log.warning("gate %s: no merge candidate (%s); measuring the workspace", gid, e)
        yield MeasuredTree(ctx.ws.root, findings=[
            f"file and command criteria were measured in the workspace, where the unmerged work of "
            f"{', '.join(task_of.values())} is not: no merge candidate could be built ({e})"])
        return
    findings = [f"branch {b} (task {task_of[b]}) was left out of the merge candidate the gate measured: "
                f"{why}; its files were not measured, and it cannot merge as it stands"
                for b, why in cand.left_out.items()]
    where = (f"merge candidate of {', '.join(cand.merged) or 'no branch'} on {cand.base_branch} "
             f"({cand.base_commit[:12]})")
    try:
        yield MeasuredTree(cand.cwd, where, findings)
    finally:
        try:
            remove_worktree(ctx.ws.root, cand.path)
        except Exception as e:  # the measurement stands; a leftover directory is replaced next time
            log.warning("could not remove merge candidate %s: %s", cand.path, e)


def review(ctx: RunContext, gid: str, tasks_state: Mapping[str, TaskRecord], gate_rec: GateRecord,
           out: Changes) -> None:
    """Measure a due gate; settle it when its policy lets coord decide alone."""
    spec = ctx.plan.gates[gid]
    attempt = int(gate_rec.get("attempt") or 1)
    lookup = metric_lookup({t: r.get("metrics") or {} for t, r in tasks_state.items()}, ctx.expansions)
    reviewer = ModelReviewer(ctx.ws.root, ctx.run_id, ctx.plan, gid, attempt, ctx.roles[spec.reviewer],
                             tasks_state, budget=ctx.budget)
    with measured_tree(ctx, gid, tasks_state) as tree:
        rec = review_gate(spec, lookup, tree.root, attempt, grading=ctx.plan.grading,
                          task_text=task_text_reader(tree.root, tasks_state, ctx.expansions),
                          commit=workspace_commit(ctx.ws.root), history=list(gate_rec.get("history") or []),
                          reviewer=reviewer)
    if tree.findings:
        rec["findings"] = [*(rec.get("findings") or []), *tree.findings]
    if tree.where and rec.get("reason"):
        rec["reason"] = f"{rec['reason']}; files measured in the {tree.where}, not yet merged"
    settlement = settle(spec, rec, str(rec["verdict"]), by=AUTO) if decides_alone(spec) else None
    status = settlement.update.get("status") if settlement else rec["status"]
    mr = rec.get("model_review")
    opinion = {} if mr is None or mr["status"] == "not_configured" else {"model_review": {
        "status": mr["status"], "provider": mr["provider"], "model": mr["model"], "findings": len(mr["findings"]),
        "recommendation": mr["recommendation"], "cost_usd": mr["cost_usd"], "reused": mr["reused"]}}
    where = {"measured_in": tree.where} if tree.where else {}
    ctx.events.emit("gate_decided", once=f"gate_decided:{gid}:{rec['attempt']}:review", gate=gid, status=status,
                    verdict=rec["verdict"],
                    score=rec["score"], grade=rec["grade"], attempt=rec["attempt"], policy=spec.policy,
                    **opinion, **where)
    if settlement is None:
        out.gate(gid, rec)
        return
    _apply(ctx, gid, rec, settlement, out, tasks_state)


def close_window(ctx: RunContext, gid: str, rec: GateRecord, out: Changes,
                 tasks_state: Mapping[str, TaskRecord]) -> None:
    """The override window of an ``auto_then_human`` gate closed: the automatic verdict stands."""
    spec = ctx.plan.gates[gid]
    settlement = settle(spec, rec, str(rec.get("verdict")), by=f"{AUTO}; override window closed")
    ctx.events.emit("gate_decided", once=f"gate_decided:{gid}:{rec.get('attempt')}:window", gate=gid,
                    status=settlement.update.get("status"), verdict=rec.get("verdict"),
                    score=rec.get("score"), grade=rec.get("grade"), window_closed=True)
    _apply(ctx, gid, {**rec, **settlement.update}, settlement, out, tasks_state)


def decide(ctx: RunContext, gid: str, rec: GateRecord, decision: DecisionRecord, out: Changes,
           tasks_state: Mapping[str, TaskRecord]) -> bool:
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
    _apply(ctx, gid, {**rec, **settlement.update}, settlement, out, tasks_state)
    return True


def _logged(ctx: RunContext, decision_id: str) -> bool:
    return any(e.get("kind") == "gate_decision" and e.get("decision") == decision_id
               for e in read_events(ctx.ws.events, ctx.run_id))


def _apply(ctx: RunContext, gid: str, rec: GateRecord, settlement: Settlement, out: Changes,
           tasks_state: Mapping[str, TaskRecord]) -> None:
    out.gate(gid, rec)
    out.gate(gid, settlement.update)
    if settlement.retry:
        reviewed = ctx.plan.gate_after[gid]
        for tid in reviewed:
            if settlement.review is not None:
                out.task(tid, TaskRecord(review=settlement.review))
            out.task(tid, TaskRecord(status="pending", feedback=settlement.feedback, error=None, reason=None,
                                     metrics={}, artifacts=[], notes=[]))
        # What used their earlier outputs runs again, and other gates that approved them review them again:
        # an approval of work that is being redone does not stand.
        again, gates = reopen_set(ctx.plan, reviewed, {**tasks_state, **out.tasks})
        for tid in again:
            if tid not in reviewed:
                out.task(tid, TaskRecord(status="pending", error=None, reason=None, finished_at=None))
        for other in gates:
            if other != gid:
                out.gate(other, GateRecord(status="pending", verdict=None, score=None, grade=None, decided_at=None,
                                           decided_by=None))
        ctx.events.emit("gate_retry", once=f"gate_retry:{gid}:{settlement.update.get('attempt')}", gate=gid,
                        attempt=settlement.update.get("attempt"), tasks=reviewed,
                        reopened=[t for t in again if t not in reviewed], regated=[g for g in gates if g != gid],
                        findings=len(settlement.feedback))
        return
    final_criteria = settlement.update.get("criteria", rec.get("criteria")) or []
    for crit, check in zip(final_criteria, ctx.plan.gates[gid].criteria, strict=False):
        if not crit.get("deferred") or not crit.get("defer_text"):
            continue
        out.deferred[f"{gid}:{crit['name']}"] = DeferredItem(
            text=str(crit["defer_text"]), gate=gid, criterion=crit["name"],
            detail=criterion_line(crit), resolved_by=list(check.resolved_by),
            status="open", resolved_in=None, remeasured=None)
        ctx.events.emit("deferred_opened", once=f"deferred_opened:{gid}:{crit['name']}", gate=gid,
                        item=crit["defer_text"])


def remeasure(ctx: RunContext, item: DeferredItem, tasks_state: Mapping[str, TaskRecord],
              gates_state: Mapping[str, GateRecord]) -> Remeasurement | None:
    """Measure the criterion that opened ``item`` again, now that a task meant to resolve it is done.

    None when there is nothing new to measure: no resolving task is done, its work waits on a branch
    for its gates, or this completion was measured already. Where the measurement comes from:

    - a metric criterion ``task.metric``: the resolving task, when it reports the same metric (it
      measured it again on what it produced); else the criterion's own task, when it ran again after
      the gate decided. Otherwise nothing measured it again (``passed`` None: the item stays open);
    - a file, command or claims criterion: measured again in the workspace, as the gate measured it;
    - a reviewer-model criterion is an opinion, not measured again.
    """
    spec = ctx.plan.gates.get(item["gate"])
    done = [t for base in item["resolved_by"] for t in ctx.expansions.get(base, [base])
            if tasks_state.get(t, {}).get("status") == "done"]
    if spec is None or not done:
        return None
    if any((tasks_state[t].get("metrics") or {}).get("merge") == PENDING_GATE for t in done):
        return None  # its work reaches the workspace when its own gates let it through
    gate_rec = gates_state.get(item["gate"], {})
    check = _criterion(spec, gate_rec, item["criterion"])
    owners = ctx.expansions.get(check.metric.partition(".")[0], [check.metric.partition(".")[0]]) \
        if check is not None and check.metric is not None and check.command is None else []
    # what was measured last: the resolving tasks' completions and (a metric's) its own task's last run
    stamp = ";".join(f"{t}@{tasks_state.get(t, {}).get('finished_at')}" for t in [*done, *owners])
    earlier = item.get("remeasured")
    if earlier is not None and earlier["stamp"] == stamp:
        return None
    after = done[0]
    out = Remeasurement(after=after, stamp=stamp, at=now_iso(), measured=None, passed=None, detail="")
    if check is None or check.review is not None:
        out["detail"] = f"{after} is done; the criterion is a reviewer model's opinion, which is not measured again"
        return out
    all_metrics = {t: r.get("metrics") or {} for t, r in tasks_state.items()}
    lookup = metric_lookup(all_metrics, ctx.expansions)
    if check.metric is not None and check.command is None:
        owner, _, name = check.metric.partition(".")
        decided = str(gate_rec.get("decided_at") or "")
        # a resolving task's figure counts only if it was measured after the gate found the problem
        by = next((t for t in done if name in (tasks_state[t].get("metrics") or {})
                   and str(tasks_state[t].get("finished_at") or "") > decided), None)
        if by is not None:
            after, lookup = by, metric_lookup({owner: all_metrics[by]}, {})
        elif not _ran_again(ctx.expansions.get(owner, [owner]), tasks_state, gate_rec.get("decided_at")):
            early = name in (tasks_state[after].get("metrics") or {})
            said = f"{after} measured {name!r} before the gate decided" if early else f"{after} reports no {name!r}"
            out["detail"] = (f"{after} is done, but nothing has measured {check.metric} since the gate did: "
                             f"{said} and {owner} has not run again; the item stays open until one of them "
                             f"measures it")
            return out
    res = evaluate(check, lookup, ctx.ws.root, deferrable=False,
                   task_text=task_text_reader(ctx.ws.root, tasks_state, ctx.expansions))
    why = f" — {res['detail']}" if res["detail"] and not res["passed"] else ""
    out["after"], out["measured"], out["passed"] = after, res["measured"], res["passed"]
    out["detail"] = f"re-measured after {after}: {measured_phrase(res)}{why}"
    return out


def _criterion(spec: GateSpec, rec: GateRecord, name: str) -> Check | None:
    """The plan's criterion the gate record names ``name`` (records make repeated names unique by position)."""
    names = [c.get("name") for c in rec.get("criteria") or []]
    if name in names and names.index(name) < len(spec.criteria):
        return spec.criteria[names.index(name)]
    return next((c for c in spec.criteria if c.name == name), None)


def _ran_again(ids: list[str], tasks_state: Mapping[str, TaskRecord], decided_at: str | None) -> bool:
    """Every copy of the task finished again after the gate decided."""
    return decided_at is not None and all(
        tasks_state.get(t, {}).get("status") == "done" and str(tasks_state[t].get("finished_at") or "") > decided_at
        for t in ids)
