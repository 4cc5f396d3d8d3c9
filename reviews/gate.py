"""Gate evaluation: measure the criteria, score, grade, decide, and settle the outcome.

Pure functions over plan specs and records; the coordinator's nodes call them
and perform the side effects (events, review records, task resets).

- :func:`review_gate` measures a gate and records score, grade and verdict; an
  ``auto`` gate is settled at once, ``human`` and ``auto_then_human`` gates wait.
- :func:`settle` turns a final verdict into the gate's status under ``on_fail``:
  approved, deferred (carry the findings), retry (send the reviewed tasks back
  with the findings as feedback) or block.
- :func:`apply_decision` settles a gate as a person decided it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

from coordinator.core.events import now_iso
from coordinator.core.feedback import feedback_record, outcomes
from coordinator.core.grading import format_score, grade_floor, letter_grade, weighted_score
from coordinator.core.plan import GateSpec, Grading
from coordinator.core.state import (
    AttemptSummary,
    CriterionResult,
    DecisionRecord,
    FeedbackRecord,
    GateRecord,
    ModelReview,
    ReviewAttempt,
    Verdict,
)
from reviews.criteria import MetricLookup, TaskText, evaluate, evaluate_all
from reviews.figures import figure
from reviews.gate_status import needs_person as needs_person  # kept here for the engine's imports
from reviews.gate_status import window_open as window_open
from reviews.llm_review import model_feedback

AUTO = "coord (auto)"


def findings_of(results: list[CriterionResult]) -> list[str]:
    """One line per failed criterion: what was measured against what it needed."""
    findings = []
    for r in results:
        if r["passed"]:
            continue
        if r["kind"] == "claims":
            findings.append(f"{r['label']}: {r['detail']}")
            continue
        findings.append(f"{r['label']}: measured {figure(r['measured'])}"
                        + (f" (needs {r['op']} {figure(r['threshold'])})" if r["op"] else "")
                        + (f" — {r['detail']}" if r["detail"] else ""))
    return findings


def decide(spec: GateSpec, results: list[CriterionResult]) -> tuple[Verdict, list[str]]:
    """Verdict from measured criteria: approved, changes_requested or rejected, plus findings."""
    findings = findings_of(results)
    critical_failed = any(r["critical"] and not r["passed"] for r in results)
    score = weighted_score([(r["weight"], r["passed"]) for r in results])
    if critical_failed:
        return "rejected", findings
    if score < spec.pass_score:
        return "changes_requested", findings
    return "approved", findings


def decides_alone(spec: GateSpec) -> bool:
    """True when coord settles the gate right after measuring it (no person, no override window)."""
    return spec.policy == "auto" or (spec.policy == "auto_then_human" and spec.override_window <= 0)


Reviewer = Callable[[list[CriterionResult]], ModelReview]
"""Gives the reviewer model's opinion of the measured criteria and the work behind them
(:class:`reviews.llm_review.ModelReviewer`; the coordinator injects it, so this module stays pure)."""


def review_gate(spec: GateSpec, lookup: MetricLookup, workspace: Path, attempt: int = 1, *,
                grading: Grading | None = None, task_text: TaskText | None = None,
                commit: str | None = None, history: list[AttemptSummary] | None = None,
                reviewer: Reviewer | None = None) -> GateRecord:
    """Measure every criterion of ``spec`` and record score, grade and verdict.

    ``reviewer`` (when given) sees the measured criteria after they are measured; its
    opinion is recorded as ``model_review`` and only ``review`` criteria count it.

    The record is ``waiting``: the caller settles it with :func:`settle` when
    :func:`decides_alone`, opens the override window of an ``auto_then_human``
    gate (already set here) or waits for a person.
    """
    grading = grading or Grading()
    results = evaluate_all(spec.criteria, lookup, workspace, deferrable=True, task_text=task_text)
    model_review = reviewer([r for r in results if r["kind"] != "review"]) if reviewer is not None else None
    for i, check in enumerate(spec.criteria):
        if check.review is not None:  # judged now that the model has answered; the unique name stays
            results[i] = {**evaluate(check, lookup, workspace, model_review=model_review),
                          "name": results[i]["name"]}
    score = weighted_score([(r["weight"], r["passed"]) for r in results])
    verdict, findings = decide(spec, results)
    grade = letter_grade(score, grading)
    rec = GateRecord(status="waiting", score=score, grade=grade, grade_measured=grade, verdict=verdict,
                     criteria=results, findings=findings, deferred=[], decided_at=None, decided_by=None,
                     attempt=attempt, reason=None, policy=spec.policy, on_fail=spec.on_fail,
                     reviewed_at=now_iso(), override_until=None, decision=None,
                     history=list(history or []), commit=commit, model_review=model_review)
    if decides_alone(spec):
        pass
    elif spec.policy == "auto_then_human":
        until = datetime.now(UTC) + timedelta(seconds=spec.override_window)
        rec["override_until"] = until.isoformat(timespec="milliseconds")
        rec["reason"] = f"automatic verdict {verdict}; a person may override until {rec['override_until']}"
    else:
        rec["reason"] = f"measured verdict {verdict} (grade {grade}); waiting for a person"
    return rec


@dataclass
class Settlement:
    """A gate's final outcome for one attempt."""

    update: GateRecord
    retry: bool = False
    """Send the reviewed tasks back with :attr:`feedback`."""
    feedback: list[str] = field(default_factory=list)
    review: FeedbackRecord | None = None
    """The same feedback as data (every earlier attempt's criteria, findings, the note)."""


def _summary(rec: GateRecord) -> AttemptSummary:
    return AttemptSummary(attempt=int(rec.get("attempt") or 1), score=rec.get("score"), grade=rec.get("grade"),
                          verdict=rec.get("verdict"), findings=list(rec.get("findings") or []),
                          reviewed_at=rec.get("reviewed_at"), decision=rec.get("decision"),
                          model_review=rec.get("model_review"), criteria=outcomes(rec.get("criteria") or []))


def _review_feedback(spec: GateSpec, rec: GateRecord, attempt: int, note: str | None,
                     by: str) -> FeedbackRecord:
    """What the next attempt of the reviewed tasks gets as data."""
    earlier = [*rec.get("history", []), _summary(rec)]
    attempts = [ReviewAttempt(attempt=int(h["attempt"]), grade=h.get("grade"), score=h.get("score"),
                              verdict=h.get("verdict"), criteria=list(h.get("criteria") or []))
                for h in earlier]
    model = rec.get("model_review")
    findings = list(model["findings"]) if model and model.get("status") == "reviewed" else []
    return feedback_record(spec.id, attempt + 1, 1 + spec.max_retries, attempts, findings,
                           note, by if note else None)


def settle(spec: GateSpec, rec: GateRecord, verdict: str, *, by: str, note: str | None = None,
           at: str | None = None) -> Settlement:
    """Apply ``on_fail`` to a final ``verdict``: approve, defer, retry with feedback, or block."""
    at = at or now_iso()
    attempt = int(rec.get("attempt") or 1)
    criteria = [cast(CriterionResult, dict(c)) for c in rec.get("criteria") or []]
    base = GateRecord(decided_at=at, decided_by=by)
    if verdict == "approved":
        status = "approved"
    elif spec.on_fail == "retry" and attempt <= spec.max_retries:
        feedback = [f"gate {spec.id} (attempt {attempt}, grade {rec.get('grade')}, "
                    f"{format_score(float(rec.get('score') or 0))}/10): {f}" for f in rec.get("findings") or []]
        feedback += model_feedback(rec.get("model_review"), counted=any(c.review for c in spec.criteria))
        if note:
            feedback.append(f"note from {by}: {note}")
        for c in criteria:
            c["deferred"], c["defer_text"] = False, None
        return Settlement(GateRecord(
            status="pending", attempt=attempt + 1, history=[*rec.get("history", []), _summary(rec)],
            criteria=criteria, deferred=[], override_until=None, decision=rec.get("decision"),
            reason=f"attempt {attempt} {verdict}; reviewed tasks sent back with the findings "
                   f"(retry {attempt} of {spec.max_retries})", **base), retry=True, feedback=feedback,
            review=_review_feedback(spec, rec, attempt, note, by))
    elif spec.on_fail == "defer" and verdict == "changes_requested":
        status = "deferred"
    else:
        status = verdict
    for c in criteria:
        if status == "deferred" and not c["passed"] and not c["critical"]:
            c["deferred"] = True
            c["defer_text"] = c.get("defer_text") or next(
                (f for f in rec.get("findings") or [] if f.startswith(c["label"] + ":")), c["label"])
        elif status != "approved" and status != "deferred":
            c["deferred"], c["defer_text"] = False, None
    deferred = [str(c["defer_text"]) for c in criteria if c.get("deferred") and c.get("defer_text")]
    reason = None
    if status in ("rejected", "changes_requested") and spec.on_fail == "retry":
        reason = f"still {verdict} after {attempt} attempts"
    elif status == "deferred":
        reason = f"{verdict}; findings deferred (on_fail: defer)"
    return Settlement(GateRecord(status=status, criteria=criteria,  # type: ignore[typeddict-item]
                                 deferred=deferred, override_until=None, reason=reason, **base))


def apply_decision(spec: GateSpec, rec: GateRecord, decision: DecisionRecord, grading: Grading) -> Settlement:
    """Settle a waiting gate as a person decided: approve, reject, or override with a grade."""
    update = GateRecord(decision=decision)
    verdict: str
    if decision["action"] == "approve":
        verdict = "approved"
    elif decision["action"] == "reject":
        verdict = "rejected"
    else:
        assert decision["grade"] is not None
        update["grade"] = decision["grade"]
        verdict = "approved" if grade_floor(decision["grade"], grading) >= spec.pass_score else "rejected"
    merged: GateRecord = {**rec, **update}
    out = settle(spec, merged, verdict, by=decision["by"], note=decision["note"], at=decision["at"])
    out.update = {**update, **out.update}
    return out


def decision_applied(rec: GateRecord, decision_id: str) -> bool:
    """True when the gate record (or one of its earlier attempts) holds this decision."""
    decisions = [rec.get("decision"), *(h.get("decision") for h in rec.get("history") or [])]
    return any(d is not None and d["id"] == decision_id for d in decisions)
