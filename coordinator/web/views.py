"""What the run pages show, gathered from the engine's read functions (the charted pages — costs and
benchmark — are in :mod:`coordinator.web.chart_pages`).

One function per page returns the template's context. The figures are the engine's: a run's
state is :func:`coordinator.engine.run_view.run_status` (what ``coord status`` prints), the budget
is the run's :class:`RunBudget` read from the ledger now, gate records are the review records
``coord review show`` prints. Nothing is recomputed here but the task graph's layout.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from pathlib import Path
from typing import Any, cast

from coordinator.core.errors import ConfigError, CoordError, UsageError
from coordinator.core.events import read_events
from coordinator.core.grading import format_score
from coordinator.core.plan import CompiledPlan
from coordinator.core.run_store import load_run_plan
from coordinator.core.state import GateRecord
from coordinator.core.workspace import Workspace
from coordinator.engine.budget_service import open_run_budget
from coordinator.engine.checkpoint_read import CheckpointDamaged
from coordinator.engine.decisions import continue_hints
from coordinator.engine.run_view import find_run, run_status, runs_overview
from coordinator.web.dag import layout
from coordinator.web.security import PathRefused, safe_path
from reviews.gate import needs_person, window_open
from reviews.records import find_review_record
from task_boards.store import board_problems
from templates import fmt_num

STARTING_S = 5.0
"""How long a running run's unreadable checkpoint is taken for one still being created."""
EVENTS_SHOWN = 20
"""The newest events a run page lists."""
EVENT_FIELDS = ("task", "gate", "status", "action", "by", "phase", "threshold", "attempt", "reason", "error")
QUIET_EVENTS = ("board_rendered",)
"""Events the run page leaves out of its list (one after every step: they would crowd out the rest)."""


class NotFound(UsageError):
    """A run or gate the dashboard was asked for does not exist."""


def status_of(ws: Workspace, run_id: str) -> dict[str, Any]:
    """``run_status`` of the run ``run_id`` names; :class:`NotFound` when there is none.

    A run that has just started has a record before its checkpoint database has its tables (the
    runner is still loading LangGraph), which reads as a damaged database: for a run recorded as
    running that is retried for a moment before it is believed.
    """
    try:
        record = find_run(ws, run_id)
    except UsageError as e:
        raise NotFound(str(e)) from None
    deadline = time.monotonic() + STARTING_S
    while True:
        try:
            return run_status(ws, str(record["run_id"]))
        except CheckpointDamaged:
            if record.get("phase") != "running" or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def budget_now(ws: Workspace, run_id: str, st: dict[str, Any]) -> tuple[Any, str | None]:
    """The run's budget from the ledger now (the checkpoint's copy, and why, when the role bindings
    cannot be read)."""
    try:
        return open_run_budget(ws, run_id).status().to_state(), None
    except ConfigError as e:
        return st.get("budget"), f"the budget shown is the last checkpoint's: {e}"


def runs_context(ws: Workspace) -> dict[str, Any]:
    """The runs page: every run, newest first."""
    runs = runs_overview(ws)
    return {"runs": list(reversed(runs))}


def file_link(ws: Workspace, path: str) -> str | None:
    """The dashboard path that shows a workspace file, or None when it is not served (or absent)."""
    try:
        safe_path(ws, path)
    except PathRefused:
        return None
    return path


def _task_rows(ws: Workspace, plan: CompiledPlan, tasks: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for tid, rec in tasks.items():
        detail = rec.get("error") or rec.get("reason") or ""
        if not detail and rec.get("status") == "waiting" and rec.get("held_by"):
            detail = f"held: {rec['held_by']}"
        artifacts = [{"path": str(a["path"]), "rows": a.get("rows"), "bytes": a.get("bytes"),
                      "link": file_link(ws, str(a["path"]))} for a in rec.get("artifacts") or []]
        rows.append({"id": tid, "title": rec.get("title") or tid, "role": rec.get("role"),
                     "agent": rec.get("agent"), "driver": rec.get("driver"),
                     "status": rec.get("status", "pending"), "attempts": rec.get("attempts"),
                     "duration_s": rec.get("duration_s"), "detail": str(detail), "artifacts": artifacts,
                     "needs": plan.tasks[tid].needs if tid in plan.tasks else [],
                     "notes": [str(n) for n in rec.get("notes") or []][:5]})
    return rows


def _criterion(c: dict[str, Any]) -> dict[str, Any]:
    threshold = c.get("threshold")
    op = c.get("op")
    return {"label": c.get("label") or c.get("name"), "kind": c.get("kind"), "target": c.get("target"),
            "measured": fmt_num(c.get("measured")),
            "threshold": f"{op} {fmt_num(threshold)}" if op else fmt_num(threshold),
            "passed": bool(c.get("passed")), "critical": bool(c.get("critical")),
            "deferred": bool(c.get("deferred")), "weight": c.get("weight"), "detail": c.get("detail") or "",
            "claims": c.get("claims") or []}


def _gate_rows(ws: Workspace, plan: CompiledPlan, run_id: str, gates: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for gid, rec in gates.items():
        spec = plan.gates[gid]
        status = rec.get("status", "pending")
        record = ws.reviews / run_id / f"{gid}.json"
        rows.append({
            "id": gid, "title": spec.title or gid, "policy": spec.policy, "reviewer": spec.reviewer,
            "on_fail": spec.on_fail, "pass_score": format_score(spec.pass_score), "after": plan.gate_after[gid],
            "status": status, "grade": rec.get("grade"), "verdict": rec.get("verdict"),
            "score": format_score(rec["score"]) if rec.get("score") is not None else None,
            "criteria": [_criterion(c) for c in rec.get("criteria") or []],
            "findings": [str(f) for f in rec.get("findings") or []],
            "decided_by": rec.get("decided_by"), "decided_at": rec.get("decided_at"),
            "decision": rec.get("decision"), "reason": rec.get("reason"),
            "override_until": rec.get("override_until"),
            "decidable": status == "waiting" and (needs_person(cast(GateRecord, rec))
                                                 or window_open(cast(GateRecord, rec))),
            "has_record": record.is_file(),
        })
    return rows


def _event_text(event: dict[str, Any]) -> str:
    parts = []
    for key in EVENT_FIELDS:
        value = event.get(key)
        if value is not None and value != "":
            text = str(value)
            parts.append(f"{key}={text[:120]}{'…' if len(text) > 120 else ''}")
    return " ".join(parts)


def recent_events(ws: Workspace, run_id: str, n: int = EVENTS_SHOWN) -> list[dict[str, str]]:
    """The run's newest ``n`` events, newest first."""
    last = deque((e for e in read_events(ws.events, run_id) if e.get("kind") not in QUIET_EVENTS), maxlen=n)
    return [{"ts": str(e.get("ts", ""))[11:23], "kind": str(e.get("kind", "")), "text": _event_text(e)}
            for e in reversed(last)]


def run_context(ws: Workspace, run_id: str) -> dict[str, Any]:
    """The run page: phase, DAG, tasks, gates, deferred items, problems, budget, recent events."""
    st = status_of(ws, run_id)
    rid = st["run_id"]
    plan = load_run_plan(ws, rid)
    problems = [str(p) for p in st["problems"]]
    budget, budget_problem = budget_now(ws, rid, st)
    if budget_problem:
        problems.append(budget_problem)
    counts: dict[str, int] = {}
    for rec in st["tasks"].values():
        counts[rec.get("status", "pending")] = counts.get(rec.get("status", "pending"), 0) + 1
    hints: list[str] = []
    if st["phase"] == "waiting":
        with contextlib.suppress(ConfigError):  # a broken coord.yaml is already listed with the budget
            hints = continue_hints(ws, rid, {"tasks": st["tasks"], "gates": st["gates"]})
    deferred = [{"id": k, **v} for k, v in (st.get("deferred") or {}).items()]
    return {
        "run": {"run_id": rid, "plan": st["plan"], "title": plan.title, "profile": st["profile"],
                "phase": st["phase"], "live": st.get("live"), "counts": counts, "total": len(st["tasks"])},
        "dag": layout(plan, st["tasks"], st["gates"]),
        "tasks": _task_rows(ws, plan, st["tasks"]),
        "gates": _gate_rows(ws, plan, rid, st["gates"]),
        "grades": [*plan.grading.letters(), plan.grading.fail_grade],
        "deferred": deferred,
        "problems": problems,
        "board_problems": board_problems(ws),
        "hints": hints,
        "budget": budget,
        "events": recent_events(ws, rid),
        "statuses": {"tasks": {t: r.get("status", "pending") for t, r in st["tasks"].items()},
                     "gates": {g: r.get("status", "pending") for g, r in st["gates"].items()}},
    }


def gate_context(ws: Workspace, run_id: str, gate_id: str) -> dict[str, Any]:
    """A gate's page: its review record (every criterion against its threshold, claims, decision,
    history, the reviewer model's opinion), or its state while it has no record yet."""
    st = status_of(ws, run_id)
    rid = st["run_id"]
    if gate_id not in st["gates"]:
        raise NotFound(f"run {rid} has no gate {gate_id!r}")
    plan = load_run_plan(ws, rid)
    row = _gate_rows(ws, plan, rid, {gate_id: st["gates"][gate_id]})[0]
    record: dict[str, Any] | None = None
    md_link = None
    if row["has_record"]:
        md, rec = find_review_record(ws, gate_id, rid)
        record = {k: v for k, v in rec.items() if not k.startswith("_")}
        md_link = file_link(ws, md.relative_to(ws.root).as_posix())
        row["criteria"] = [_criterion(c) for c in record.get("criteria") or []]
        for a in record.get("artifacts") or []:
            a["link"] = file_link(ws, str(a.get("path", "")))
    return {"run": {"run_id": rid, "plan": st["plan"], "phase": st["phase"]}, "gate": row, "record": record,
            "md_link": md_link, "grades": [*plan.grading.letters(), plan.grading.fail_grade]}


def file_context(ws: Workspace, raw: str, limit: int = 200_000) -> dict[str, Any]:
    """A workspace file's text (the first ``limit`` bytes), for the file page."""
    path = safe_path(ws, raw)
    try:
        with path.open("rb") as fh:
            data = fh.read(limit + 1)
    except OSError as e:
        raise CoordError(f"cannot read {raw}: {e.strerror}") from None
    truncated = len(data) > limit
    text = data[:limit].decode("utf-8", errors="replace")
    return {"path": raw, "text": text, "truncated": truncated, "size": path.stat().st_size,
            "name": Path(raw).name}
