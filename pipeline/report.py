"""The run summary: per-role report cards, gate outcomes, key measurements, deferred items, costs.

Everything comes from the run's status snapshot (``.coord/status.json``,
written by coord right before this step starts), the run's stored plan and the metrics tasks
measured; the report task itself counts as done (writing the summary is its last act). A role's grade is computed from the gate criteria that measure its
own tasks; a role no criterion measures is shown as not graded, never guessed.

Any plan gets a summary of itself: its title, its gates, the metrics its gates read (with the
values the tasks measured; a metric no task measured is shown as not measured, never as 0),
other numeric metrics per task (bounded), deferred items and costs (the budget view of the
snapshot). The launch go/no-go headline is written only when the plan has a gate named by
``launch_gate``. The week2 plan keeps its week summary's layout (:data:`CLASSIC_LAYOUT`).

Metrics: ``tasks_total``, ``tasks_done``, ``gates_total``, ``gates_approved``,
``deferred_open``, ``launch`` (go / no-go / undecided; only when the plan has the launch gate),
``cost_usd``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from coordinator import StepContext, StepResult, StepRun, WsPath, step
from coordinator.core.errors import InputError
from coordinator.core.grading import letter_grade, weighted_score
from coordinator.core.io import atomic_write_text
from coordinator.core.plan import Grading
from coordinator.core.provenance import plan_views, provenance, stand_in
from coordinator.core.run_store import read_run_plan_data
from coordinator.core.step import MetricValue
from coordinator.core.workspace import Workspace
from pipeline._benchmark_report import fmt_improvement, fmt_pp, fmt_relative
from pipeline.finetune import DRY_RUN_WORDING
from templates import render

CLASSIC_LAYOUT = frozenset({"week2"})
"""Plans whose summary keeps the original week-summary layout: the "Week summary" title, a chosen
list of key measurements, no cost section (their costs are in ``cost_dashboard.md``)."""
NOT_MEASURED = "not measured"
"""Shown for a metric a gate reads that its task did not (or not yet) measure."""
OTHER_METRICS_PER_TASK = 8
OTHER_METRICS_MAX = 40
"""Bounds on the numeric metrics shown beside the gated ones (the rest stay in the status snapshot)."""


def _stored_plan(ctx: StepContext, status: dict[str, Any]) -> dict[str, Any]:
    """The run's compiled plan as stored beside its state (empty when there is none)."""
    return read_run_plan_data(Workspace.at(ctx.workspace), str(status.get("run_id")))


def _grading(plan: dict[str, Any]) -> Grading:
    """The run's grading scale (from its stored plan); the default scale when there is none."""
    try:
        return Grading.model_validate(plan.get("grading") or {})
    except ValueError:
        return Grading()


def _with_self_done(status: dict[str, Any], plan: dict[str, Any]) -> dict[str, Any]:
    """``status`` with this report task counted as done.

    The snapshot is taken while this task runs, so it would count itself as unfinished
    (a lead whose every task is done shown as "1/2"). Writing the summary is the task's
    last act — if it fails there is no summary — so the summary counts it as done.
    """
    own = {tid for tid, t in (plan.get("tasks") or {}).items()
           if isinstance(t, dict) and t.get("run") == "report"
           and (status["tasks"].get(tid) or {}).get("status") == "running"}
    if not own:
        return status
    tasks = {tid: ({**rec, "status": "done", "note": "writes this summary"} if tid in own else rec)
             for tid, rec in status["tasks"].items()}
    return {**status, "tasks": tasks}


def _criterion_owner(c: dict[str, Any]) -> str | None:
    """The task a criterion measures, when it measures one task's work."""
    if c["kind"] == "metric":
        return str(c["target"]).split(".", 1)[0]
    if c["kind"] == "claims" and str(c["target"]).startswith("task "):
        return str(c["target"])[5:]
    return None


def _role_cards(status: dict[str, Any], grading: Grading | None = None) -> list[dict[str, Any]]:
    """Per role: tasks done/total, the grade its measured criteria earn, its gates' grades, retries, cost."""
    grading = grading or Grading()
    tasks = status["tasks"]
    owner = {tid: t["role"] for tid, t in tasks.items()}
    base_owner = {tid.split("[", 1)[0]: t["role"] for tid, t in tasks.items()}
    by_role: dict[str, dict[str, Any]] = {}
    for t in tasks.values():
        card = by_role.setdefault(t["role"], {"role": t["role"], "agent": t.get("agent") or "—", "total": 0,
                                               "done": 0, "retries": 0, "gate_retries": 0, "cost": 0.0,
                                               "criteria": [], "gates": set(), "gate_grades": []})
        card["total"] += 1
        card["done"] += t.get("status") == "done"
        # every attempt after the first: in-task retries and runs after a gate sent the task back
        # (``attempts`` counts both once the task ran; before that, the dispatches say how often it was sent back)
        if t.get("status") in ("done", "failed"):
            card["retries"] += max(0, int(t.get("attempts") or 1) - 1)
        else:
            card["gate_retries"] += max(0, int(t.get("dispatch") or 1) - 1)
        card["cost"] += float(t.get("cost_usd") or 0.0)
        if t.get("agent"):
            card["agent"] = t["agent"]
    for gid, g in status["gates"].items():
        roles_here: set[str] = set()
        for c in g.get("criteria") or []:
            task = _criterion_owner(c)
            role = (owner.get(task) or base_owner.get(task)) if task else None
            if role in by_role:
                by_role[role]["criteria"].append((c["weight"], c["passed"]))
                roles_here.add(role)
        for role in roles_here:
            by_role[role]["gates"].add(gid)
            if g.get("grade"):
                by_role[role]["gate_grades"].append(f"{gid} {g['grade']}")
    cards = []
    for card in by_role.values():
        if card["criteria"]:
            score = weighted_score(card["criteria"])
            card["score"], card["grade"] = score, letter_grade(score, grading)
        else:
            card["score"], card["grade"] = None, None
        card["gates"] = sorted(card["gates"])
        card["gate_grades"] = sorted(card["gate_grades"])
        card["retries"] += card.pop("gate_retries")
        card["checks"] = len(card.pop("criteria"))
        cards.append(card)
    return sorted(cards, key=lambda c: c["role"])


def _launch(status: dict[str, Any], gate: str) -> str:
    g = status["gates"].get(gate)
    if not g or g.get("status") in (None, "pending", "waiting"):
        return "undecided"
    return "go" if g.get("status") == "approved" else "no-go"


def _downstream(plan: dict[str, Any], roots: list[str]) -> list[str]:
    """Base ids of the tasks that need any of ``roots``, directly or through other tasks, in plan order."""
    plan_tasks = plan.get("tasks") or {}
    found: set[str] = set()
    todo = list(roots)
    while todo:
        cur = todo.pop()
        for tid, t in plan_tasks.items():
            if isinstance(t, dict) and cur in (t.get("needs") or []) and tid not in found:
                found.add(tid)
                todo.append(tid)
    out: list[str] = []
    for tid in plan.get("order") or list(plan_tasks):
        t = plan_tasks.get(tid) or {}
        if tid in found and t.get("run") != "report" and t.get("base_id", tid) not in out:
            out.append(t.get("base_id", tid))
    return out


def _launch_caveats(status: dict[str, Any], plan: dict[str, Any]) -> list[str]:
    """What a decision is made with: each open deferred item, and the fixes skipped before later tasks ran.

    An open item whose resolving task was skipped (a profile such as ``speed``) means the tasks
    after it worked on files without that fix; the headline names them next to the decision.
    """
    out = []
    for d in status.get("deferred", {}).values():
        if d.get("status") != "open":
            continue
        skipped = [t for t in d.get("resolved_by") or []
                   if (status["tasks"].get(t) or {}).get("status") == "skipped"]
        text = str(d.get("text") or d.get("criterion") or "deferred item")
        if skipped:
            after = [t for t in _downstream(plan, skipped) if t not in skipped
                     and any((rec.get("status") == "done") for tid, rec in status["tasks"].items()
                             if tid.split("[", 1)[0] == t)]
            text += f" ({', '.join(skipped)} skipped"
            text += f": {', '.join(after)} used files without this fix)" if after else ")"
        out.append(text)
    return out


def _highlights(status: dict[str, Any]) -> list[tuple[str, str, Any]]:
    wanted = {
        "generate": ["examples", "tool_examples", "code_examples", "pii_seeded"],
        "to_adp": ["trajectories", "validation_errors", "rejects"],
        "build_sft": ["rows", "openai_rows", "heldout_rows", "pairs_used"],
        "audit": ["rows", "unique_texts", "exact_dup_rate", "near_dup_pairs", "pii_rows",
                  "difficulty_max_deviation", "too_short_rate", "no_end_punct_rate"],
        "scrub_pii": ["emails_replaced", "phones_replaced", "pii_remaining", "pii_remaining_second"],
        "rebalance": ["rows_before", "rows_after", "max_deviation_before", "max_deviation_after"],
        "benchmark": ["baseline_accuracy", "candidate_accuracy", "absolute_improvement", "relative_improvement_pct",
                      "significant_agents", "pooled_mcnemar_p", "leaked_ids"],
    }
    out: list[tuple[str, str, Any]] = []
    for task, names in wanted.items():
        metrics = (status["tasks"].get(task) or {}).get("metrics") or {}
        out.extend((task, n, _with_unit(task, n, metrics[n])) for n in names if n in metrics)
    return out


def _ratio(pct: Any) -> float | None:
    """A ``*_relative_improvement_pct`` metric back as the ratio the benchmark formatters take."""
    return pct / 100.0 if isinstance(pct, int | float) and not isinstance(pct, bool) else None


def _with_unit(step_name: str | None, name: str, value: Any) -> Any:
    """Benchmark numbers carry their unit: accuracies in %, gains in pp, relative gains in relative %."""
    if step_name != "benchmark" or not isinstance(value, int | float | None) or isinstance(value, bool):
        return value
    if name.endswith("_accuracy") and value is not None:
        return f"{100.0 * value:.1f}%"
    if name.endswith("absolute_improvement") and value is not None:
        return fmt_pp(value) + " (percentage points)"
    if name.endswith("relative_improvement_pct"):
        return fmt_relative(_ratio(value)) + (" (relative)" if value is not None else "")
    return value


def _benchmark_line(status: dict[str, Any], gate: str) -> str | None:
    """One sentence with the launch numbers in named units, and the launch threshold's unit."""
    m = (status["tasks"].get("benchmark") or {}).get("metrics") or {}
    if not isinstance(m.get("absolute_improvement"), int | float):
        return None
    line = (f"Benchmark (pooled): candidate {100.0 * m['candidate_accuracy']:.1f}% vs baseline "
            f"{100.0 * m['baseline_accuracy']:.1f}% accuracy — improvement "
            f"{fmt_improvement(m['absolute_improvement'], _ratio(m.get('relative_improvement_pct')))}")
    for c in (status["gates"].get(gate) or {}).get("criteria") or []:
        if c.get("target") == "benchmark.absolute_improvement" and c.get("op"):
            t = c["threshold"]
            shown = f"{t:g}" if isinstance(t, int | float) else str(t)
            line += f"; the {gate} gate needs {c['op']} {shown} pp (percentage points, not relative %)"
    return line + "."


def _finetune_rows(status: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for tid, t in status["tasks"].items():
        m = t.get("metrics") or {}
        if tid.startswith("finetune[") and m:
            shown = f"dry run: {DRY_RUN_WORDING}" if m.get("dry_run") else str(m.get("job_status") or "unknown")
            rows.append({"task": tid, "examples": m.get("examples"), "tokens": m.get("training_tokens"),
                         "cost": m.get("est_cost_usd"), "dry_run": m.get("dry_run"), "status": shown,
                         "model": m.get("fine_tuned_model")})
    return rows


def _task_ids(plan: dict[str, Any], status: dict[str, Any]) -> list[str]:
    """The run's task ids in plan order (stored files sort their keys), then any the plan does not list."""
    ids = [t for t in plan.get("order") or [] if t in status["tasks"]]
    return ids + [t for t in status["tasks"] if t not in ids]


def _gate_ids(plan: dict[str, Any], status: dict[str, Any]) -> list[str]:
    """The plan's gates in the order they review (after their last task in plan order), then any
    other gate the status has a record of."""
    position = {t: i for i, t in enumerate(plan.get("order") or [])}
    after = plan.get("gate_after") or {}

    def reviews_at(gid: str) -> int:
        return max((position.get(t, len(position)) for t in after.get(gid) or []), default=len(position))

    ids = sorted((str(g) for g in plan.get("gates") or {}), key=reviews_at)
    return ids + [g for g in status["gates"] if g not in ids]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _instances(plan: dict[str, Any], status: dict[str, Any]) -> dict[str, list[str]]:
    """Base task id → its concrete task ids (a ``foreach`` task has one per item), in plan order."""
    tasks = plan.get("tasks") or {}
    out: dict[str, list[str]] = {}
    for tid in plan.get("order") or list(tasks) or list(status["tasks"]):
        t = tasks.get(tid)
        base = str(t.get("base_id") or tid) if isinstance(t, dict) else tid.split("[", 1)[0]
        out.setdefault(base, []).append(tid)
    return out


def _metric_checks(plan: dict[str, Any], status: dict[str, Any]) -> list[tuple[str, str, Any, Any]]:
    """Every gate criterion that reads a task's metric: (gate, ``task.metric``, op, threshold), in plan order.

    From the stored plan, so a gate that has not reviewed yet still names what it will read; from
    the gate's record when there is no stored plan. A command's metric is the command's, not a task's.
    """
    out: list[tuple[str, str, Any, Any]] = []
    specs = plan.get("gates") or {}
    for gid in _gate_ids(plan, status):
        spec = specs.get(gid)
        if isinstance(spec, dict):
            out.extend((gid, str(c["metric"]), c.get("op"), c.get("value")) for c in spec.get("criteria") or []
                       if isinstance(c, dict) and c.get("metric") and not c.get("command"))
        else:
            out.extend((gid, str(c.get("target")), c.get("op"), c.get("threshold"))
                       for c in (status["gates"].get(gid) or {}).get("criteria") or [] if c.get("kind") == "metric")
    return out


def _gated_metrics(plan: dict[str, Any], status: dict[str, Any],
                   steps: dict[str, str | None]) -> list[dict[str, Any]]:
    """The metrics the plan's gates read, one row per task instance, with the value the task measured."""
    instances = _instances(plan, status)
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for gid, ref, op, threshold in _metric_checks(plan, status):
        task, _, name = ref.partition(".")
        for tid in instances.get(task, [task]):
            metrics = (status["tasks"].get(tid) or {}).get("metrics") or {}
            row = rows.setdefault((tid, name), {
                "task": tid, "metric": name, "read_by": [],
                "value": _with_unit(steps.get(tid), name, metrics[name]) if name in metrics else NOT_MEASURED})
            rule = {"gate": gid, "op": op, "threshold": threshold}
            if rule not in row["read_by"]:
                row["read_by"].append(rule)
    return list(rows.values())


def _other_metrics(plan: dict[str, Any], status: dict[str, Any], steps: dict[str, str | None],
                   shown: set[tuple[str, str]]) -> tuple[list[tuple[str, str, Any]], int]:
    """Numeric metrics no gate reads, per task in plan order, bounded; and how many were left out."""
    rows: list[tuple[str, str, Any]] = []
    left_out = 0
    for tid in _task_ids(plan, status):
        metrics = status["tasks"][tid].get("metrics") or {}
        numeric = [(n, v) for n, v in metrics.items() if (tid, n) not in shown and _is_number(v)]
        for n, v in numeric[:OTHER_METRICS_PER_TASK]:
            if len(rows) < OTHER_METRICS_MAX:
                rows.append((tid, n, _with_unit(steps.get(tid), n, v)))
            else:
                left_out += 1
        left_out += max(0, len(numeric) - OTHER_METRICS_PER_TASK)
    return rows, left_out


def _gate_rows(plan: dict[str, Any], status: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every gate of the plan with its record (an empty record for one that has not reviewed yet)."""
    return [(gid, status["gates"].get(gid) or {}) for gid in _gate_ids(plan, status)]


def _costs(status: dict[str, Any]) -> dict[str, Any]:
    """What the tasks recorded spending, and the budget view of the snapshot when it has one."""
    recorded = [float(t["cost_usd"]) for t in status["tasks"].values() if _is_number(t.get("cost_usd"))]
    budget = status.get("budget") if isinstance(status.get("budget"), dict) else None
    scopes: list[dict[str, Any]] = []
    if budget is not None:
        named = [("run", budget.get("run"))] + [(f"role {r}", v) for r, v in (budget.get("roles") or {}).items()]
        for scope, view in named:
            if not isinstance(view, dict):
                continue
            notes = []
            if view.get("exhausted"):
                notes.append("exhausted: no new paid work starts")
            if view.get("approved"):
                notes.append("overrun approved by a person")
            if view.get("unknown_calls"):
                notes.append(f"{view['unknown_calls']} call(s) of unknown cost")
            scopes.append({"scope": scope, "limit": view.get("limit_usd"), "spent": view.get("spent_usd"),
                           "pct": view.get("pct"), "note": "; ".join(notes)})
    return {"tasks_usd": sum(recorded) if recorded else None, "budget": budget is not None, "scopes": scopes,
            "alerts": [a for a in (budget or {}).get("alerts") or [] if _is_number(a)]}


@step("report", reads_run_status=True)
def report(ctx: StepContext, *, status_file: WsPath = WsPath(".coord/status.json"),
           out_dir: WsPath = WsPath("reports"), launch_gate: str = "launch") -> StepResult:
    """Write ``week_summary.md`` from the run's measured status (the coordinator writes ``cost_dashboard.md``)."""
    src = ctx.path(status_file)
    if not src.exists():
        raise InputError("run status snapshot not found; the report step runs inside a coord run",
                         path=status_file)
    try:
        status = orjson.loads(src.read_bytes())
    except orjson.JSONDecodeError as e:
        raise InputError(f"invalid JSON: {e}", path=status_file) from e
    out = ctx.path(out_dir)
    summary_path = out / "week_summary.md"
    run = StepRun(ctx, "report", {"status_file": status_file, "out_dir": out_dir, "launch_gate": launch_gate},
                  inputs=[src], outputs=[summary_path])
    plan = _stored_plan(ctx, status)
    status = _with_self_done(status, plan)
    classic = str(plan.get("name") or status.get("plan")) in CLASSIC_LAYOUT
    cards = _role_cards(status, _grading(plan))
    has_launch = launch_gate in (plan.get("gates") or {}) or launch_gate in status["gates"]
    launch = _launch(status, launch_gate) if has_launch else None
    caveats = _launch_caveats(status, plan)
    deferred = list(status.get("deferred", {}).values())
    finetune = _finetune_rows(status)
    total_cost = sum(c["cost"] for c in cards)
    est = [r["cost"] for r in finetune if isinstance(r["cost"], int | float)]
    steps, params = plan_views(plan.get("tasks") or {}, plan.get("order"))
    origin = provenance(steps, params, status["tasks"], ctx.workspace)
    context = {"status": status, "cards": cards, "launch": launch, "launch_gate": launch_gate, "caveats": caveats,
               "provenance": origin, "stand_in": stand_in(origin),
               "highlights": _highlights(status) if classic else [],
               "benchmark_line": _benchmark_line(status, launch_gate) if has_launch else None,
               "deferred": deferred, "finetune": finetune,
               "total_cost": total_cost, "est_finetune_cost": sum(est) if est else None,
               "unknown_cost": any(r["cost"] is None for r in finetune),
               "running": [t for t, rec in status["tasks"].items() if rec.get("status") == "running"]}
    if not classic:
        gated = _gated_metrics(plan, status, steps)
        others, left_out = _other_metrics(plan, status, steps, {(r["task"], r["metric"]) for r in gated})
        context.update(layout="plan", title=str(plan.get("title") or status.get("plan")),
                       task_rows=[(t, status["tasks"][t]) for t in _task_ids(plan, status)],
                       gate_rows=_gate_rows(plan, status), gated_metrics=gated, highlights=others,
                       metrics_left_out=left_out, costs=_costs(status))
    atomic_write_text(summary_path, render("week_summary.md.j2", **context))
    run.record(Path(summary_path))
    tasks = status["tasks"]
    metrics: dict[str, MetricValue] = {
        "tasks_total": len(tasks), "tasks_done": sum(t.get("status") == "done" for t in tasks.values()),
        "gates_total": len(_gate_ids(plan, status)),
        "gates_approved": sum(g.get("status") == "approved" for g in status["gates"].values()),
        "deferred_open": sum(d.get("status") == "open" for d in deferred),
        **({"launch": launch} if launch is not None else {}),
        "cost_usd": round(total_cost, 6),
    }
    return run.finish(metrics)
