"""The ``pipeline`` driver: call a registered pipeline step in-process."""

from __future__ import annotations

import logging
import traceback

from coordinator.core.errors import STEP_FAULTS, BudgetExceeded
from coordinator.core.plan import CompiledTask
from coordinator.core.ports import DriverContext, DriverTraits, TaskOutcome
from coordinator.core.step import StepContext, resolve_step

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
            result = spec.fn(step_ctx, **task.params)
        except BudgetExceeded as e:  # refused before spending: wait for a budget raise, do not fail
            return TaskOutcome(status="waiting", error=str(e), held_by="budget")
        except STEP_FAULTS as e:
            return TaskOutcome(status="failed", error=str(e))
        except Exception as e:  # a bug in a step must fail the task, not the run
            ctx.log_file.parent.mkdir(parents=True, exist_ok=True)
            with ctx.log_file.open("a", encoding="utf-8") as fh:
                fh.write(traceback.format_exc())
            log.exception("step %s crashed", task.run)
            return TaskOutcome(status="failed", error=f"{type(e).__name__}: {e} (traceback in "
                               f"{ctx.log_file.relative_to(ctx.workspace)})")
        return TaskOutcome(status="done", metrics=dict(result.metrics),
                           artifacts=[a.to_dict() for a in result.artifacts], notes=list(result.notes),
                           skipped_run=result.skipped, replaced=list(result.replaced))
