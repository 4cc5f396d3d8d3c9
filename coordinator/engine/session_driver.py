"""The run's side of claims: the task pool asks :func:`driving` what does a task now.

An assignment a session holds (:mod:`coordinator.engine.task_claims`) is not given to its driver:
:class:`SessionDriver` stands in for it, waits for the session's accepted result, measures it once
more when it takes it (the files may have changed since the report), and hands the run the outcome,
which the pool then checks like any driver's. When the claim is released or its lease runs out, the
real driver does the task after all.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

from coordinator.core.plan import CompiledTask
from coordinator.core.ports import Driver, DriverContext, DriverTraits, TaskOutcome
from coordinator.core.state import REVIEW_HOLD
from coordinator.core.workspace import Workspace
from coordinator.engine import task_claims
from coordinator.engine.accept import accept_failures


@contextlib.contextmanager
def driving(root: Path, run_id: str, task: CompiledTask, driver: Driver) -> Iterator[Driver]:
    """What does ``task`` now: a session that claimed it (the run waits for its result), or ``driver``.
    Steps and commands are coord's own work and never claimed."""
    if task.run is not None or task.command is not None:
        yield driver
        return
    ws = Workspace(root)
    if task_claims.start(ws, run_id, task.id, driver.name) is not None:
        yield SessionDriver(ws, run_id, driver)
        return
    try:
        yield driver
    finally:
        task_claims.unmark_driver(ws, run_id, task.id)


class SessionDriver:
    """Stands in for a task's driver while a session holds the task."""

    name = "session"
    traits: ClassVar[DriverTraits] = DriverTraits()

    def __init__(self, ws: Workspace, run_id: str, fallback: Driver) -> None:
        self.ws, self.run_id, self.fallback = ws, run_id, fallback

    def run(self, task: CompiledTask, ctx: DriverContext) -> TaskOutcome:
        """Wait for the session's accepted result (or the end of its claim) and return it as the outcome."""
        told = False
        while True:
            rec = task_claims.current(self.ws, self.run_id, task.id)
            if rec is None:  # released, or its lease ran out: the driver does it after all
                return self._fall_back(task, ctx)
            if rec["status"] == "reported":
                outcome = self._take(task, rec)
                if outcome is not None:
                    return outcome
            if not told:
                ctx.progress(f"in the hands of {rec['holder']}: waiting for its result", None)
                told = True
            if ctx.cancel.wait(task_claims.POLL_S):
                return TaskOutcome(status="failed", error=f"stopped while waiting for {rec['holder']}, who holds "
                                                          "the task in an interactive session")

    def _take(self, task: CompiledTask, rec: task_claims.ClaimRecord) -> TaskOutcome | None:
        """The outcome of the reported result if it still passes its checks; None when it went back."""
        report = rec["reports"][-1].copy()
        report["files"], problems = task_claims.measure_files(self.ws, [a["path"] for a in report["files"]])
        outcome = task_claims.session_outcome(rec, report)
        failures = problems + accept_failures(self.ws.root, task, outcome)
        if not task_claims.settle(self.ws, rec, report["attempt"], failures):
            return None
        if not task.accept:  # nothing to measure: like a stand-in's answer, it waits for a person's review
            return TaskOutcome(status="waiting", metrics=outcome.metrics, artifacts=outcome.artifacts,
                               notes=outcome.notes, held_by=REVIEW_HOLD,
                               error=f"needs review: it has no accept checks, so nothing coord measured shows the "
                                     f"work {rec['holder']} reported is done; tick it on its board once you have "
                                     "read it (or give it accept checks in the plan)")
        return outcome

    def _fall_back(self, task: CompiledTask, ctx: DriverContext) -> TaskOutcome:
        task_claims.mark_driver(self.ws, self.run_id, task.id, self.fallback.name)
        try:
            return self.fallback.run(task, ctx)
        finally:
            task_claims.unmark_driver(self.ws, self.run_id, task.id)
