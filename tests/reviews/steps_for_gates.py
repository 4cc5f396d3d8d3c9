"""Pipeline steps the gate tests call (registered on import)."""

from __future__ import annotations

import hashlib
import time

from coordinator.core.io import atomic_write_text
from coordinator.core.step import Artifact, StepContext, StepResult, WsPath, step


def _artifact(ctx: StepContext, rel: str) -> Artifact:
    data = ctx.path(rel).read_bytes()
    return Artifact(rel, hashlib.sha256(data).hexdigest(), len(data))


@step("g_fix_with_feedback")
def g_fix_with_feedback(ctx: StepContext, *, out: WsPath = WsPath("out/work.md")) -> StepResult:
    """Do poor work at first; once a review's findings come back as feedback, fix it.

    Every run appends the feedback it saw to ``out/feedback_seen.txt`` so tests can tell.
    """
    lines = ctx.feedback.lines if ctx.feedback is not None else ()
    seen = ctx.path("out/feedback_seen.txt")
    seen.parent.mkdir(parents=True, exist_ok=True)
    with seen.open("a", encoding="utf-8") as fh:
        fh.write(f"run {len(seen.read_text().splitlines()) if seen.exists() else 0}: "
                 + (" | ".join(lines) or "(no feedback)") + "\n")
    fixed = any("quality" in f for f in lines)
    board = ctx.path("task_boards/CURSOR_EXECUTE_NOW.md")
    if lines and board.exists():  # keep what the execution agent's board showed during the retry
        atomic_write_text(ctx.path("out/execute_now_seen.md"), board.read_text(encoding="utf-8"))
    atomic_write_text(ctx.path(out), "fixed after review\n" if fixed else "first draft\n")
    return StepResult(metrics={"quality": 0.95 if fixed else 0.2}, artifacts=[_artifact(ctx, out)])


@step("g_count")
def g_count(ctx: StepContext, *, file: WsPath = WsPath("out/side_effects.txt"), label: str = "x") -> StepResult:
    """A deliberately non-idempotent side effect: append one line per run."""
    path = ctx.path(file)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(f"{label}\n")
    return StepResult(metrics={"lines": len(path.read_text().splitlines())})


@step("g_claim")
def g_claim(ctx: StepContext, *, text: str, out: WsPath = WsPath("out/agent_report.md"),
            note: str = "") -> StepResult:
    """Write what an agent 'reports' (claims included) and a note."""
    atomic_write_text(ctx.path(out), text)
    return StepResult(metrics={"written": True}, artifacts=[_artifact(ctx, out)],
                      notes=[note] if note else [])


@step("g_sleep")
def g_sleep(ctx: StepContext, *, seconds: float = 1.0) -> StepResult:
    """Sleep, so a test has a task running while something else happens."""
    time.sleep(seconds)
    return StepResult(metrics={"slept": seconds})
