"""The reviewer model: an LLM's structured opinion of the evidence coord measured for a gate.

When a gate's ``reviewer`` role is played through the ``llm`` driver (a provider whose key
is set), coord sends it the gate's evidence (:mod:`reviews.evidence`) and parses the answer
into :class:`ReviewFindings` with :func:`roles.providers.complete_structured` (one
corrective retry, then a clear failure). Without a provider nothing is called and the
record says so.

The answer is the model's opinion. It is recorded apart from the measured criteria and,
by default, does not change the verdict; a ``review: {fail_on: …}`` criterion makes it
count (:func:`review_result`).

Never pay twice, never lose it: the answer is written atomically to
``.coord/runs/<run>/reviews/<gate>.<attempt>.llm.json`` before it is used, and a resumed run
that reviews the same attempt of the same gate over the same evidence reuses it. Calls go
to the ledger (role = the reviewer role, task = the gate id), each priced at its worst case
before it is sent: with the budget exhausted, or too little of it left for that worst case,
the model is not called and the record says why.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, cast

import orjson
from pydantic import BaseModel, Field, field_validator

from coordinator.core.errors import BudgetExceeded
from coordinator.core.events import now_iso
from coordinator.core.io import atomic_write_json
from coordinator.core.llm import CallSink, PendingCall, ReservingSink, RunSpend, format_usd
from coordinator.core.plan import Check, CompiledPlan, Severity
from coordinator.core.roles import RoleDefinition
from coordinator.core.state import CriterionResult, ModelFinding, ModelReview, ModelReviewStatus
from reviews.evidence import Evidence, build_evidence
from roles.providers import (
    CallRecord,
    LLMRequest,
    ProviderConfigError,
    ProviderError,
    complete_structured,
    make_provider,
)
from roles.providers.config import provider_config
from roles.providers.secrets import redact

log = logging.getLogger(__name__)

ANSWER_SCHEMA_VERSION = 1
PROMPT_VERSION = "review-1"
"""Part of the evidence fingerprint: a changed prompt is a new review."""
MAX_TOKENS = 4096
SEVERITY_RANK: dict[str, int] = {"blocker": 3, "major": 2, "minor": 1, "info": 0}
FEEDBACK_FINDINGS = 10
"""Model findings handed to an agent on a retry (worst first)."""
SYSTEM = (
    "You are the {role} reviewer ({agent}) of a small team coordinated by coord. Review the evidence of "
    "gate {gate}: the criteria coord measured (their values are facts), the reviewed tasks' artifacts, "
    "excerpts, notes and diffs. Notes are the agents' claims, not facts. Report concrete problems a careful "
    "reviewer would raise, worst first. Severity: blocker (must not ship), major (should be fixed before "
    "shipping), minor (worth fixing), info (observation). Give `file` as a workspace-relative path and "
    "`line` when you can point at one, and `criterion` (a criterion id from the evidence) when a finding is "
    "about one. coord records your answer as your opinion next to its measurements.")


class ReviewFinding(BaseModel):
    """One problem (or observation) the reviewer model reports."""

    severity: Severity = Field(description="blocker | major | minor | info")
    title: str = Field(min_length=1, description="One line.")
    detail: str = Field(default="", description="What is wrong and what to do about it.")
    file: str | None = Field(default=None, description="Workspace-relative path, when the finding is in a file.")
    line: int | None = Field(default=None, ge=1, description="1-based line in `file`.")
    criterion: str | None = Field(default=None, description="Id of the gate criterion this is about, if any.")

    @field_validator("file")
    @classmethod
    def _relative(cls, value: str | None) -> str | None:
        if value is not None and (value.startswith(("/", "~", "\\")) or ".." in Path(value).parts):
            raise ValueError(f"{value!r} must be a workspace-relative path")
        return value or None


class ReviewFindings(BaseModel):
    """The reviewer model's answer."""

    summary: str = Field(description="The review in two or three sentences.")
    recommendation: Literal["approve", "changes_requested", "reject"]
    findings: list[ReviewFinding] = Field(default_factory=list)


class _Meter:
    """Forwards calls to the ledger and keeps this review's own count, failures included."""

    def __init__(self, inner: CallSink | None) -> None:
        self.inner = inner
        self.calls: list[CallRecord] = []

    def record(self, call: CallRecord) -> None:
        self.calls.append(call)
        if self.inner is not None:
            self.inner.record(call)

    def reserve(self, call: CallRecord, what: str) -> PendingCall:
        """The budget's reservation (``BudgetExceeded`` when the worst case does not fit), counted here once settled."""
        inner = self.inner.reserve(call, what) if isinstance(self.inner, ReservingSink) else None
        return _Counted(self, inner)


class _Counted:
    """A reviewer call stored as pending: settled in the ledger and counted in the review."""

    def __init__(self, meter: _Meter, inner: PendingCall | None) -> None:
        self.meter = meter
        self.inner = inner

    def settle(self, call: CallRecord) -> None:
        self.meter.calls.append(call)
        if self.inner is not None:
            self.inner.settle(call)
        elif self.meter.inner is not None:
            self.meter.inner.record(call)


class ModelReviewer:
    """Reviews one attempt of one gate with the reviewer role's model (or says why it did not)."""

    def __init__(self, workspace: Path, run_id: str, plan: CompiledPlan, gate_id: str, attempt: int,
                 role: RoleDefinition, tasks: Mapping[str, Mapping[str, Any]], *,
                 budget: RunSpend | None = None) -> None:
        self.workspace = workspace
        self.run_id = run_id
        self.plan = plan
        self.gate_id = gate_id
        self.attempt = attempt
        self.role = role
        self.tasks = tasks
        self.budget = budget

    @property
    def answer_path(self) -> Path:
        """``.coord/runs/<run>/reviews/<gate>.<attempt>.llm.json``."""
        return self.workspace / ".coord" / "runs" / self.run_id / "reviews" / f"{self.gate_id}.{self.attempt}.llm.json"

    @property
    def log_path(self) -> Path:
        """``.coord/logs/<run>/<gate>.review.log``."""
        return self.workspace / ".coord" / "logs" / self.run_id / f"{self.gate_id}.review.log"

    def _base(self, status: ModelReviewStatus, reason: str | None) -> ModelReview:
        binding = self.role.binding
        return ModelReview(status=status, reason=reason, role=self.role.name, agent=self.role.agent,
                           provider=binding.provider if binding else None, model=self.role.model,
                           attempt=self.attempt, summary=None, recommendation=None, findings=[], calls=0,
                           tokens_in=0, tokens_out=0, cost_usd=0.0, cost_known=True, evidence_sha256=None,
                           evidence_chars=0, evidence_truncated=False, answer_file=None, reused=False,
                           at=now_iso())

    def not_configured_reason(self) -> str | None:
        """Why no model reviews this gate, or None when the role's model does."""
        r = self.role
        if r.driver == "llm" and r.provider not in (None, "offline"):
            return None
        how = f"driver {r.driver!r}" + (f" ({r.driver_reason})" if r.driver_reason else "")
        return (f"no reviewer model configured: role {r.name!r} ({r.agent}) runs through {how}; give it an LLM "
                "provider and set its key to have a model review the evidence")

    def __call__(self, measured: list[CriterionResult]) -> ModelReview:
        """Review the evidence behind ``measured`` (criteria other than ``review`` ones)."""
        why = self.not_configured_reason()
        if why is not None:
            return self._base("not_configured", why)
        held = self.budget.exhausted_for(self.role.name) if self.budget is not None else None
        if held is not None:
            self._log(f"# skipped (attempt {self.attempt})\n{held}")
            return self._base("skipped", f"skipped: {held}")
        evidence = build_evidence(self.workspace, self.plan, self.gate_id, self.attempt, measured, self.tasks)
        fingerprint = _fingerprint(evidence, self.role)
        stored = self._stored(fingerprint)
        if stored is not None:
            log.info("gate %s attempt %d: reusing the stored reviewer answer", self.gate_id, self.attempt)
            self._log(f"# reused the stored answer of attempt {self.attempt} ({self._rel(self.answer_path)}); "
                      "no call made")
            return {**stored, "reused": True}
        answered, paid = self._call(evidence)
        rec = _with(answered, evidence_sha256=fingerprint, evidence_chars=len(evidence.text),
                    evidence_truncated=evidence.truncated, answer_file=self._rel(self.answer_path))
        # Written before anyone uses it: a run killed after this point resumes from the file, paying nothing.
        atomic_write_json(self.answer_path, {"schema_version": ANSWER_SCHEMA_VERSION, "gate": self.gate_id,
                                             "attempt": self.attempt, "evidence_sha256": fingerprint,
                                             "paid": paid, "record": rec})
        return rec

    def _call(self, evidence: Evidence) -> tuple[ModelReview, bool]:
        """The record and whether any call was answered (and so paid for)."""
        binding = self.role.binding
        assert binding is not None
        spend = self.budget.for_task(self.gate_id, self.role.name, self.role.agent) if self.budget else None
        meter = _Meter(spend)
        system = SYSTEM.format(role=self.role.name, agent=self.role.agent, gate=self.gate_id)
        self._log(f"# evidence sent to {binding.provider} {binding.model} (attempt {self.attempt}, "
                  f"{len(evidence.text)} chars{', cut' if evidence.truncated else ''})\n{evidence.text}")
        try:
            provider = make_provider(provider_config(binding), sink=meter)
            answer, _ = complete_structured(provider, LLMRequest.of(evidence.text, system=system,
                                                                    max_tokens=MAX_TOKENS), ReviewFindings)
        except BudgetExceeded as e:  # refused before a call: its worst case does not fit the budget
            self._log(f"# skipped after {len(meter.calls)} call(s)\n{e}")
            paid = any(c.ok for c in meter.calls)
            return _metered(self._base("skipped", f"skipped: {e}"), meter), paid
        except (ProviderError, ProviderConfigError) as e:
            reason = redact(str(e))
            log.warning("gate %s: the reviewer model failed: %s", self.gate_id, reason)
            self._log(f"# failed after {len(meter.calls)} call(s)\n{reason}")
            paid = any(c.ok for c in meter.calls)
            return _metered(self._base("failed", f"the reviewer model failed: {reason}"), meter), paid
        self._log(f"# answer ({len(meter.calls)} call(s))\n{answer.model_dump_json(indent=2)}")
        findings = sorted(answer.findings, key=lambda f: -SEVERITY_RANK[f.severity])
        return _with(_metered(self._base("reviewed", None), meter), summary=redact(answer.summary),
                     recommendation=answer.recommendation,
                     findings=[cast(ModelFinding, {k: redact(v) if isinstance(v, str) else v
                                                   for k, v in f.model_dump().items()}) for f in findings]), True

    def _stored(self, fingerprint: str) -> ModelReview | None:
        path = self.answer_path
        if not path.is_file():
            return None
        try:
            data = orjson.loads(path.read_bytes())
        except orjson.JSONDecodeError:
            return None
        if not isinstance(data, dict) or not data.get("paid", True):
            return None  # no answer was paid for (the API was unreachable): a resume may try again
        if data.get("evidence_sha256") == fingerprint and isinstance(data.get("record"), dict):
            return cast(ModelReview, data["record"])
        # Different evidence for the same attempt: keep the paid answer under its fingerprint.
        path.replace(path.with_name(f"{self.gate_id}.{self.attempt}.{str(data.get('evidence_sha256'))[:12]}.llm.json"))
        return None

    def _rel(self, path: Path) -> str:
        return path.relative_to(self.workspace).as_posix()

    def _log(self, text: str) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("a", encoding="utf-8") as fh:
            fh.write(f"[{now_iso()}] {redact(text)}\n\n")


def _fingerprint(evidence: Evidence, role: RoleDefinition) -> str:
    binding = role.binding
    key = f"{PROMPT_VERSION}\n{binding.provider if binding else None}\n{role.model}\n{role.name}\n{evidence.sha256}"
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _metered(rec: ModelReview, meter: _Meter) -> ModelReview:
    calls = meter.calls
    return _with(rec, calls=len(calls), tokens_in=sum(c.usage.input_tokens + c.usage.cached_tokens for c in calls),
                 tokens_out=sum(c.usage.output_tokens for c in calls),
                 cost_usd=round(sum(c.cost.usd or 0.0 for c in calls), 8),
                 cost_known=all(c.cost.known for c in calls), model=calls[-1].model if calls else rec["model"])


def _with(rec: ModelReview, **changes: Any) -> ModelReview:
    return cast(ModelReview, {**rec, **changes})


def _worst(findings: list[ModelFinding], fail_on: str) -> list[ModelFinding]:
    return [f for f in findings if SEVERITY_RANK[f["severity"]] >= SEVERITY_RANK[fail_on]]


def review_result(check: Check, review: ModelReview | None) -> dict[str, object]:
    """A ``review`` criterion judged from the model's findings; not measured (failed) without them."""
    assert check.review is not None
    fail_on = check.review.fail_on
    out: dict[str, object] = {"kind": "review", "target": "reviewer model", "op": None,
                              "threshold": f"no {fail_on}" + ("" if fail_on == "blocker" else " or worse")}
    if review is None or review["status"] != "reviewed":
        why = review["reason"] if review is not None else "no reviewer model ran for this gate"
        return {**out, "measured": None, "passed": False, "detail": f"not measured: {why}"}
    counts = {s: sum(f["severity"] == s for f in review["findings"]) for s in SEVERITY_RANK}
    shown = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no findings"
    bad = _worst(review["findings"], fail_on)
    detail = f"{review['provider']} {review['model']}: " + (
        "; ".join(f"[{f['severity']}] {f['title']}{_where(f)}" for f in bad[:3]) if bad
        else f"nothing at {fail_on} or worse")
    return {**out, "measured": shown, "passed": not bad, "detail": detail}


def _where(f: ModelFinding) -> str:
    if not f["file"]:
        return ""
    return f" ({f['file']}{':' + str(f['line']) if f['line'] else ''})"


def describe(review: ModelReview) -> str:
    """``anthropic claude-haiku-4-5, 2 call(s), $0.0012`` — who gave the opinion and what it cost."""
    cost = format_usd(review["cost_usd"]) if review["cost_known"] else \
        f"{format_usd(review['cost_usd'])} known, some calls of unknown price"
    return f"{review['provider']} {review['model']}, {review['calls']} call(s), {cost}"


def opinion_line(review: Mapping[str, Any] | None) -> str | None:
    """One line for boards and TEAM_COORDINATION.md: what the gate's reviewer model said, labeled as opinion.

    ``None`` when the reviewer role has no LLM provider (nothing was asked, nothing to show).
    """
    if not review or review.get("status") == "not_configured":
        return None
    who = " ".join(x for x in (review.get("provider"), review.get("model")) if x) or "reviewer model"
    if review.get("status") != "reviewed":
        status = str(review.get("status"))
        reason = str(review.get("reason") or "no reason recorded").removeprefix(f"{status}: ")
        return f"reviewer model {status}: {reason}"
    findings = list(review.get("findings") or [])
    counts = [f"{n} {sev}" for sev in ("blocker", "major", "minor", "info")
              if (n := sum(f.get("severity") == sev for f in findings))]
    found = f"{len(findings)} finding(s) ({', '.join(counts)})" if findings else "no findings"
    return f"reviewer model ({who}, opinion): recommends {review.get('recommendation')}, {found}"


def model_feedback(review: ModelReview | None, counted: bool) -> list[str]:
    """Feedback lines for an agent whose work goes back: the model's findings, labeled as its opinion."""
    if review is None or review["status"] != "reviewed" or not review["findings"]:
        return []
    weight = "counted by the gate's review criterion" if counted else "advisory, not a measurement"
    head = (f"reviewer model opinion ({describe(review)}; {weight}), recommends {review['recommendation']}: "
            f"{review['summary'] or ''}").strip()
    lines = [head]
    for f in review["findings"][:FEEDBACK_FINDINGS]:
        detail = f" — {f['detail'][:500]}" if f["detail"] else ""
        crit = f" [criterion {f['criterion']}]" if f["criterion"] else ""
        lines.append(f"reviewer model: [{f['severity']}] {f['title']}{_where(f)}{crit}{detail}")
    return lines
