"""The evidence a reviewer model reads: what coord measured about a gate, bounded in size.

Everything here comes from coord's own records — each criterion's measured value,
threshold and result; the reviewed tasks' artifacts (path, sha256, size, a short
excerpt of text files), their notes (marked as the agent's claims), metrics and errors;
and for tasks a coding-agent CLI did in a git worktree, the diff of their branch.

The prompt is bounded: every part has its own cap and the whole text is cut at
:data:`MAX_EVIDENCE_CHARS` (about 10k tokens), so a review costs about the same
whatever the tasks produced. Secrets are redacted before anything is sent.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coordinator.core.plan import CompiledPlan
from coordinator.core.ports import driver_traits
from coordinator.core.state import CriterionResult
from roles.providers.secrets import redact

MAX_EVIDENCE_CHARS = 40_000
"""The whole evidence text (≈10k tokens): the bound on a review's prompt."""
EXCERPT_CHARS = 1_500
"""Per text artifact."""
MAX_EXCERPTS = 12
"""Text artifacts excerpted per gate (the others are listed with their sha256 only)."""
MAX_ARTIFACTS = 40
"""Artifacts listed per task."""
DIFF_CHARS = 8_000
"""Per task: the unified diff of its branch."""
NOTES_CHARS = 2_000
INSTRUCTIONS_CHARS = 2_000
METRICS_CHARS = 1_500
_TEXT_SUFFIXES = {".md", ".txt", ".json", ".jsonl", ".yaml", ".yml", ".py", ".csv", ".toml", ".rst", ".log",
                  ".js", ".ts", ".sh", ".cfg", ".ini", ".html", ""}


@dataclass(frozen=True)
class Evidence:
    """The evidence text of one gate attempt and its fingerprint."""

    text: str
    sha256: str
    truncated: bool


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"\n[… cut at {limit} of {len(text)} chars]"


def _criterion_line(c: CriterionResult) -> str:
    need = f"{c['op']} {c['threshold']}" if c["op"] else (str(c["threshold"]) if c["threshold"] else "—")
    flags = ", ".join(x for x in ("critical" if c["critical"] else "", f"weight {c['weight']:g}") if x)
    line = (f"- [{'PASS' if c['passed'] else 'FAIL'}] `{c['name']}` {c['label']} ({c['kind']}; {flags}): "
            f"measured {c['measured']!r}, needs {need}")
    if c.get("detail"):
        line += f" — {c['detail']}"
    for cl in (c.get("claims") or [])[:5]:
        line += f"\n  - claim \"{cl['text']}\": claimed {cl['claimed']}, measured {cl['measured']}" \
                f"{'' if cl['matches'] else ' (DISAGREES)'}"
    return line


def _excerpt(path: Path) -> str | None:
    if path.suffix.lower() not in _TEXT_SUFFIXES or not path.is_file():
        return None
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(EXCERPT_CHARS * 4)
    if b"\0" in head:
        return None  # binary
    text = head.decode("utf-8", errors="replace")
    if len(text) <= EXCERPT_CHARS and size <= len(head):
        return text
    return text[:EXCERPT_CHARS] + f"\n[… first {EXCERPT_CHARS} chars of {size} bytes]"


def _branch_diff(workspace: Path, metrics: Mapping[str, Any]) -> str:
    """``git diff --stat`` and a bounded diff of a cli task's branch against where it started."""
    branch, base = metrics.get("branch"), metrics.get("base_branch")
    if not branch or not base:
        return "(no branch recorded)"
    head = str(metrics.get("commit") or branch)
    # start-up: GitPython loads only for a task whose work is on a branch
    from git import GitCommandError, InvalidGitRepositoryError, NoSuchPathError, Repo

    try:
        repo = Repo(workspace, search_parent_directories=True)
        # Three dots: changes on the branch since it left the base, whatever the base did since.
        stat = repo.git.diff("--stat", f"{base}...{head}")
        diff = repo.git.diff("--no-color", f"{base}...{head}")
    except (GitCommandError, InvalidGitRepositoryError, NoSuchPathError) as e:
        return f"(diff unavailable: {str(e).strip().splitlines()[-1][:200] if str(e).strip() else type(e).__name__})"
    return (f"diff --stat {base}...{branch}:\n```\n{stat or '(no changes)'}\n```\n"
            f"```diff\n{_cut(diff, DIFF_CHARS)}\n```")


def _task_section(workspace: Path, plan: CompiledPlan, tid: str, rec: Mapping[str, Any],
                  excerpts_left: list[int]) -> str:
    task = plan.tasks[tid]
    lines = [f"### Task `{tid}` — {task.title}",
             f"role {task.role}; driver {rec.get('driver', '?')}; agent {rec.get('agent', '?')}; "
             f"status {rec.get('status', '?')}; dispatch {rec.get('dispatch', 1)}"]
    if task.instructions:
        lines += ["Instructions:", _cut(task.instructions.strip(), INSTRUCTIONS_CHARS)]
    elif task.run:
        lines.append(f"Pipeline step `{task.run}` with {json.dumps(task.params, default=str)[:500]}")
    if rec.get("error"):
        lines.append(f"Error: {_cut(str(rec['error']), 800)}")
    notes = [str(n) for n in rec.get("notes") or []]
    if notes:
        lines += ["Notes (the agent's own words — claims, not measurements):",
                  _cut("\n".join(f"- {n}" for n in notes), NOTES_CHARS)]
    feedback = [str(f) for f in rec.get("feedback") or []]
    if feedback:
        lines += ["Feedback an earlier review sent back with this task:",
                  _cut("\n".join(f"- {f}" for f in feedback), NOTES_CHARS)]
    metrics = rec.get("metrics") or {}
    if metrics:
        lines.append("Metrics recorded by coord: " + _cut(json.dumps(metrics, sort_keys=True, default=str),
                                                           METRICS_CHARS))
    arts = list(rec.get("artifacts") or [])
    if arts:
        lines.append("Artifacts:")
    in_worktree = driver_traits(rec.get("driver")).worktree
    worktree = metrics.get("worktree") if in_worktree else None
    for art in arts[:MAX_ARTIFACTS]:
        rel = str(art.get("path", ""))
        rows = f", {art['rows']} rows" if art.get("rows") is not None else ""
        lines.append(f"- `{rel}` sha256 {art.get('sha256', '?')}, {art.get('bytes', '?')} bytes{rows}")
        if excerpts_left[0] <= 0:
            continue
        candidates = [workspace / str(worktree) / rel] if worktree else []
        found = next((p for p in [*candidates, workspace / rel] if p.is_file()), None)
        text = _excerpt(found) if found is not None else None
        if text is not None:
            excerpts_left[0] -= 1
            lines.append(f"  excerpt:\n```\n{text}\n```")
    if len(arts) > MAX_ARTIFACTS:
        lines.append(f"- … and {len(arts) - MAX_ARTIFACTS} more artifacts")
    if in_worktree:
        lines += ["Git changes of the task's branch:", _branch_diff(workspace, metrics)]
    return "\n".join(lines)


def build_evidence(workspace: Path, plan: CompiledPlan, gate_id: str, attempt: int,
                   measured: list[CriterionResult], tasks: Mapping[str, Mapping[str, Any]]) -> Evidence:
    """The redacted, bounded evidence text of one gate attempt (criteria first, then each reviewed task)."""
    gate = plan.gates[gate_id]
    parts = [f"# Gate `{gate_id}` — {gate.title or gate_id}",
             f"Attempt {attempt}; pass score {gate.pass_score}/10; policy {gate.policy}; on fail {gate.on_fail}.",
             "", "## Criteria measured by coord", *(_criterion_line(c) for c in measured)]
    if not measured:
        parts.append("- (no measured criteria)")
    parts += ["", "## Reviewed tasks"]
    excerpts_left = [MAX_EXCERPTS]
    for tid in plan.gate_after[gate_id]:
        parts += [_task_section(workspace, plan, tid, tasks.get(tid) or {}, excerpts_left), ""]
    text = redact("\n".join(parts))
    truncated = len(text) > MAX_EVIDENCE_CHARS
    if truncated:
        text = text[:MAX_EVIDENCE_CHARS] + f"\n\n[evidence cut at {MAX_EVIDENCE_CHARS} characters]"
    return Evidence(text, hashlib.sha256(text.encode("utf-8")).hexdigest(), truncated)
