"""Gate evaluation: measure the criteria, score, grade, decide.

Approval policies and human decisions build on :func:`decide`; the
coordinator calls :func:`review_gate` when every task the gate reviews is done.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from coordinator.events import now_iso
from coordinator.plan import GateSpec
from coordinator.state import CriterionResult, GateRecord
from reviews.criteria import MetricLookup, evaluate
from reviews.grading import letter_grade, weighted_score


def decide(spec: GateSpec, results: list[CriterionResult]) -> tuple[str, list[str]]:
    """Verdict from measured criteria: approved, changes_requested or rejected, plus findings."""
    findings = []
    for r in results:
        if not r["passed"]:
            measured = r["measured"]
            findings.append(f"{r['label']}: measured {measured!r}"
                            + (f" (needs {r['op']} {r['threshold']})" if r["op"] else "")
                            + (f" — {r['detail']}" if r["detail"] else ""))
    critical_failed = any(r["critical"] and not r["passed"] for r in results)
    score = weighted_score([(r["weight"], r["passed"]) for r in results])
    if critical_failed:
        return "rejected", findings
    if score < spec.pass_score:
        return "changes_requested", findings
    return "approved", findings


def review_gate(spec: GateSpec, lookup: MetricLookup, workspace: Path, attempt: int = 1) -> GateRecord:
    """Measure every criterion of ``spec`` and record score, grade and verdict."""
    results = [evaluate(c, lookup, workspace, deferrable=True) for c in spec.criteria]
    score = weighted_score([(r["weight"], r["passed"]) for r in results])
    verdict, findings = decide(spec, results)
    if verdict != "approved":  # nothing is deferred by a gate that did not let the work through
        for r in results:
            r["deferred"] = False
    deferred = [c.defer for c, r in zip(spec.criteria, results, strict=True) if r["deferred"] and c.defer]
    status: Any = verdict if spec.policy == "auto" else "waiting"
    return GateRecord(status=status, score=score, grade=letter_grade(score), verdict=verdict,
                      criteria=results, findings=findings,
                      deferred=deferred,
                      decided_at=now_iso() if spec.policy == "auto" else None,
                      decided_by="coord (auto)" if spec.policy == "auto" else None,
                      attempt=attempt, reason=None)
