"""The ``pipeline`` driver: call a registered pipeline step in-process."""

from __future__ import annotations

import errno
import logging
import traceback

from coordinator.core.errors import STEP_FAULTS, BudgetExceeded
from coordinator.core.plan import CompiledTask
from coordinator.core.ports import DriverContext, DriverTraits, TaskOutcome
from coordinator.core.step import StepContext, StepResult, metrics_problem, resolve_step
from roles.drivers._step_output import step_output_to

log = logging.getLogger(__name__)


class PipelineDriver:
    """Runs ``task.run`` with ``task.params`` in this process."""

    name = "pipeline"
    traits = DriverTraits()

    def run(self, task: CompiledTask, ctx: DriverContext) -> TaskOutcome:
        """Call the step; turn its result or error into an outcome."""
        assert task.run is not None
        spec = resolve_step(task.run, ctx.workspace)
        step_ctx = StepContext(workspace=ctx.workspace, progress=ctx.progress, feedback=ctx.feedback,
                               code_version=spec.code_version,
                               spend=ctx.spend)
        try:
            with step_output_to(ctx.log_file) as printed:
                result = spec.fn(step_ctx, **task.params)
        except BudgetExceeded as e:  # refused before spending: wait for a budget raise, do not fail
            return TaskOutcome(status="waiting", error=str(e), held_by="budget")
        except STEP_FAULTS as e:
            return TaskOutcome(status="failed", error=str(e))
        except SystemExit as e:  # sys.exit() in a step ends the step, not coord
            return TaskOutcome(status="failed", error=f"step {task.run} called sys.exit({e.code!r})")
        except OSError as e:
            if e.errno not in ENVIRONMENT_ERRNOS:
                return _crashed(task, ctx, e)
            where = f" while writing {e.filename}" if e.filename else ""
            return TaskOutcome(status="failed", environment_fault=True,
                               error=f"{e.strerror or e}{where}: free some space, then `coord resume` (or run the "
                                     "plan again once this run has ended); the step runs again")
        except Exception as e:  # a bug in a step must fail the task, not the run
            return _crashed(task, ctx, e)
        if not isinstance(result, StepResult):
            return TaskOutcome(status="failed", error=f"step {task.run} returned {type(result).__name__}; a step "
                               "returns coordinator.StepResult (StepResult() when it has nothing to report)")
        problem = metrics_problem(result.metrics)
        if problem:
            return TaskOutcome(status="failed", error=f"step {task.run} reported a metric coord cannot keep: "
                               f"{problem}")
        notes = list(result.notes)
        if printed.lines:
            notes.append(f"printed {printed.lines} line(s): {ctx.log_file.relative_to(ctx.workspace).as_posix()}")
        return TaskOutcome(status="done", metrics=dict(result.metrics),
                           artifacts=[a.to_dict() for a in result.artifacts], notes=notes,
                           skipped_run=result.skipped, replaced=list(result.replaced))


ENVIRONMENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
"""A step that fails with these failed because of the machine: it runs again on resume."""


def _crashed(task: CompiledTask, ctx: DriverContext, e: Exception) -> TaskOutcome:
    """The outcome of a step that raised: its error in one line, the traceback in the task's log."""
    log_path = _write_traceback(ctx)
    log.debug("step %s crashed", task.run, exc_info=True)  # the console gets the one-line error
    return TaskOutcome(status="failed", error=f"{type(e).__name__}: {e} (traceback in {log_path})")


def _write_traceback(ctx: DriverContext) -> str:
    """Append the exception being handled to the task's log; the log's path, relative to the workspace."""
    ctx.log_file.parent.mkdir(parents=True, exist_ok=True)
    with ctx.log_file.open("a", encoding="utf-8") as fh:
        fh.write(traceback.format_exc())
    return ctx.log_file.relative_to(ctx.workspace).as_posix()
