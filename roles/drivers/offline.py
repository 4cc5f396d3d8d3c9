"""The ``offline`` driver: a deterministic local stand-in for an LLM agent.

Used when no real agent is configured. It does not pretend to be clever: it
writes a response document that restates the assignment as a checklist, says
plainly that it came from the offline stand-in, and leaves acceptance to the
task's checks, which coord runs like for any other driver. An assignment with no
checks is left waiting for review (``needs review``): nothing measured says it is
done, so only a person's tick on the board makes it done.
"""

from __future__ import annotations

import hashlib
import re

from coordinator.core.io import atomic_write_bytes
from coordinator.core.plan import CompiledTask
from coordinator.core.ports import DriverContext, DriverTraits, TaskOutcome
from coordinator.core.state import REVIEW_HOLD

LABEL = "offline stand-in (no LLM was called)"


def _sentences(text: str) -> list[str]:
    parts = re.split(r"(?<=[.!?])\s+|\n+[-*]\s*|\n{2,}", text.strip())
    return [p.strip(" -*\n") for p in parts if p.strip(" -*\n")]


class OfflineDriver:
    """Answers assignments deterministically from the instructions alone."""

    name = "offline"
    traits = DriverTraits(stand_in=True)

    def run(self, task: CompiledTask, ctx: DriverContext) -> TaskOutcome:
        """Write the stand-in response for the task."""
        instructions = task.instructions or task.title
        digest = hashlib.sha256(f"{task.id}\n{instructions}".encode()).hexdigest()[:12]
        steps = _sentences(instructions)
        lines = [
            f"# {task.title}",
            "",
            f"> Response by the {LABEL} for role **{ctx.role.name}** ({ctx.role.agent}), "
            f"attempt {ctx.attempt}.",
            "",
            "## Checklist derived from the instructions",
            "",
            *[f"- [ ] {s}" for s in steps],
        ]
        if ctx.feedback:
            lines += ["", "## Review feedback to address", "", *[f"- {f}" for f in ctx.feedback.lines]]
        lines += ["", f"Fingerprint: `{digest}`", ""]
        rel = f"reports/assignments/{re.sub(r'[^A-Za-z0-9_.-]', '_', task.id)}.md"
        body = "\n".join(lines).encode("utf-8")
        atomic_write_bytes(ctx.workspace / rel, body)
        artifact = {"path": rel, "sha256": hashlib.sha256(body).hexdigest(), "bytes": len(body), "rows": None}
        metrics = {"checklist_items": len(steps), "offline": True}
        notes = [f"answered by the {LABEL}"]
        if not task.accept:
            # Nothing to measure: a stand-in's checklist is not the work done. A person reads it and
            # ticks the task (or the plan gives it accept checks); until then it is not done.
            board = f"task_boards/{ctx.role.board_name}_TASKS.md"
            return TaskOutcome(status="waiting", metrics=metrics, artifacts=[artifact], notes=notes,
                               held_by=REVIEW_HOLD,
                               error=f"needs review: it has no accept checks, so nothing shows the work is done; "
                                     f"read {rel} and tick it on {board} (or give it accept checks in the plan)")
        return TaskOutcome(status="done", metrics=metrics, artifacts=[artifact], notes=notes)
