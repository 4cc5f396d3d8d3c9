"""The ``llm`` driver: an assignment answered by an LLM API (Anthropic, OpenAI, OpenAI-compatible).

The model gets the task's EXECUTE_NOW content and must answer with a structured
:class:`AssignmentAnswer`: a summary, the files it delivers (workspace-relative paths
and their content) and notes. coord writes the files atomically — never outside the
workspace or into ``.coord/`` — plus a response record under ``reports/assignments/``,
then runs the task's accept checks itself; the model's claims count for nothing.

Every call goes to the ledger through ``ctx.spend`` with tokens and cost, priced at its
worst case before it is sent: a call that may cost more than is left of the budget is not
sent, and the task waits, held by the budget. The prompt and the answer are logged to
``.coord/logs/<run>/<task>.log`` with secrets redacted; a configured secret the model
echoes is masked in the files it delivers too.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from pydantic import BaseModel, Field

from coordinator.core.errors import BudgetExceeded, WorkspaceEscapeError
from coordinator.core.io import atomic_write_bytes
from coordinator.core.llm import format_usd
from coordinator.core.plan import CompiledTask
from coordinator.core.ports import DriverContext, DriverTraits, TaskOutcome
from coordinator.core.run_store import load_run_plan, read_status_tasks
from coordinator.core.step import resolve_in_workspace
from coordinator.core.workspace import Workspace
from roles.providers import (
    Completion,
    LLMRequest,
    ProviderError,
    complete_structured,
    make_provider,
)
from roles.providers.config import provider_config
from roles.providers.secrets import redact
from roles.task_view import execute_now_text

MAX_TOKENS = 8192
SYSTEM = ("You are the {role} agent ({agent}) of a small team coordinated by coord. Do the assignment below. "
          "Deliver every file it asks for in `deliverables` (workspace-relative paths, full file content). "
          "coord writes your files and then measures the acceptance checks itself: claims in your summary "
          "are not counted.")


class Deliverable(BaseModel):
    """A file the model delivers."""

    path: str = Field(description="Workspace-relative path, e.g. reports/assignments/notes.md")
    content: str


class AssignmentAnswer(BaseModel):
    """What an LLM returns for an assignment."""

    summary: str = Field(description="What was done, in a few sentences.")
    deliverables: list[Deliverable] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list, description="Risks, open questions, follow-ups.")


def _safe_name(task_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", task_id)


COORD_FILES = re.compile(r"(task_boards/[^/]+\.md|TEAM_COORDINATION\.md|coord\.yaml|plans/[^/]+\.ya?ml)")
"""Files coord renders or reads as its own settings: a model's deliverable does not replace them."""


def _target(ws: Path, rel: str) -> Path:
    if not rel.strip():
        raise WorkspaceEscapeError("a deliverable needs a path (it was empty)")
    path = resolve_in_workspace(ws, rel)
    inside = path.relative_to(ws.resolve())
    if path == ws.resolve() or ".coord" in inside.parts:
        raise WorkspaceEscapeError(f"path {rel!r} points into coord's own state")
    if COORD_FILES.fullmatch(inside.as_posix()):
        raise WorkspaceEscapeError(f"path {rel!r} is a file coord renders or reads as settings (boards, "
                                   "TEAM_COORDINATION.md, coord.yaml, plans/); a deliverable goes elsewhere")
    if path.is_dir():
        raise WorkspaceEscapeError(f"path {rel!r} is a directory; a deliverable is a file")
    return path


def _artifact(ws: Path, path: Path, body: bytes) -> dict[str, object]:
    return {"path": path.relative_to(ws.resolve()).as_posix(), "sha256": hashlib.sha256(body).hexdigest(),
            "bytes": len(body), "rows": None}


class LLMDriver:
    """Answers an assignment through the role's LLM provider."""

    name = "llm"
    traits = DriverTraits(paid_unless_free_provider=True)

    def run(self, task: CompiledTask, ctx: DriverContext) -> TaskOutcome:
        """Prompt the model, write its deliverables and a response record, report usage and cost."""
        binding = ctx.role.binding
        if binding is None or binding.provider is None:
            return TaskOutcome(status="failed", error=f"role {ctx.role.name!r} has driver 'llm' but no provider")
        calls: list[Completion] = []
        log = _Log(ctx.log_file)
        try:
            provider = make_provider(provider_config(binding), sink=ctx.spend)
            prompt = execute_now_text(load_run_plan(Workspace.at(ctx.workspace), ctx.run_id), ctx.role,
                                      read_status_tasks(Workspace.at(ctx.workspace), ctx.run_id), task.id)
            log.write(f"# prompt ({provider.name} {provider.model})\n{prompt}")
            system = SYSTEM.format(role=ctx.role.name, agent=ctx.role.agent)
            answer, calls = complete_structured(provider, LLMRequest.of(prompt, system=system,
                                                                        max_tokens=MAX_TOKENS), AssignmentAnswer)
        except BudgetExceeded as e:  # refused before the call: wait for a budget raise, do not fail
            log.write(f"# held by the budget\n{e}")
            return TaskOutcome(status="waiting", error=str(e), held_by="budget")
        except ProviderError as e:
            calls = calls or []
            log.write(f"# failed\n{e}")
            return TaskOutcome(status="failed", error=redact(str(e)), cost_usd=_known(calls))
        log.write(f"# answer\n{answer.model_dump_json(indent=2)}")
        ws = ctx.workspace
        artifacts = []
        try:  # every path is checked before any file is written
            targets = [(_target(ws, redact(d.path)), d) for d in answer.deliverables]
        except WorkspaceEscapeError as e:
            return TaskOutcome(status="failed", error=f"the model asked for a deliverable coord does not write "
                               f"(nothing was written): {e}", cost_usd=_known(calls))
        for path, d in targets:
            body = redact(d.content).encode("utf-8")  # a key the model echoes never lands in a file
            atomic_write_bytes(path, body)
            artifacts.append(_artifact(ws, path, body))
        record = self._record(task, ctx, answer, calls)
        artifacts.append(record)
        last = calls[-1]
        metrics: dict[str, object] = {
            "llm_calls": len(calls), "http_attempts": sum(c.attempts for c in calls),
            "tokens_in": sum(c.usage.input_tokens + c.usage.cached_tokens for c in calls),
            "tokens_out": sum(c.usage.output_tokens for c in calls), "deliverables": len(answer.deliverables),
            "cost_usd": _known(calls) if all(c.cost.known for c in calls) else None,
            "cost_known": all(c.cost.known for c in calls)}
        notes = [f"answered by {last.provider} model {last.model}"] + \
            [c.cost.flag for c in calls if c.cost.flag][:1] + answer.notes[:5]
        return TaskOutcome(status="done", metrics=metrics, artifacts=artifacts, notes=notes,
                           cost_usd=_known(calls))

    def _record(self, task: CompiledTask, ctx: DriverContext, answer: AssignmentAnswer,
                calls: list[Completion]) -> dict[str, object]:
        last = calls[-1]
        cost = "unknown (" + (last.cost.flag or "no price") + ")" if not all(c.cost.known for c in calls) \
            else format_usd(_known(calls))
        lines = [f"# {task.title}", "",
                 f"> Answer by **{last.provider}** model `{last.model}` for role **{ctx.role.name}** "
                 f"({ctx.role.agent}), attempt {ctx.attempt}; {len(calls)} call(s), cost {cost}.", "",
                 "## Summary", "", answer.summary, ""]
        if answer.deliverables:
            lines += ["## Deliverables", "", *[f"- `{d.path}`" for d in answer.deliverables], ""]
        if answer.notes:
            lines += ["## Notes", "", *[f"- {n}" for n in answer.notes], ""]
        body = redact("\n".join(lines)).encode("utf-8")
        path = ctx.workspace / "reports" / "assignments" / f"{_safe_name(task.id)}.response.md"
        atomic_write_bytes(path, body)
        return _artifact(ctx.workspace, path, body)


def _known(calls: list[Completion]) -> float:
    return round(sum(c.cost.usd or 0.0 for c in calls), 8)


class _Log:
    """Appends redacted sections to the task's log file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, text: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(redact(text) + "\n\n")
