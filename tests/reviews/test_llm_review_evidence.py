"""What a reviewer model is shown (bounded, redacted, the branch diff of cli work) and how plans
declare a `review:` criterion (validated with file:line → path errors)."""

from __future__ import annotations

import hashlib

import pytest
from git import Actor, Repo

from coordinator.core.errors import PlanError
from coordinator.core.plan import Check, CompiledPlan
from coordinator.core.state import CriterionResult, ModelReview
from coordinator.engine.plan_loader import compile_plan, parse_plan
from reviews import evidence
from reviews.evidence import EXCERPT_CHARS, MAX_EXCERPTS, build_evidence
from reviews.llm_review import ReviewFindings, review_result

PLAN = """name: p
tasks:
  - {id: a, title: Implement the parser, role: execution, instructions: "Write src/parser.py"}
gates:
  - id: g
    after: [a]
    criteria:
      - {id: tests, metric: a.files_changed, op: ">=", value: 1}
      - {id: no_blockers, review: {fail_on: major}}
"""


def _plan() -> CompiledPlan:
    spec, located = parse_plan(PLAN, "p.yaml")
    return compile_plan(spec, located, PLAN)


MEASURED = CriterionResult(name="tests", label="a.files_changed >= 1", kind="metric", target="a.files_changed",
                           op=">=", threshold=1, measured=1, passed=True, critical=False, weight=1.0,
                           deferred=False, detail=None)


def _commit(repo: Repo, msg: str) -> str:
    who = Actor("T", "t@example.invalid")
    repo.git.add("-A")
    return repo.index.commit(msg, author=who, committer=who).hexsha


@pytest.mark.slow
def test_evidence_of_a_cli_task_carries_its_branch_diff(tmp_path):
    repo = Repo.init(tmp_path, initial_branch="main")
    (tmp_path / "README.md").write_text("# x\n")
    _commit(repo, "start")
    repo.git.checkout("-b", "coord/r1/a")
    (tmp_path / "src").mkdir()
    (tmp_path / "src/parser.py").write_text("def parse(text):\n    return eval(text)\n")
    head = _commit(repo, "agent work")
    repo.git.checkout("main")
    tasks = {"a": {"status": "done", "driver": "cli", "agent": "cursor", "notes": ["all 12 tests pass"],
                   "metrics": {"branch": "coord/r1/a", "base_branch": "main", "commit": head, "files_changed": 1},
                   "artifacts": [{"path": "src/parser.py", "sha256": "ab" * 32, "bytes": 40, "rows": None}]}}
    ev = build_evidence(tmp_path, _plan(), "g", 1, [MEASURED], tasks)
    assert "[PASS] `tests` a.files_changed >= 1" in ev.text and "Write src/parser.py" in ev.text
    assert "claims, not measurements" in ev.text and "all 12 tests pass" in ev.text
    assert "src/parser.py | 2 ++" in ev.text and "+    return eval(text)" in ev.text
    assert ev.sha256 == hashlib.sha256(ev.text.encode()).hexdigest() and not ev.truncated


def test_evidence_is_bounded_and_redacted(tmp_path, monkeypatch):
    monkeypatch.setenv("SOME_API_KEY", "supersecretvalue-123456")
    (tmp_path / "out").mkdir()
    (tmp_path / "out/leak.md").write_text("token sk-ant-api03-abcdefghijklmnopqrstuvwxyz and supersecretvalue-123456\n")
    arts = [{"path": "out/leak.md", "sha256": "cd" * 32, "bytes": 10, "rows": None}]
    for i in range(30):
        (tmp_path / f"out/big{i}.txt").write_text("x" * 50_000)
        arts.append({"path": f"out/big{i}.txt", "sha256": "ef" * 32, "bytes": 50_000, "rows": None})
    tasks = {"a": {"status": "done", "driver": "pipeline", "notes": ["n" * 10_000], "artifacts": arts}}
    ev = build_evidence(tmp_path, _plan(), "g", 1, [MEASURED], tasks)
    assert "sk-ant-api03-abcdefghij" not in ev.text and "supersecretvalue" not in ev.text
    assert "[REDACTED" in ev.text
    assert f"[… first {EXCERPT_CHARS} chars of 50000 bytes]" in ev.text
    assert "x" * (EXCERPT_CHARS + 1) not in ev.text
    assert ev.text.count("excerpt:") == MAX_EXCERPTS and not ev.truncated
    monkeypatch.setattr(evidence, "MAX_EVIDENCE_CHARS", 5_000)
    cut = build_evidence(tmp_path, _plan(), "g", 1, [MEASURED], tasks)
    assert cut.truncated and cut.text.endswith("[evidence cut at 5000 characters]")
    assert len(cut.text) < 5_100


def _review(status: str, findings: list[dict] | None = None, reason: str | None = None) -> ModelReview:
    return ModelReview(status=status, reason=reason, role="quality", agent="codex",  # type: ignore[typeddict-item]
                       provider="anthropic", model="m", attempt=1, summary="s", recommendation="approve",
                       findings=findings or [], calls=1, tokens_in=1, tokens_out=1, cost_usd=0.0,
                       cost_known=True, evidence_sha256=None, evidence_chars=0, evidence_truncated=False,
                       answer_file=None, reused=False, at="now")


def test_review_criterion_counts_findings_at_or_above_its_severity():
    check = Check(review={"fail_on": "major"})
    minor = {"severity": "minor", "title": "nit", "detail": "", "file": None, "line": None, "criterion": None}
    major = {**minor, "severity": "major", "title": "wrong total", "file": "a.py", "line": 3}
    assert review_result(check, _review("reviewed", [minor]))["passed"] is True
    out = review_result(check, _review("reviewed", [major, minor]))
    assert (out["passed"], out["measured"]) == (False, "1 major, 1 minor")
    assert "[major] wrong total (a.py:3)" in str(out["detail"])
    for status, why in (("not_configured", "no reviewer model configured: role 'quality'"),
                        ("failed", "the reviewer model failed: bad JSON"), ("skipped", "skipped: budget exhausted")):
        out = review_result(check, _review(status, reason=why))
        assert out["passed"] is False and out["measured"] is None and out["detail"] == f"not measured: {why}"
    assert review_result(check, None)["detail"] == "not measured: no reviewer model ran for this gate"
    assert check.describe() == "reviewer model reports no major or blocker finding" and check.name == "review_major"


def test_findings_must_point_inside_the_workspace():
    with pytest.raises(ValueError, match="workspace-relative"):
        ReviewFindings.model_validate({"summary": "s", "recommendation": "reject", "findings": [
            {"severity": "blocker", "title": "t", "file": "../../etc/passwd"}]})


def test_plan_names_file_and_line_of_a_bad_review_criterion():
    text = """name: p
tasks:
  - {id: a, title: A, role: lead, run: t_noop, accept: [{review: {fail_on: blocker}}]}
gates:
  - id: g
    after: [a]
    criteria:
      - {id: ok, metric: a.value, op: ">=", value: 0}
      - {review: {fail_on: critical}}
      - {review: {fail_on: major, when: always}}
      - {review: {}, metric: a.value, value: 1}
"""
    with pytest.raises(PlanError) as info:
        parse_plan(text, "p.yaml")
    msg = str(info.value)
    assert "p.yaml:3 → tasks[0].accept: accept[0]: a 'review' check applies to gates only" in msg
    assert "p.yaml:9 → gates[0].criteria[1].review.fail_on: Input should be 'blocker', 'major' or 'minor'" in msg
    assert "p.yaml:10 → gates[0].criteria[2].review.when: unknown field" in msg
    assert ("p.yaml:11 → gates[0].criteria[3]: a check needs exactly one of 'metric', 'file', 'command', "
            "'claims' or 'review' (got metric, review)") in msg
