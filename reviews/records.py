"""Review records: ``reviews/<run>/<gate>.md`` (from a template) and ``.json``.

Each record holds every criterion with its measured value and threshold, the
claims an agent made next to what coord measured, score, grade, verdict, the
decision (who, when, note), findings, deferred items, earlier attempts, the
reviewed artifacts with their sha256 and the workspace's git commit — and, apart from
all that, the reviewer model's opinion (provider, model, cost, findings) or why there is none.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from coordinator.core.errors import UsageError
from coordinator.core.io import atomic_write_json, atomic_write_text
from coordinator.core.plan import CompiledPlan
from coordinator.core.provenance import plan_views, provenance
from coordinator.core.state import RunState
from coordinator.core.workspace import Workspace
from templates import relative_link, render

RECORD_SCHEMA_VERSION = 4
"""3: ``model_review`` (the reviewer model's opinion, or why there is none); 4: ``provenance``
(sentences on where the reviewed examples, fine-tunes and benchmark numbers came from)."""


def write_review_record(ws: Workspace, plan: CompiledPlan, state: RunState, gate_id: str) -> list[str]:
    """Write the gate's record (once it has been measured); return the paths written."""
    rec = state.get("gates", {}).get(gate_id)
    if not rec or not rec.get("verdict"):
        return []
    gate = plan.gates[gate_id]
    run_id = state.get("run_id", "run")
    tasks = state.get("tasks", {})
    out = ws.reviews / run_id
    artifacts = [{**a, "task": t} for t in plan.gate_after[gate_id] for a in (tasks.get(t, {}).get("artifacts") or [])]
    links = {str(a["path"]): relative_link(ws.root, out, str(a["path"])) for a in artifacts}
    run = {"run_id": run_id, "plan": plan.name}
    gate_view = {"id": gate_id, "title": gate.title or gate_id, "reviewer": gate.reviewer, "policy": gate.policy,
                 "on_fail": gate.on_fail, "pass_score": gate.pass_score, "max_retries": gate.max_retries,
                 "after": plan.gate_after[gate_id],
                 "review_criteria": [c.describe() for c in gate.criteria if c.review is not None]}
    full = {"decision": None, "history": [], "commit": None, "override_until": None,
            "grade_measured": rec.get("grade"), "reason": None, "model_review": None, **rec}
    full["provenance"] = provenance(*plan_views(plan.tasks, plan.order), tasks, ws.root)
    md = render("review.md.j2", gate=gate_view, rec=full, run=run, artifacts=artifacts, links=links)
    atomic_write_text(out / f"{gate_id}.md", md)
    atomic_write_json(out / f"{gate_id}.json", {"schema_version": RECORD_SCHEMA_VERSION, "run": run_id,
                                                 "gate": gate_view, **full, "artifacts": artifacts})
    return [f"reviews/{run_id}/{gate_id}.md", f"reviews/{run_id}/{gate_id}.json"]


def list_review_records(ws: Workspace, run_id: str | None = None) -> list[dict[str, Any]]:
    """Every review record of the workspace (or of one run), oldest run first."""
    if not ws.reviews.is_dir():
        return []
    out = []
    for path in sorted(ws.reviews.glob("*/*.json")):
        if run_id is not None and path.parent.name != run_id:
            continue
        try:
            data = orjson.loads(path.read_bytes())
        except orjson.JSONDecodeError:
            continue
        if not isinstance(data, dict) or "gate" not in data:
            continue
        data["_md"] = str(path.with_suffix(".md").relative_to(ws.root))
        data["_mtime"] = path.stat().st_mtime
        out.append(data)
    return sorted(out, key=lambda d: (d["_mtime"], d["gate"]["id"]))


def find_review_record(ws: Workspace, gate_id: str, run_id: str | None = None) -> tuple[Path, dict[str, Any]]:
    """The newest record of ``gate_id`` (in ``run_id`` when given): its markdown path and JSON."""
    records = [r for r in list_review_records(ws, run_id) if r["gate"]["id"] == gate_id]
    if not records:
        where = f" in run {run_id}" if run_id else ""
        known = sorted({r["gate"]["id"] for r in list_review_records(ws, run_id)})
        raise UsageError(f"no review record for gate {gate_id!r}{where}"
                         + (f" (gates with records: {', '.join(known)})" if known else " (no reviews yet)"))
    rec = records[-1]
    return ws.root / rec["_md"], rec
